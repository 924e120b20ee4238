"""The images a profile synthesises differences for: DiffWorld's train split or COCO.

Both become one `ImageSource`: image ids, captions per image, exact attributes where
they exist (DiffWorld), a key that identifies the images, and a way to show them.
Indices into a source are what the difference data stores (idx1, idx2).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..fingerprint import fingerprint
from ..profiles import Profile, data_root
from ..world import Records, build_split, render
from .coco import CocoCaptions, load_coco_captions


@dataclass(frozen=True)
class ImageSource:
    key: str  # identifies the image list; stored with the data so a changed world is not mixed in
    image_ids: np.ndarray  # int64: DiffWorld train index / COCO image id
    captions: tuple[tuple[str, ...], ...]  # the captions a writer sees, per image
    records: Records | None  # exact attributes (DiffWorld only)
    load_images: Callable[[np.ndarray], np.ndarray]  # indices -> uint8 (k, H, W, 3), for display

    def __len__(self) -> int:
        return len(self.image_ids)

    def truth(self, i: int) -> dict | None:
        return None if self.records is None else self.records.row(i)


def diffworld_source(profile: Profile) -> ImageSource:
    """The train split; `captions_per_image` independent caption draws per image (seeds 0, 1, ...)."""
    k = profile.synthesis.captions_per_image
    if k < 1:
        raise ValueError(f"synthesis.captions_per_image must be >= 1, got {k}")
    split = build_split(profile.world, "train")
    draws = [split.captions(seed) for seed in range(k)]
    records = split.records
    return ImageSource(key=split.key, image_ids=np.arange(len(split), dtype=np.int64),
                       captions=tuple(zip(*draws)), records=records,
                       load_images=lambda idx: render(records[np.asarray(idx)], profile.world.image_size))


def file_images(files: tuple[Path, ...], size: int = 224) -> Callable[[np.ndarray], np.ndarray]:
    def load(idx: np.ndarray) -> np.ndarray:
        from PIL import Image

        out = []
        for i in np.asarray(idx).tolist():
            with Image.open(files[i]) as im:
                out.append(np.asarray(im.convert("RGB").resize((size, size))))
        return np.stack(out)

    return load


def load_coco(profile: Profile) -> tuple[CocoCaptions, str]:
    """The profile's COCO 2017 images and captions under the data root (synthesis.coco_*), and the key
    naming them: the difference store records it, and the training images' embedding cache uses it."""
    cfg = profile.synthesis
    root = Path(data_root(profile))
    coco = load_coco_captions(root / cfg.coco_annotations, root / cfg.coco_images)
    return coco, f"coco-{Path(cfg.coco_annotations).stem}-{fingerprint(coco.image_ids)}"


def coco_source(profile: Profile) -> ImageSource:
    """COCO 2017 captions under the data root; the first `captions_per_image` captions per image."""
    cfg = profile.synthesis
    coco, key = load_coco(profile)
    return ImageSource(key=key, image_ids=coco.image_ids,
                       captions=tuple(c[:cfg.captions_per_image] for c in coco.captions), records=None,
                       load_images=file_images(coco.files))


def image_source(profile: Profile) -> ImageSource:
    if profile.source == "diffworld":
        return diffworld_source(profile)
    if profile.source == "paper":
        return coco_source(profile)
    raise ValueError(f"profile {profile.name!r} has unknown source {profile.source!r}; expected diffworld or paper")
