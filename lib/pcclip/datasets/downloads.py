"""Fetch a missing paper dataset when the profile allows it (`data.download`), or say where to get it.

torchvision downloads seven of them itself, into the same layout our readers expect (its own
`download=True`, checksums included). SUN397 (we read the official partition files, which
torchvision's copy lacks), AwA2 and CUB-200-2011 are fetched by hand: the error names the URL
and the layout. One short probe of the server comes first, so an offline machine fails in seconds.
"""
from __future__ import annotations

from pathlib import Path

from torchvision import datasets as tv

from ..dataset_layouts import DatasetNotFound, layout_of, not_found_message
from ..network import unreachable

# registry name -> the torchvision class that downloads it (the server it reads from: LAYOUTS[name].server)
TORCHVISION = {"cifar10": tv.CIFAR10, "cifar100": tv.CIFAR100, "flowers102": tv.Flowers102, "food101": tv.Food101,
               "eurosat": tv.EuroSAT, "dtd": tv.DTD, "oxford_pet": tv.OxfordIIITPet}


def fetch_dataset(name: str, root: str | Path) -> None:
    """Nothing when the dataset's folder exists; else download it with torchvision, or raise
    DatasetNotFound naming the URL and layout when it cannot be fetched automatically."""
    layout, root = layout_of(name), Path(root)
    folder = root / layout.folder
    if folder.is_dir():
        return
    if name not in TORCHVISION:
        raise DatasetNotFound(not_found_message(layout, root, f"not found: no folder {folder}; it cannot be "
                                                              "downloaded automatically (see below)"))
    url = layout.server
    if reason := unreachable(url):
        raise DatasetNotFound(not_found_message(layout, root, f"could not be downloaded (no answer from {url}: "
                                                              f"{reason})"))
    try:
        TORCHVISION[name](str(root), download=True)
    except (OSError, RuntimeError) as err:  # network errors, bad checksums
        raise DatasetNotFound(not_found_message(layout, root, f"could not be downloaded ({err})")) from err
