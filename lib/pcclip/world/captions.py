"""Coarse captions for DiffWorld records, from the vocabulary in data/diffworld_captions.json.

Captions are what a human (or the synthesis LLM) sees: colour by name, shape by name or by a
visual feature phrase, continuous attributes bucketed into words, some attributes left out
at random. A shape that captions rarely name is called by a feature everywhere the world
speaks (`shape_phrase`): in difference descriptions, held-out phrasings and comparatives.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..resources import load_json
from .attributes import COLORS, SHAPES, Records


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
    v = vocabulary()
    xw, yw = v["x_words"][bucket(x)], v["y_words"][bucket(y)]
    key = "both" if xw and yw else "x_only" if xw else "y_only" if yw else "centre"
    return str(rng.choice(v["where"][key])).format(x=xw, y=yw)


@lru_cache(maxsize=1)
def feature_shapes() -> dict[str, str]:
    """Feature phrase -> the one shape it describes; phrases true of several shapes are left out."""
    owners: dict[str, set[str]] = {}
    for shape, phrases in vocabulary()["shape_features"].items():
        for phrase in phrases:
            owners.setdefault(phrase, set()).add(shape)
    return {phrase: next(iter(shapes)) for phrase, shapes in owners.items() if len(shapes) == 1}


def shape_phrase(shape: str) -> str:
    """What the world's texts call a shape: its name, or, for a shape captions name less than half
    the time, a generic noun with its first feature phrase that no other shape has."""
    v = vocabulary()
    if v["name_probability"].get(shape, 1.0) >= 0.5:
        return shape
    unique = [p for p in v["shape_features"][shape] if feature_shapes().get(p) == shape]
    if not unique:
        raise ValueError(f"shape {shape!r} is rarely named but none of its shape_features in diffworld_captions.json "
                         "is unique to it: add one, or raise its name_probability to 0.5 or more")
    return f"{v['generic_nouns'][0]} {unique[0]}"


def _shape_words(shape: str, rng: np.random.Generator) -> list[str]:
    """The shape's name or a generic noun, then perhaps one of its feature phrases."""
    v, p = vocabulary(), vocabulary()["probabilities"]
    named = rng.random() < v["name_probability"].get(shape, 1.0)
    noun = shape if named else str(rng.choice(v["generic_nouns"]))
    if rng.random() < (p["feature"] if named else p["feature_unnamed"]):
        return [noun, str(rng.choice(v["shape_features"][shape]))]
    return [noun]


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
    words += _shape_words(SHAPES[records.shape[i]], rng)
    desc = " ".join(w for w in words if w)
    where = _where(records.x[i], records.y[i], rng) if rng.random() < p["where"] else ""
    template = str(rng.choice(v["templates"]))
    return template.format(a=_article(desc), desc=desc, where=where)


def captions(records: Records, rng: np.random.Generator) -> list[str]:
    return [caption(records, i, rng) for i in range(len(records))]
