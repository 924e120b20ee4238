"""DiffWorld difference-classification sets, built from the exact ground truth of every image.

As in the paper, each draw takes n random images of a split and keeps all pairs that differ in
the attribute (both orders, or one per pair with eval.pairs="unordered" as the authors); every
pair gets a template description of its true difference and, for the two-way test, the reversed
twin drawn with the same random state (same frame and draws, opposite meaning). phrasing_split "eval" uses frames never seen
in training data, "train" the training ones, and each name of STRUCTURES one evaluation family of the grammar
(`pcclip.world.phrasing`: held-out frames, held-out words, the held-out frames of one family), and each held-out
frame's id that frame alone, on the same images and pairs; the compositional holdout is simply another split.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..datasets.pairset import PairSet, pair_positions
from ..profiles import EvalConfig
from ..world import ATTRIBUTES, COLORS, CONTINUOUS, SHAPES, WorldSplit
from ..world.phrasing import (STRUCTURES, attribute_sentence, category_sentence, heldout_frame_ids, selection,
                              sentence_phrase)

MIN_GAP = 1.0 / 3.0  # continuous pairs differ by at least one caption-bucket width: a nameable difference
PHRASING_SPLITS = ("eval", "train")
PHRASINGS = (*PHRASING_SPLITS, *STRUCTURES)  # this order seeds the draws (its index): new names go last
NAMES = {"shape": SHAPES, "color": COLORS}


def _names() -> tuple[str, ...]:
    """Every phrasing a set is drawn in: PHRASINGS, then each held-out frame's id; a name's place seeds its draws."""
    return (*PHRASINGS, *heldout_frame_ids())


def _check_attribute_and_phrasing(attribute: str, phrasing_split: str) -> None:
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; DiffWorld has {ATTRIBUTES}")
    if phrasing_split not in _names():
        raise ValueError(f"phrasing_split must be one of {PHRASINGS} or a held-out frame's id {heldout_frame_ids()}, "
                         f"got {phrasing_split!r}")
    if phrasing_split not in PHRASING_SPLITS and attribute not in CONTINUOUS:
        raise ValueError(f"phrasing_split {phrasing_split!r} is a frame family of continuous attributes {CONTINUOUS}; "
                         f"{attribute!r} has only 'eval' and 'train' phrasings")


def _writer(attribute: str, phrasing_split: str) -> Callable[[tuple, np.random.Generator, bool], str]:
    """key, rng, reverse -> sentence; key is the sign (continuous) or the (value1, value2) indices."""
    if attribute in CONTINUOUS:
        return lambda key, rng, rev: attribute_sentence(attribute, -key if rev else key, rng, phrasing_split)
    names = NAMES[attribute]

    def write(key: tuple, rng: np.random.Generator, rev: bool) -> str:
        first, second = (key[1], key[0]) if rev else key
        return category_sentence(attribute, names[first], names[second], rng, phrasing_split)
    return write


def _pool(attribute: str, phrasing_split: str, key: int | tuple[int, int], phrasings: int) -> list[tuple[str, str]]:
    """`phrasings` independent (sentence, reversed twin) draws for one kind of pair.

    The random state of draw p depends only on the unordered kind and p, so the draws for
    (b, a) are the twins of those for (a, b): both orders share one set of sentences, and
    every seed and split reuses them (seeds vary the images and which draw a pair gets).
    """
    write = _writer(attribute, phrasing_split)
    return [(write(key, _draw_rng(attribute, phrasing_split, key, p), False),
             write(key, _draw_rng(attribute, phrasing_split, key, p), True)) for p in range(phrasings)]


def _draw_rng(attribute: str, phrasing_split: str, key: int | tuple[int, int], p: int) -> np.random.Generator:
    """The random state of draw p of a pool: one kind for a continuous attribute (either sign), else the unordered
    pair of values."""
    unordered = [1] if attribute in CONTINUOUS else sorted(key)
    return np.random.default_rng([ATTRIBUTES.index(attribute), _names().index(phrasing_split), *unordered, p])


def pool_frames(attribute: str, phrasing_split: str, phrasings: int = 16) -> list[str]:
    """The frame id of each sentence in the pool of a continuous attribute's set (`_pool`): one pool of `phrasings`
    draws serves every pair, seed and split, so a family's row weighs its frames as these draws happened to fall
    (README, "Held-out frames: what fails")."""
    _check_attribute_and_phrasing(attribute, phrasing_split)
    if attribute not in CONTINUOUS:
        raise ValueError(f"pool_frames reads the frames of continuous attributes {CONTINUOUS}, not {attribute!r}")
    drawn = (sentence_phrase(attribute, 1, _draw_rng(attribute, phrasing_split, 1, p), phrasing_split)
             for p in range(phrasings))
    return [phrase.id.split(":", 1)[1] for phrase in drawn]


def _describe(keys: list, attribute: str, phrasing_split: str, phrasings: int,
              rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """A sentence and its reversed twin per pair, each pair picking one draw of its kind's pool,
    so the cost and the number of distinct sentences grow with kinds of pairs, not with pairs."""
    pools = {key: _pool(attribute, phrasing_split, key, phrasings) for key in dict.fromkeys(keys)}
    pick = rng.integers(0, phrasings, size=len(keys)).tolist()
    chosen = [pools[key][p] for key, p in zip(keys, pick)]
    return [c[0] for c in chosen], [c[1] for c in chosen]


def attribute_pairs(split: WorldSplit, attribute: str, n_images: int, seed: int, phrasing_split: str = "eval",
                    phrasings: int = 16, pairs: str = "ordered") -> PairSet:
    """All pairs among `n_images` random images of `split` that differ in `attribute` (by at least
    MIN_GAP for a continuous one), in both orders or once (`pairs`, see `pair_positions`), with
    ground-truth descriptions and their twins.

    The images depend only on (split, seed), so every attribute of a seed sees the same images.
    """
    _check_attribute_and_phrasing(attribute, phrasing_split)
    if not 2 <= n_images <= len(split):
        raise ValueError(f"n_images={n_images} must lie in [2, {len(split)}] (the size of split {split.name!r})")
    if phrasings < 1:
        raise ValueError(f"phrasings={phrasings}: need at least one phrasing draw per pair kind")
    images = np.random.default_rng([seed, 7]).choice(len(split), size=n_images, replace=False)
    a, b = pair_positions(n_images, pairs)
    values = getattr(split.records, attribute)[images]
    if attribute in CONTINUOUS:
        gap = values[a] - values[b]
        keep = np.abs(gap) >= MIN_GAP
        sign = np.sign(gap[keep]).astype(np.int64)
        keys = sign.tolist()
    else:
        keep = values[a] != values[b]
        sign = np.zeros(int(keep.sum()), dtype=np.int64)
        keys = list(zip(values[a][keep].tolist(), values[b][keep].tolist()))
    rng = np.random.default_rng([seed, ATTRIBUTES.index(attribute), _names().index(phrasing_split)])
    texts, twins = _describe(keys, attribute, phrasing_split, phrasings, rng)
    return PairSet(idx1=images[a[keep]].astype(np.int64), idx2=images[b[keep]].astype(np.int64), texts=texts,
                   sign=sign, reversed_texts=twins, attribute=attribute)


def difference_sets(splits: dict[str, WorldSplit], cfg: EvalConfig, attributes: tuple[str, ...] = ATTRIBUTES,
                    phrasing_splits: tuple[str, ...] = PHRASING_SPLITS) -> dict[tuple[str, str, str], list[PairSet]]:
    """(split, phrasing, attribute) -> one PairSet per seed, ready for `difference_table`."""
    out = {}
    for split_name, split in splits.items():
        n = min(cfg.n_images, len(split))
        for phrasing in phrasing_splits:
            for attribute in attributes:
                out[(split_name, phrasing, attribute)] = [
                    attribute_pairs(split, attribute, n, seed, phrasing, cfg.phrasings, cfg.pairs)
                    for seed in range(cfg.seeds)]
    return out


def structure_sets(split: WorldSplit, cfg: EvalConfig, attributes: tuple[str, ...] = CONTINUOUS
                   ) -> dict[tuple[str, str, str], list[PairSet]]:
    """(split, family, attribute) -> one PairSet per seed for every evaluation family of STRUCTURES: the same
    images and pairs in every family (they depend only on the split and seed), each described in its family."""
    return difference_sets({split.name: split}, cfg, attributes, STRUCTURES)


def frame_sets(split: WorldSplit, cfg: EvalConfig, attributes: tuple[str, ...] = CONTINUOUS
               ) -> dict[tuple[str, str, str], list[PairSet]]:
    """(split, frame id, attribute) -> one PairSet per seed for each held-out frame on its own and each of
    `attributes` it fits: the pairs of `structure_sets`, so a family's row splits into its frames' rows."""
    return {key: draws for frame in heldout_frame_ids()
            for key, draws in difference_sets({split.name: split}, cfg,
                                              tuple(a for a in attributes if selection(frame, a)[0]), (frame,)).items()}


def direction_texts(attribute: str, n: int, seed: int = 0,
                    phrasing_split: str = "eval") -> tuple[list[str], list[str]]:
    """n phrasings of "the first image has more <attribute>" and their reversed twins."""
    _check_attribute_and_phrasing(attribute, phrasing_split)
    if attribute not in CONTINUOUS:
        raise ValueError(f"a ranking direction needs a continuous attribute {CONTINUOUS}, got {attribute!r}")
    write = _writer(attribute, phrasing_split)
    seeds = np.random.default_rng([seed, ATTRIBUTES.index(attribute), 99]).integers(0, 2**63, size=n)
    return ([write(1, np.random.default_rng(s), False) for s in seeds],
            [write(1, np.random.default_rng(s), True) for s in seeds])
