"""DiffWorld splits: train/val/test plus a compositional holdout, deterministic from a seed.

The holdout (shape, colour) combinations never appear in train/val/test images
or captions; the `holdout` split contains only them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from ..fingerprint import fingerprint
from ..profiles import WorldConfig
from .attributes import COLORS, SHAPES, Records, sample_records
from .captions import captions
from .render import render

SPLITS: tuple[str, ...] = ("train", "val", "test", "holdout")
RENDER_VERSION = 1  # bump when render.py changes what pixels it draws: invalidates caches


def holdout_pairs(cfg: WorldConfig) -> np.ndarray:
    """(k, 2) held-out (shape, colour) index pairs parsed from 'shape:colour' names."""
    out = []
    for item in cfg.holdout:
        shape, sep, color = item.partition(":")
        if not sep or shape not in SHAPES or color not in COLORS:
            raise ValueError(f"world.holdout entry {item!r} must be 'shape:colour' with shape in {SHAPES} "
                             f"and colour in {COLORS}")
        out.append((SHAPES.index(shape), COLORS.index(color)))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def allowed_pairs(cfg: WorldConfig, split: str) -> np.ndarray:
    held = {tuple(p) for p in holdout_pairs(cfg).tolist()}
    if split == "holdout":
        return holdout_pairs(cfg)
    return np.array([(s, c) for s in range(len(SHAPES)) for c in range(len(COLORS)) if (s, c) not in held])


@dataclass(frozen=True)
class WorldSplit:
    """One split: exact records, rendered uint8 images (n, H, W, 3) and a stable key."""

    name: str
    config: WorldConfig
    records: Records

    def __len__(self) -> int:
        return len(self.records)

    @cached_property
    def images(self) -> np.ndarray:
        return render(self.records, self.config.image_size)

    @property
    def key(self) -> str:
        """Identifies the pixels: world config, split and renderer version."""
        ident = {"world": asdict(self.config), "split": self.name, "render": RENDER_VERSION}
        return f"diffworld-{self.name}-{fingerprint(ident)}"

    def captions(self, seed: int, relational_share: float = 0.0) -> list[str]:
        """Fresh captions (phrasing and dropped attributes vary with seed), a `relational_share` of them
        relational (captions.relational)."""
        return captions(self.records, np.random.default_rng([self.config.seed, SPLITS.index(self.name), seed]),
                        relational_share)


def build_split(cfg: WorldConfig, split: str) -> WorldSplit:
    if split not in SPLITS:
        raise ValueError(f"unknown DiffWorld split {split!r}; choose one of {SPLITS}")
    n = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test, "holdout": cfg.n_holdout}[split]
    if n <= 0:
        raise ValueError(f"world.n_{split} is {n}: a DiffWorld split needs at least one image")
    combos = allowed_pairs(cfg, split)
    if len(combos) == 0:
        fix = "list some 'shape:colour' pairs in world.holdout" if split == "holdout" else "hold out fewer pairs"
        raise ValueError(f"DiffWorld split {split!r} has no (shape, colour) combination to draw from "
                         f"(world.holdout={cfg.holdout!r}): {fix}")
    rng = np.random.default_rng([cfg.seed, 1000 + SPLITS.index(split)])
    return WorldSplit(split, cfg, sample_records(n, rng, combos))
