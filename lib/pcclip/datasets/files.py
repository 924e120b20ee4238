"""On-disk readers shared by the folder datasets (AwA2, CUB-200, SUN397)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class ImageFiles(torch.utils.data.Dataset):
    """(transform(RGB image), label) for a fixed list of image files."""

    def __init__(self, files: list[Path], labels: np.ndarray, transform: Callable | None = None):
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} image files but {len(labels)} labels")
        self.files, self.labels, self.transform = list(files), np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        """A truncated or corrupt file fails naming itself (PIL's own error names no file)."""
        try:
            with Image.open(self.files[i]) as im:
                image = im.convert("RGB")
        except (OSError, SyntaxError, ValueError) as err:  # PIL: UnidentifiedImageError is an OSError
            raise OSError(f"cannot read image {self.files[i]} ({err}): the file is truncated or corrupt; "
                          "download it again or remove it from the dataset folder") from err
        return (self.transform(image) if self.transform else image), int(self.labels[i])


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines; a missing file names itself."""
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_id_table(path: Path) -> dict[int, str]:
    """'<id> <value>' lines (space or tab separated) -> {id: value}, as in images.txt or classes.txt."""
    table: dict[int, str] = {}
    for n, line in enumerate(read_lines(path), 1):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{n}: expected '<id> <value>', got {line!r}")
        table[int(parts[0])] = parts[1].strip()
    return table


def read_numbered_names(path: Path) -> list[str]:
    """Names of a '1 name' ... 'n name' file in id order, checking the ids run 1..n."""
    table = read_id_table(path)
    if sorted(table) != list(range(1, len(table) + 1)):
        raise ValueError(f"{path}: ids must run 1..{len(table)} without gaps")
    return [table[k] for k in range(1, len(table) + 1)]


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (a stable order on every filesystem)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"missing folder {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
