"""Coarse captions for DiffWorld records, from the vocabulary in data/diffworld_captions.json.

Captions are what a human (or the synthesis LLM) sees: shape and colour by name,
continuous attributes bucketed into words (several synonyms each, positions by side or by compass),
some attributes left out at random. Some of these words are the difference grammar's held-out
words: pretraining teaches them, difference training data never uses them. A share of the captions
(`relational`, pretrain.relational_captions) may also compare the object with a reference in its own image
('..., not smaller than most shapes'): comparative syntax grounded in one image, for pretraining (and, with
finetune.relational_captions, the finetuning caption term; never the difference writer).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..resources import load_json
from .attributes import COLORS, CONTINUOUS, SHAPES, Records
from .phrasing import attribute_words, pick


@lru_cache(maxsize=1)
def vocabulary() -> dict:
    return load_json("diffworld_captions.json")


def bucket(value: float) -> str:
    """'low', 'mid' or 'high' for a continuous attribute in [0, 1]."""
    lo, hi = vocabulary()["thresholds"]
    return "low" if value < lo else ("high" if value > hi else "mid")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _where(x: float, y: float, rng: np.random.Generator) -> str:
    """Where the object sits, by side ('top left') or, with probability 'compass', by compass ('north west')."""
    v = vocabulary()
    compass = rng.random() < v["probabilities"]["compass"]
    words = (v["compass"]["x"], v["compass"]["y"]) if compass else (v["x_words"], v["y_words"])
    xw, yw = words[0][bucket(x)], words[1][bucket(y)]
    key = "both" if xw and yw else "x_only" if xw else "y_only" if yw else "centre"
    return str(rng.choice(v["where"][key])).format(x=xw, y=yw)


def caption(records: Records, i: int, rng: np.random.Generator) -> str:
    """One random caption of record i; draws from rng only."""
    v, p = vocabulary(), vocabulary()["probabilities"]
    words = []
    if rng.random() < p["size"]:
        words.append(str(rng.choice(v["size_words"][bucket(records.size[i])])))
    if rng.random() < p["brightness"]:
        words.append(str(rng.choice(v["brightness_words"][bucket(records.brightness[i])])))
    if rng.random() < p["color"]:
        words.append(COLORS[records.color[i]])
    words.append(SHAPES[records.shape[i]])
    desc = " ".join(w for w in words if w)
    where = _where(records.x[i], records.y[i], rng) if rng.random() < p["where"] else ""
    template = str(rng.choice(v["templates"]))
    return template.format(a=_article(desc), desc=desc, where=where)


def relational(records: Records, i: int, plain: str, rng: np.random.Generator) -> str:
    """`plain` (a caption of record i) with a clause that compares the object with a reference in its image, true of
    it, in the difference grammar's training words; `plain` itself when every attribute is in the middle bucket."""
    buckets = {a: bucket(getattr(records, a)[i]) for a in CONTINUOUS}
    stated = [a for a, b in buckets.items() if b != "mid"]
    if not stated:
        return plain
    table = vocabulary()["relations"]
    attr = pick(rng, stated)
    more = buckets[attr] == "high"
    said = pick(rng, attribute_words(attr, "train", "more" if more else "less"))
    other = pick(rng, attribute_words(attr, "train", "less" if more else "more"))
    return pick(rng, table["templates"]).format(caption=plain, n=SHAPES[records.shape[i]], c=said["comparative"],
                                                co=other["comparative"], po=other["positive"],
                                                ref=pick(rng, table["references"][attr]))


def captions(records: Records, rng: np.random.Generator, relational_share: float = 0.0) -> list[str]:
    """One caption per record; a `relational_share` of them with a relational clause (no extra draws at 0, so
    plain captions stay what they were)."""
    out = []
    for i in range(len(records)):
        text = caption(records, i, rng)
        out.append(relational(records, i, text, rng) if relational_share and rng.random() < relational_share
                   else text)
    return out
