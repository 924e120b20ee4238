"""What a pair's captions (or exact records) allow a writer to say about its differences.

Caption words are bucketed (small / medium-sized / large), and buckets are ordered, so two
captions that both state a size support exactly one comparison; a caption that leaves
size out supports none. This is the knowledge an LLM that only reads captions has.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..world import COLORS, CONTINUOUS, SHAPES
from ..world.attributes import CATEGORICAL
from ..world.captions import vocabulary

_BUCKET_RANK = {"low": 0, "mid": 1, "high": 2}


@dataclass(frozen=True)
class Facts:
    """What may be said about a pair: +1/-1 per continuous attribute (+1: the first image
    has more), (value1, value2) per differing category, and category values both share."""

    directions: dict[str, int] = field(default_factory=dict)
    categories: dict[str, tuple[str, str]] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _caption_lexicon() -> dict[str, tuple[str, str]]:
    """Caption word -> (attribute, value); 'centre' words state both x and y are mid."""
    v = vocabulary()
    lex: dict[str, tuple[str, str]] = {}
    for attr, key in (("size", "size_words"), ("brightness", "brightness_words")):
        for bucket, words in v[key].items():
            lex.update({w: (attr, bucket) for w in words if w})
    for attr, words in (("x", v["x_words"]), ("y", v["y_words"]), ("x", v["compass"]["x"]), ("y", v["compass"]["y"])):
        lex.update({w: (attr, bucket) for bucket, w in words.items() if w})
    lex.update({t.split()[-1]: ("centre", "mid") for t in v["where"]["centre"]})
    lex.update({s: ("shape", s) for s in SHAPES})
    lex.update({c: ("color", c) for c in COLORS})
    return lex


def parse_captions(captions: Sequence[str]) -> dict[str, str]:
    """Attribute -> value stated by an image's captions (buckets low/mid/high for continuous
    attributes, names for shape and colour); attributes stated inconsistently are dropped."""
    return dict(_parse(tuple(captions)))


@lru_cache(maxsize=65536)  # an image takes part in several pairs; its captions never change
def _parse(captions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    lex, stated, clash = _caption_lexicon(), {}, set()
    for caption in captions:
        for word in re.findall(r"[a-z-]+", caption.lower()):
            if word not in lex:
                continue
            attr, value = lex[word]
            for a in (("x", "y") if attr == "centre" else (attr,)):
                if stated.setdefault(a, value) != value:
                    clash.add(a)
    return tuple((a, v) for a, v in stated.items() if a not in clash)


def _categorical(v1: dict, v2: dict) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    both = [a for a in CATEGORICAL if a in v1 and a in v2]
    return ({a: (v1[a], v2[a]) for a in both if v1[a] != v2[a]}, {a: v1[a] for a in both if v1[a] == v2[a]})


def caption_facts(captions1: Sequence[str], captions2: Sequence[str]) -> Facts:
    """Only differences both images' captions state: bucket words are ordered (small < medium < large)."""
    p1, p2 = parse_captions(captions1), parse_captions(captions2)
    directions = {a: int(np.sign(_BUCKET_RANK[p1[a]] - _BUCKET_RANK[p2[a]]))
                  for a in CONTINUOUS if a in p1 and a in p2 and p1[a] != p2[a]}
    return Facts(directions, *_categorical(p1, p2))


def oracle_facts(row1: dict, row2: dict, gap: float) -> Facts:
    """Differences in the exact records; continuous ones only when at least `gap` apart (visible)."""
    if gap <= 0:
        raise ValueError(f"synthesis.oracle_gap must be > 0 (got {gap}): equal values have no direction")
    directions = {a: 1 if row1[a] > row2[a] else -1 for a in CONTINUOUS if abs(row1[a] - row2[a]) >= gap}
    return Facts(directions, *_categorical(row1, row2))
