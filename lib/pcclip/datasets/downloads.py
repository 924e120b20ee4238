"""Fetch a missing paper dataset when the profile allows it (`data.download`), or say where to get it.

torchvision downloads seven of them itself, into the same layout our readers expect (its own
`download=True`, checksums included). SUN397 (we read the official partition files, which
torchvision's copy lacks), AwA2 and CUB-200-2011 are fetched by hand: the error names the URL
and the layout. One short probe of the server comes first, so an offline machine fails in seconds.
"""
from __future__ import annotations

from pathlib import Path

from torchvision import datasets as tv

from ..network import unreachable
from .registry import DatasetNotFound, _spec, not_found_message

# registry name -> (torchvision class, a URL of the server its download reads from)
TORCHVISION = {
    "cifar10": (tv.CIFAR10, tv.CIFAR10.url),
    "cifar100": (tv.CIFAR100, tv.CIFAR100.url),
    "flowers102": (tv.Flowers102, tv.Flowers102._download_url_prefix),
    "food101": (tv.Food101, tv.Food101._URL),
    "eurosat": (tv.EuroSAT, "https://huggingface.co/datasets/torchgeo/eurosat"),
    "dtd": (tv.DTD, tv.DTD._URL),
    "oxford_pet": (tv.OxfordIIITPet, tv.OxfordIIITPet._RESOURCES[0][0]),
}


def fetch_dataset(name: str, root: str | Path) -> None:
    """Nothing when the dataset's folder exists; else download it with torchvision, or raise
    DatasetNotFound naming the URL and layout when it cannot be fetched automatically."""
    spec, root = _spec(name), Path(root)
    folder = root / spec.folder
    if folder.is_dir():
        return
    if name not in TORCHVISION:
        raise DatasetNotFound(not_found_message(spec, root, f"not found: no folder {folder}; it cannot be "
                                                            "downloaded automatically (see below)"))
    cls, url = TORCHVISION[name]
    if reason := unreachable(url):
        raise DatasetNotFound(not_found_message(spec, root, f"could not be downloaded (no answer from {url}: "
                                                            f"{reason})"))
    try:
        cls(str(root), download=True)
    except (OSError, RuntimeError) as err:  # network errors, bad checksums
        raise DatasetNotFound(not_found_message(spec, root, f"could not be downloaded ({err})")) from err
