"""Difference-classification pair sets for the paper datasets: pure functions of labels.

The paper's protocol: draw 100 random images (per seed), take all pairs of images of
different classes, and describe how the first differs from the second. Pairs are ordered by
default: (a, b) and (b, a) both appear, each with its own description, so a model that prefers
one phrasing regardless of the images scores exactly chance; pairs="unordered" keeps one order
per pair as the authors did (`pair_positions`). Each set is an evaluation `PairSet` whose
`reversed_texts` (the description of (b, a)) feed the two-way test.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .awa2 import AttributeTable, attribute_difference_text
from .groups import ClassGroups
from .pairset import PairSet, pair_positions


def draw_images(labels: np.ndarray, classes: Sequence[int] | None, n_images: int, seed: int) -> np.ndarray:
    """`n_images` distinct item indices drawn (seeded) among items whose label is in `classes` (None: all)."""
    labels = np.asarray(labels)
    eligible = np.arange(len(labels)) if classes is None else np.flatnonzero(np.isin(labels, list(classes)))
    if n_images < 2 or len(eligible) < n_images:
        raise ValueError(f"cannot draw {n_images} images: {len(eligible)} eligible images (need 2 <= n_images <= "
                         f"{len(eligible)}); lower eval.n_images or check the dataset split")
    return np.sort(np.random.default_rng(seed).choice(eligible, size=n_images, replace=False))


def class_pairs(images: np.ndarray, labels: np.ndarray, pairs: str = "ordered") -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i, j) of `images` whose labels differ, in row-major order: both orders, or i before j in
    `images` only (pairs="unordered"; see `pair_positions`)."""
    a, b = pair_positions(len(images), pairs)
    i1, i2 = np.asarray(images)[a], np.asarray(images)[b]
    keep = np.asarray(labels)[i1] != np.asarray(labels)[i2]
    return i1[keep].astype(np.int64), i2[keep].astype(np.int64)


def _pair_set(i1: np.ndarray, i2: np.ndarray, texts: list[str | None], reverse: list[str | None],
              sign: np.ndarray, name: str) -> PairSet:
    keep = np.array([t is not None for t in texts], dtype=bool)
    if not keep.any():
        raise ValueError(f"{name}: no image pair has a description; draw more images")
    return PairSet(i1[keep], i2[keep], [t for t in texts if t is not None], sign[keep],
                   [t for t, k in zip(reverse, keep) if k], name)


def group_pairs(labels: np.ndarray, groups: ClassGroups, n_images: int, seed: int,
                pairs: str = "ordered") -> PairSet:
    """Pairs of images from different groups (larger vs smaller animal, blue vs yellow flower),
    described by the group template; sign +1 when the first image is in the earlier group of an
    ordered set (the larger animal), -1 when later, 0 for unordered groups."""
    rank = {c: k for k, members in enumerate(groups.groups.values()) for c in members}
    names = list(groups.groups)
    labels = np.asarray(labels)
    i1, i2 = class_pairs(draw_images(labels, list(rank), n_images, seed), labels, pairs)
    r1, r2 = np.array([rank[c] for c in labels[i1]]), np.array([rank[c] for c in labels[i2]])
    texts = [None if a == b else groups.text(names[a], names[b]) for a, b in zip(r1, r2)]
    reverse = [None if a == b else groups.text(names[b], names[a]) for a, b in zip(r1, r2)]
    sign = np.sign(r2 - r1) if groups.ordered else np.zeros(len(r1), dtype=np.int64)
    return _pair_set(i1, i2, texts, reverse, sign, groups.name)


def attribute_pairs(labels: np.ndarray, table: AttributeTable, n_images: int, seed: int,
                    max_attributes: int = 5, name: str = "awa2_attributes", pairs: str = "ordered") -> PairSet:
    """Pairs of different classes described by their attribute differences (at most `max_attributes`
    per side, 0: all); pairs of classes where one side has no attribute the other lacks are left out
    (they have nothing to describe)."""
    labels = np.asarray(labels)
    i1, i2 = class_pairs(draw_images(labels, None, n_images, seed), labels, pairs)
    keys = list(zip(labels[i1].tolist(), labels[i2].tolist()))
    both_ways = set(keys) | {(b, a) for a, b in keys}
    memo = {k: attribute_difference_text(table, k[0], k[1], max_attributes) for k in both_ways}
    texts, reverse = [memo[(a, b)] for a, b in keys], [memo[(b, a)] for a, b in keys]
    return _pair_set(i1, i2, texts, reverse, np.zeros(len(keys), dtype=np.int64), name)


def random_pairs(labels: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n_pairs` distinct ordered item pairs of different classes, drawn uniformly (seeded)."""
    labels = np.asarray(labels)
    possible = len(labels) ** 2 - int((np.bincount(labels) ** 2).sum())
    if n_pairs < 1 or n_pairs > possible:
        raise ValueError(f"cannot draw {n_pairs} pairs of different classes: only {possible} exist")
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[int, int], None] = {}  # insertion-ordered set
    while len(chosen) < n_pairs:
        a, b = rng.integers(len(labels), size=(2, 2 * n_pairs))
        differ = labels[a] != labels[b]
        for pair in zip(a[differ].tolist(), b[differ].tolist()):
            chosen.setdefault(pair)
            if len(chosen) == n_pairs:
                break
    idx = np.array(list(chosen), dtype=np.int64).reshape(-1, 2)
    return idx[:, 0], idx[:, 1]
