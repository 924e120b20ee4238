"""DiffWorld drawings that stand in for real photos, class by class.

Every class gets a look (a shape, a colour and a size range); its images are DiffWorld
objects of that look at random positions and brightness. The looks carry the signal the
paper's difference sets test: CIFAR-100's larger animals are drawn large and its smaller
ones small, Flowers-102's blue and yellow flowers in blue and yellow, AwA2 animals at the
size their 'big'/'small' predicates state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..world import COLORS, SHAPES, Records, render
from ..world.render import BACKGROUND

MID = (0.3, 0.7)  # size range of a class the data sets say nothing about
LARGE, SMALL = (0.8, 1.0), (0.0, 0.2)
JPEG_SIDES = (40, 48, 64, 80)  # JPEG images come in these sizes, some widened to 4:3


@dataclass(frozen=True)
class Look:
    shape: int  # index into world.SHAPES
    color: int  # index into world.COLORS
    size: tuple[float, float]  # the class's images have a size drawn uniformly in this range


def random_looks(n: int, rng: np.random.Generator, colors: Sequence[str] = COLORS,
                 size: tuple[float, float] = MID) -> list[Look]:
    """n looks with a random shape and a colour among `colors`."""
    shapes = rng.integers(0, len(SHAPES), n)
    picks = rng.integers(0, len(colors), n)
    return [Look(int(s), COLORS.index(colors[c]), size) for s, c in zip(shapes, picks)]


def draw_records(looks: Sequence[Look], labels: np.ndarray, rng: np.random.Generator) -> Records:
    """One record per label: the class's shape, colour and size range; position and brightness at random
    (brightness from 0.4 up, so dark objects stay visible against the background)."""
    labels = np.asarray(labels, dtype=np.int64)
    lo = np.array([looks[c].size[0] for c in labels])
    hi = np.array([looks[c].size[1] for c in labels])
    u = rng.random((4, len(labels)))
    return Records(shape=np.array([looks[c].shape for c in labels], dtype=np.int64),
                   color=np.array([looks[c].color for c in labels], dtype=np.int64),
                   size=lo + u[0] * (hi - lo), x=u[1], y=u[2], brightness=0.4 + 0.6 * u[3])


def widen(image: np.ndarray, axis: int) -> np.ndarray:
    """The image padded with background to 4:3 along `axis` (0: taller, 1: wider), centred: a
    resize-shortest-side and centre crop recovers the square drawing."""
    side = image.shape[axis]
    extra = side // 3
    pad = [(0, 0)] * 3
    pad[axis] = (extra // 2, extra - extra // 2)
    return np.pad(image, pad, constant_values=int(round(BACKGROUND * 255)))


def render_varied(records: Records, rng: np.random.Generator, sides: Sequence[int] = JPEG_SIDES,
                  widened: float = 0.3) -> list[np.ndarray]:
    """Images of `records` at a random side from `sides`, a share `widened` of them padded to 4:3."""
    side = rng.choice(np.asarray(sides), len(records))
    wide = rng.random(len(records)) < widened
    axis = rng.integers(0, 2, len(records))
    out: list[np.ndarray] = [np.empty(0)] * len(records)
    for s in np.unique(side):
        idx = np.flatnonzero(side == s)
        for i, image in zip(idx.tolist(), render(records[idx], int(s))):
            out[i] = widen(image, int(axis[i])) if wide[i] else image
    return out


def _object_mask(image: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(image, dtype=float) - BACKGROUND * 255).max(axis=-1) > 40


def object_extent(image: np.ndarray) -> float:
    """The longer side of the drawn object's bounding box over the image's shorter side: its size,
    read back from the pixels (less shape-dependent than its area)."""
    rows, cols = np.nonzero(_object_mask(image))
    if rows.size == 0:
        return 0.0
    return float(max(np.ptp(rows), np.ptp(cols)) + 1) / min(np.asarray(image).shape[:2])


def object_rgb(image: np.ndarray) -> np.ndarray:
    """(3,) mean colour of the object's pixels, what a colour difference is read from."""
    mask = _object_mask(image)
    return np.asarray(image)[mask].astype(float).mean(axis=0) if mask.any() else np.zeros(3)
