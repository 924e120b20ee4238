"""The offline writer: difference descriptions from captions (like an LLM) or exact attributes.

`caption` mode parses the two captions with the DiffWorld caption vocabulary and states
only what they support: 'large' vs 'small' supports 'the first is larger'; a caption
that leaves size out supports nothing about size. `oracle` mode reads the exact records
instead, so comparing the two measures what caption noise costs. Phrasings are data
(data/difference_phrasings.json), written from the point of view of a subject image,
so each one serves both orders ('the first is larger' / 'the second is smaller').
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..profiles import SynthesisConfig
from ..resources import load_json
from ..world import CONTINUOUS
from ..world.attributes import CATEGORICAL
from .facts import Facts, caption_facts, oracle_facts
from .writer import Generation, PairInput

PHRASING_SPLITS = ("train", "eval")
MODES = ("caption", "oracle")
_OTHER = {"first": "second", "second": "first"}
_FLIP = {"more": "less", "less": "more"}


@lru_cache(maxsize=1)
def phrasings() -> dict:
    return load_json("difference_phrasings.json")


@dataclass(frozen=True)
class Description:
    text: str
    attributes: tuple[str, ...]  # attributes whose difference the text states
    phrasings: tuple[str, ...]  # ids of the templates used


def _index(rng: np.random.Generator, n: int) -> int:
    return int(rng.random() * n)  # several times faster than rng.integers for one draw


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[_index(rng, len(items))]


def _article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _check(split: str, attribute: str, allowed: Sequence[str]) -> None:
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
    return subject, _OTHER[subject], "more" if more else "less"


def _attribute_clause(attribute: str, direction: int, rng: np.random.Generator, split: str,
                      nouns: tuple[str, str]) -> tuple[str, str]:
    """(clause, phrasing id) stating `direction` for one continuous attribute."""
    table = phrasings()["attribute"][split]
    templates = [("any", t) for t in table["any"]] + [("own", t) for t in table[attribute]]
    k = _index(rng, len(templates))
    group, template = templates[k]
    s, o, rel = _roles(direction, rng)
    comp = phrasings()["comparatives"][attribute]
    fixed = {key: words[rel] for key, words in phrasings()["fixed_words"].items()}
    ns, no = (nouns if s == "first" else nouns[::-1])
    text = template.format(s=s, o=o, c=_pick(rng, comp[rel]), co=_pick(rng, comp[_FLIP[rel]]), ns=ns, no=no,
                           a_ns=_article(ns), **fixed)
    return text, f"{attribute}:{split}:{group}{k}"


def _category_clause(attribute: str, values: tuple[str, str], rng: np.random.Generator, split: str,
                     nouns: tuple[str, str]) -> tuple[str, str]:
    templates = phrasings()["category"][split][attribute]
    k = _index(rng, len(templates))
    s = "first" if rng.random() < 0.5 else "second"
    (vs, vo), (ns, no) = (values, nouns) if s == "first" else (values[::-1], nouns[::-1])
    text = templates[k].format(s=s, o=_OTHER[s], vs=vs, vo=vo, a_vs=_article(vs), a_vo=_article(vo),
                               A_vs=_article(vs).capitalize(), ns=ns, no=no)
    return text, f"{attribute}:{split}:{k}"


def _sentence(text: str) -> str:
    """Capitalise each sentence and end with a full stop."""
    text = re.sub(r"(^|\. )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text if text.endswith(".") else text + "."


def attribute_sentence(attribute: str, direction: int, rng: np.random.Generator, split: str = "train") -> str:
    """How image 1 differs from image 2 in one continuous attribute; direction +1: the first
    has more (larger / further right / lower / brighter). 'eval' phrasings never train."""
    _check(split, attribute, CONTINUOUS)
    noun = _pick(rng, phrasings()["nouns"])
    return _sentence(_attribute_clause(attribute, direction, rng, split, (noun, noun))[0])


def category_sentence(attribute: str, value1: str, value2: str, rng: np.random.Generator,
                      split: str = "train") -> str:
    """'The first image shows a ring, while the second shows a circle.' for shape or color."""
    _check(split, attribute, CATEGORICAL)
    if value1 == value2:
        raise ValueError(f"category_sentence describes a difference: both {attribute} values are {value1!r}")
    noun = _pick(rng, phrasings()["nouns"])
    return _sentence(_category_clause(attribute, (value1, value2), rng, split, (noun, noun))[0])


def _multi_clause(attrs: list[str], directions: dict[str, int], rng: np.random.Generator,
                  nouns: tuple[str, str]) -> tuple[str, str]:
    """One clause comparing several continuous attributes: 'the first shape is larger and brighter than...'."""
    s = "first" if rng.random() < 0.5 else "second"
    rels = ["more" if (directions[a] > 0) == (s == "first") else "less" for a in attrs]
    comps = [_pick(rng, phrasings()["comparatives"][a][r]) for a, r in zip(attrs, rels)]
    clist = ", ".join(comps[:-1]) + " and " + comps[-1]
    templates = phrasings()["multi"]
    k = _index(rng, len(templates))
    ns, no = (nouns if s == "first" else nouns[::-1])
    return templates[k].format(s=s, o=_OTHER[s], ns=ns, no=no, clist=clist), f"multi:{k}"


def _clauses(facts: Facts, chosen: list[str], rng: np.random.Generator,
             nouns: tuple[str, str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(text, phrasing id, attributes) per clause, in the order of `chosen`."""
    cont = [a for a in chosen if a in facts.directions]
    merge = len(cont) >= 2 and rng.random() < phrasings()["probabilities"]["multi"]
    out = []
    for attr in chosen:
        if attr in facts.categories:
            out.append((*_category_clause(attr, facts.categories[attr], rng, "train", nouns), (attr,)))
        elif not merge:
            out.append((*_attribute_clause(attr, facts.directions[attr], rng, "train", nouns), (attr,)))
        elif attr == cont[0]:
            out.append((*_multi_clause(cont, facts.directions, rng, nouns), tuple(cont)))
    return out


def describe(facts: Facts, rng: np.random.Generator, focus: str | None = None, max_facts: int = 3,
             max_words: int = 18) -> Description:
    """A description of up to `max_facts` differences ('' if there are none), `focus` first.

    Clauses are added while the text stays within `max_words` (the first one always is):
    the DiffWorld text tower reads only 24 tokens, and a truncated clause teaches nothing.
    """
    attrs = list(facts.directions) + list(facts.categories)
    if not attrs:
        return Description("", (), ())
    rest = [a for a in attrs if a != focus]
    rest = [rest[i] for i in rng.permutation(len(rest))]
    chosen = ([focus] if focus in attrs else []) + rest
    chosen = chosen[:1 + _index(rng, max_facts)]
    shape = facts.shared.get("shape")
    if shape and rng.random() < phrasings()["probabilities"]["named_noun"]:
        nouns = (shape, shape)
    else:
        noun = _pick(rng, phrasings()["nouns"])
        nouns = (noun, noun)
    clauses = _clauses(facts, chosen, rng, nouns)
    text, ids, used = clauses[0][0], [clauses[0][1]], list(clauses[0][2])
    for clause, pid, clause_attrs in clauses[1:]:
        candidate = _pick(rng, phrasings()["joins"]).format(a=text, b=clause)
        if len(candidate.split()) > max_words:
            break
        text, ids, used = candidate, ids + [pid], used + list(clause_attrs)
    if facts.shared and rng.random() < phrasings()["probabilities"]["same"]:
        attr = _pick(rng, sorted(facts.shared))
        value = facts.shared[attr]
        same = _pick(rng, phrasings()["same"][attr]).format(v=value, a_v=_article(value))
        candidate = _pick(rng, phrasings()["same_joins"]).format(same=same, b=text)
        if len(candidate.split()) <= max_words:
            text, ids = candidate, [f"same:{attr}"] + ids
    return Description(_sentence(text), tuple(used), tuple(ids))


class TemplateWriter:
    """Writer 'template': pure Python, deterministic per pair (its rng comes from the pair's seed)."""

    name = "template"

    def __init__(self, cfg: SynthesisConfig) -> None:
        if cfg.mode not in MODES:
            raise ValueError(f"synthesis.mode {cfg.mode!r} must be one of {MODES}")
        if cfg.max_facts < 1 or cfg.max_words < 1:
            raise ValueError(f"synthesis.max_facts and max_words must be >= 1, got {cfg.max_facts}, {cfg.max_words}")
        self.cfg = cfg
        self.model = cfg.mode
        self.prompt_version = phrasings()["version"]

    def facts(self, pair: PairInput) -> Facts:
        if self.cfg.mode == "caption":
            return caption_facts(pair.captions1, pair.captions2)
        if pair.truth1 is None or pair.truth2 is None:
            raise ValueError("synthesis.mode='oracle' needs exact attributes (DiffWorld); use mode='caption'")
        return oracle_facts(pair.truth1, pair.truth2, self.cfg.oracle_gap)

    def write(self, batch: Sequence[PairInput]) -> list[Generation]:
        out = []
        for pair in batch:
            d = describe(self.facts(pair), np.random.default_rng(pair.seed), pair.focus, self.cfg.max_facts,
                         self.cfg.max_words)
            out.append(Generation(text=d.text, attributes=d.attributes, phrasings=d.phrasings))
        return out
