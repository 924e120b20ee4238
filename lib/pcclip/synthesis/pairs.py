"""Which ordered image pairs get a difference description.

Two kinds: uniformly random pairs (what the paper does among 1,000 COCO images) and,
on DiffWorld, attribute-contrast pairs whose images differ by at least `gap` in one
continuous attribute. Random pairs rarely differ clearly in size or position and
captions often leave those out, so without contrast pairs the finetuning data would
barely mention them. The plan is a pure function of its arguments; a pair's id is
built from the two image ids, so reruns and resumes see the same ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..world import CONTINUOUS, Records

RANDOM = "random"
CONTRAST = "contrast:"  # followed by the attribute name


@dataclass(frozen=True)
class PairPlan:
    idx1: np.ndarray  # int64 indices into the image list (DiffWorld train split / COCO image order)
    idx2: np.ndarray
    kind: tuple[str, ...]  # "random" or "contrast:<attribute>"
    ids: tuple[str, ...]  # stable pair ids "<image id 1>-<image id 2>"

    def __len__(self) -> int:
        return len(self.idx1)


def contrast_attribute(kind: str) -> str | None:
    return kind[len(CONTRAST):] if kind.startswith(CONTRAST) else None


def _draw(rng: np.random.Generator, pool: np.ndarray, count: int, taken: set[tuple[int, int]],
          keep: Callable[[np.ndarray, np.ndarray], np.ndarray] | None, kind: str) -> list[tuple[int, int]]:
    """`count` new distinct ordered pairs from `pool` that satisfy `keep`, by vectorised rejection."""
    out: list[tuple[int, int]] = []
    for _ in range(200):
        if len(out) == count:
            return out
        m = 2 * (count - len(out)) + 64
        i, j = pool[rng.integers(len(pool), size=m)], pool[rng.integers(len(pool), size=m)]
        ok = i != j
        if keep is not None:
            ok &= keep(i, j)
        for pair in zip(i[ok].tolist(), j[ok].tolist()):
            if pair not in taken:
                taken.add(pair)
                out.append(pair)
                if len(out) == count:
                    break
    if len(out) < count:
        raise ValueError(f"found only {len(out)} of {count} distinct {kind} pairs among {len(pool)} images; "
                         "lower synthesis.n_pairs or synthesis.contrast_fraction, or raise synthesis.n_images")
    return out


def _pool(rng: np.random.Generator, n_items: int, n_images: int) -> np.ndarray:
    if n_items < 2:
        raise ValueError(f"pair sampling needs at least 2 images, got {n_items}")
    if 0 < n_images < n_items:
        return np.sort(rng.choice(n_items, size=n_images, replace=False))
    return np.arange(n_items)


def sample_pairs(n_items: int, n_pairs: int, seed: int, n_images: int = 0, records: Records | None = None,
                 contrast_fraction: float = 0.0, gap: float = 1 / 3,
                 image_ids: np.ndarray | None = None) -> PairPlan:
    """`n_pairs` distinct ordered pairs among `n_images` randomly chosen images (0: all `n_items`).

    A share `contrast_fraction` are contrast pairs, split evenly over CONTINUOUS
    (needs `records`); which image of a contrast pair has more of the attribute is random.
    """
    if not 0.0 <= contrast_fraction <= 1.0:
        raise ValueError(f"synthesis.contrast_fraction must lie in [0, 1], got {contrast_fraction}")
    rng = np.random.default_rng([seed, 2024])
    pool = _pool(rng, n_items, n_images)
    if n_pairs > len(pool) * (len(pool) - 1):
        raise ValueError(f"synthesis.n_pairs={n_pairs} exceeds the {len(pool) * (len(pool) - 1)} ordered pairs "
                         f"of {len(pool)} images; lower it or raise synthesis.n_images")
    n_contrast = int(round(n_pairs * contrast_fraction))
    if n_contrast and records is None:
        raise ValueError("synthesis.contrast_fraction > 0 needs ground-truth attributes (DiffWorld); "
                         "set it to 0 for COCO")
    taken: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int]] = []
    kinds: list[str] = []
    for attr, quota in zip(CONTINUOUS, np.array_split(np.arange(n_contrast), len(CONTINUOUS))):
        values = getattr(records, attr) if records is not None else None
        found = _draw(rng, pool, len(quota), taken, lambda i, j, v=values: np.abs(v[i] - v[j]) >= gap,
                      CONTRAST + attr)
        pairs += found
        kinds += [CONTRAST + attr] * len(found)
    found = _draw(rng, pool, n_pairs - n_contrast, taken, None, RANDOM)
    pairs += found
    kinds += [RANDOM] * len(found)
    order = rng.permutation(len(pairs))  # mix kinds, so a partial run holds a fair sample of each
    idx = np.array(pairs, dtype=np.int64).reshape(-1, 2)[order]
    ids = np.arange(n_items) if image_ids is None else np.asarray(image_ids)
    return PairPlan(idx1=idx[:, 0], idx2=idx[:, 1], kind=tuple(kinds[k] for k in order),
                    ids=tuple(f"{ids[a]}-{ids[b]}" for a, b in idx.tolist()))
