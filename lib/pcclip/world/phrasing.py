"""DiffWorld's difference sentences: how image 1 differs from image 2, phrased from data.

Phrasings are data (data/difference_phrasings.json), written from the point of view of a subject
image, so each one serves both orders ('the first is larger' / 'the second is smaller'). The
'train' phrasings write the finetuning data (`pcclip.synthesis.template`); the 'eval' ones never
train and phrase the evaluation and geometry sets. Every draw comes from the caller's generator.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..resources import load_json
from .attributes import CATEGORICAL, CONTINUOUS

PHRASING_SPLITS = ("train", "eval")
OTHER = {"first": "second", "second": "first"}
_FLIP = {"more": "less", "less": "more"}


@lru_cache(maxsize=1)
def phrasings() -> dict:
    return load_json("difference_phrasings.json")


def draw_index(rng: np.random.Generator, n: int) -> int:
    return int(rng.random() * n)  # several times faster than rng.integers for one draw


def pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[draw_index(rng, len(items))]


def article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _check_split_and_attribute(split: str, attribute: str, allowed: Sequence[str]) -> None:
    if split not in PHRASING_SPLITS:
        raise ValueError(f"phrasing split {split!r} must be one of {PHRASING_SPLITS}")
    if attribute not in allowed:
        raise ValueError(f"attribute {attribute!r} must be one of {tuple(allowed)}")


def _roles(direction: int, rng: np.random.Generator) -> tuple[str, str, str]:
    """(subject, other, subject's relation): both orders of one fact, chosen at random."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (first image has more) or -1, got {direction!r}")
    subject = "first" if rng.random() < 0.5 else "second"
    more = (direction > 0) == (subject == "first")
    return subject, OTHER[subject], "more" if more else "less"


def attribute_clause(attribute: str, direction: int, rng: np.random.Generator, split: str,
                      nouns: tuple[str, str]) -> tuple[str, str]:
    """(clause, phrasing id) stating `direction` for one continuous attribute."""
    table = phrasings()["attribute"][split]
    templates = [("any", t) for t in table["any"]] + [("own", t) for t in table[attribute]]
    k = draw_index(rng, len(templates))
    group, template = templates[k]
    s, o, rel = _roles(direction, rng)
    comp = phrasings()["comparatives"][attribute]
    fixed = {key: words[rel] for key, words in phrasings()["fixed_words"].items()}
    ns, no = (nouns if s == "first" else nouns[::-1])
    text = template.format(s=s, o=o, c=pick(rng, comp[rel]), co=pick(rng, comp[_FLIP[rel]]), ns=ns, no=no,
                           a_ns=article(ns), **fixed)
    return text, f"{attribute}:{split}:{group}{k}"


def category_clause(attribute: str, values: tuple[str, str], rng: np.random.Generator, split: str,
                     nouns: tuple[str, str]) -> tuple[str, str]:
    templates = phrasings()["category"][split][attribute]
    k = draw_index(rng, len(templates))
    s = "first" if rng.random() < 0.5 else "second"
    (vs, vo), (ns, no) = (values, nouns) if s == "first" else (values[::-1], nouns[::-1])
    text = templates[k].format(s=s, o=OTHER[s], vs=vs, vo=vo, a_vs=article(vs), a_vo=article(vo),
                               A_vs=article(vs).capitalize(), ns=ns, no=no)
    return text, f"{attribute}:{split}:{k}"


def sentence(text: str) -> str:
    """Capitalise each sentence and end with a full stop."""
    text = re.sub(r"(^|\. )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text if text.endswith(".") else text + "."


def attribute_sentence(attribute: str, direction: int, rng: np.random.Generator, split: str = "train") -> str:
    """How image 1 differs from image 2 in one continuous attribute; direction +1: the first
    has more (larger / further right / lower / brighter). 'eval' phrasings never train."""
    _check_split_and_attribute(split, attribute, CONTINUOUS)
    noun = pick(rng, phrasings()["nouns"])
    return sentence(attribute_clause(attribute, direction, rng, split, (noun, noun))[0])


def category_sentence(attribute: str, value1: str, value2: str, rng: np.random.Generator,
                      split: str = "train") -> str:
    """'The first image shows a ring, while the second shows a circle.' for shape or color."""
    _check_split_and_attribute(split, attribute, CATEGORICAL)
    if value1 == value2:
        raise ValueError(f"category_sentence describes a difference: both {attribute} values are {value1!r}")
    noun = pick(rng, phrasings()["nouns"])
    return sentence(category_clause(attribute, (value1, value2), rng, split, (noun, noun))[0])
