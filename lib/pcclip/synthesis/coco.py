"""MS-COCO caption annotations (the 2017 `captions_*.json` format) plus the image folder.

Images are ordered by image id: that order is what difference data indexes (idx1, idx2)
and what an embedding cache over `CocoImages` must use. Every way the files can be
wrong (bad JSON, missing keys, missing image files, images without captions) fails here
with the file named, before any hour-long generation starts.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

_FIX = "download the 2017 annotations from https://cocodataset.org/#download (annotations_trainval2017.zip)"


@dataclass(frozen=True)
class CocoCaptions:
    image_ids: np.ndarray  # int64, ascending
    files: tuple[Path, ...]
    captions: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.image_ids)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotations {path} not found; {_FIX} and unpack them under the data root")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"COCO annotations {path} are not valid JSON ({err.msg} at line {err.lineno}, "
                         f"column {err.colno}); the file is probably truncated: {_FIX}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ValueError(f"COCO annotations {path} need top-level lists 'images' and 'annotations' "
                         "(the captions_*.json format)")
    return data


def _captions_by_image(path: Path, annotations: list, known: set[int]) -> dict[int, list[str]]:
    by_image: dict[int, list[str]] = defaultdict(list)
    for n, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
            raise ValueError(f"{path}: annotation #{n} needs an 'image_id' and a string 'caption', got {ann!r:.200}")
        if ann["image_id"] not in known:
            raise ValueError(f"{path}: annotation #{n} refers to image id {ann['image_id']} absent from 'images'")
        text = " ".join(ann["caption"].split())
        if text:
            by_image[ann["image_id"]].append(text)
    return by_image


def load_coco_captions(annotations: str | os.PathLike, images: str | os.PathLike) -> CocoCaptions:
    """Captions per image (in annotation order) and image paths, checked against the folder."""
    path, folder = Path(annotations), Path(images)
    data = _read(path)
    try:
        files = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: every entry of 'images' needs an integer 'id' and a 'file_name'") from None
    by_image = _captions_by_image(path, data["annotations"], set(files))
    empty = sorted(set(files) - set(by_image))
    if empty:
        raise ValueError(f"{path}: {len(empty)} images have an empty caption list (e.g. ids {empty[:5]}); "
                         "a difference description needs a caption for both images: remove them from 'images'")
    if not folder.is_dir():
        raise FileNotFoundError(f"COCO image folder {folder} not found; download train2017.zip and unpack it there")
    present = set(os.listdir(folder))
    missing = sorted(name for name in files.values() if name not in present)
    if missing:
        raise FileNotFoundError(f"{len(missing)} images listed in {path} are missing from {folder} "
                                f"(e.g. {missing[:3]}); finish the download or point synthesis.coco_images there")
    ids = np.array(sorted(files), dtype=np.int64)
    return CocoCaptions(image_ids=ids, files=tuple(folder / files[i] for i in ids.tolist()),
                        captions=tuple(tuple(by_image[i]) for i in ids.tolist()))


class CocoImages:
    """A map-style dataset of (transform(PIL image), index) in `CocoCaptions` order, for
    `pcclip.cache.DatasetSource`: the embedding cache then lines up with idx1/idx2."""

    def __init__(self, coco: CocoCaptions, transform: Callable[[Any], Any]) -> None:
        self.coco = coco
        self.transform = transform

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        with Image.open(self.coco.files[i]) as im:
            return self.transform(im if im.mode == "RGB" else im.convert("RGB")), i  # RGB: no copy
