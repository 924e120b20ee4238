"""The offline writer: difference descriptions from captions (like an LLM) or exact attributes.

`caption` mode parses the two captions with the DiffWorld caption vocabulary and states
only what they support: 'large' vs 'small' supports 'the first is larger'; a caption
that leaves size out supports nothing about size. `oracle` mode reads the exact records
instead, so comparing the two measures what caption noise costs. Clauses and phrasings
come from `pcclip.world.phrasing` (data/difference_phrasings.json); this module combines
several facts into one description, records the frames and words it used, and writes its hard
negatives (the same description with the roles swapped, or with a clause negated: both false).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..profiles import SynthesisConfig
from ..world.phrasing import (GRAMMARS, OTHER, Phrase, article, attribute_phrase, attribute_words, category_phrase,
                              draw_index, phrasings, pick, sentence)
from .facts import Facts, caption_facts, oracle_facts
from .writer import Generation, PairInput

MODES = ("caption", "oracle")


@dataclass(frozen=True)
class Description:
    text: str
    attributes: tuple[str, ...]  # attributes whose difference the text states
    phrasings: tuple[str, ...]  # ids of the frames and templates used ("size:comparative:3", "multi:1")
    words: tuple[str, ...] = ()  # the attribute words and category values the clauses used
    negatives: tuple[str, ...] = ()  # hard negatives: roles swapped, and a negated false clause where one fits
    subjects: tuple[str, ...] = ()  # per clause, the image it is about: "first", "second", "" (a category)


def _multi_clause(attrs: list[str], directions: dict[str, int], rng: np.random.Generator,
                  nouns: tuple[str, str], subject_first: float) -> Phrase:
    """One clause comparing several continuous attributes: 'the first shape is larger and brighter than...'."""
    s = "first" if rng.random() < subject_first else "second"
    rels = ["more" if (directions[a] > 0) == (s == "first") else "less" for a in attrs]
    comps = [pick(rng, attribute_words(a, "train", r))["comparative"] for a, r in zip(attrs, rels)]
    clist = ", ".join(comps[:-1]) + " and " + comps[-1]
    templates = phrasings()["multi"]
    k = draw_index(rng, len(templates))

    def write(subject: str) -> str:
        ns, no = (nouns if subject == "first" else nouns[::-1])
        return templates[k].format(s=subject, o=OTHER[subject], ns=ns, no=no, clist=clist)
    return Phrase(write(s), f"multi:{k}", tuple(comps), 0, s, write(OTHER[s]))


def _clauses(facts: Facts, chosen: list[str], rng: np.random.Generator, nouns: tuple[str, str],
             subject_first: float, grammars: tuple[str, ...]) -> list[tuple[Phrase, tuple[str, ...]]]:
    """(phrase, attributes) per clause, in the order of `chosen`."""
    cont = [a for a in chosen if a in facts.directions]
    merge = len(cont) >= 2 and rng.random() < phrasings()["probabilities"]["multi"]
    out = []
    for attr in chosen:
        if attr in facts.categories:
            out.append((category_phrase(attr, facts.categories[attr], rng, "train", nouns), (attr,)))
        elif not merge:
            phrase = attribute_phrase(attr, facts.directions[attr], rng, "train", nouns, subject_first, grammars)
            out.append((phrase, (attr,)))
        elif attr == cont[0]:
            out.append((_multi_clause(cont, facts.directions, rng, nouns, subject_first), tuple(cont)))
    return out


def _nouns(facts: Facts, rng: np.random.Generator) -> tuple[str, str]:
    shape = facts.shared.get("shape")
    if shape and rng.random() < phrasings()["probabilities"]["named_noun"]:
        return shape, shape
    noun = pick(rng, phrasings()["nouns"])
    return noun, noun


def _assemble(texts: list[str], joins: list[str], same: tuple[str, str] | None) -> str:
    """Clauses joined as the description was: `joins` between them, then the shared-category opening."""
    text = texts[0]
    for join, clause in zip(joins, texts[1:]):
        text = join.format(a=text, b=clause)
    return sentence(same[0].format(same=same[1], b=text) if same else text)


def _negatives(kept: list[Phrase], joins: list[str], same: tuple[str, str] | None) -> tuple[str, ...]:
    """The description with every clause's roles swapped, and with its first negatable clause negated."""
    out = [_assemble([p.swapped for p in kept], joins, same)]
    k = next((i for i, p in enumerate(kept) if p.negated), None)
    if k is not None:
        out.append(_assemble([p.negated if i == k else p.text for i, p in enumerate(kept)], joins, same))
    return tuple(out)


def describe_facts(facts: Facts, rng: np.random.Generator, focus: str | None = None, max_facts: int = 3,
                   max_words: int = 18, subject_first: float = 0.5, grammars: tuple[str, ...] = ()) -> Description:
    """A description of up to `max_facts` differences ('' if there are none), `focus` first, with its
    hard negatives (`_negatives`); each continuous clause makes the first image its subject with probability
    `subject_first` (synthesis.subject_first) and draws the frames of further `grammars` too (`training_grammars`).

    Clauses are added while the text stays within `max_words` (the first one always is):
    the DiffWorld text tower reads only 24 tokens, and a truncated clause teaches nothing.
    """
    attrs = list(facts.directions) + list(facts.categories)
    if not attrs:
        return Description("", (), ())
    rest = [a for a in attrs if a != focus]
    rest = [rest[i] for i in rng.permutation(len(rest))]
    chosen = ([focus] if focus in attrs else []) + rest
    chosen = chosen[:1 + draw_index(rng, max_facts)]
    clauses = _clauses(facts, chosen, rng, _nouns(facts, rng), subject_first, grammars)
    kept, used, joins = [clauses[0][0]], list(clauses[0][1]), []
    text = clauses[0][0].text
    for phrase, clause_attrs in clauses[1:]:
        join = pick(rng, phrasings()["joins"])
        candidate = join.format(a=text, b=phrase.text)
        if len(candidate.split()) > max_words:
            break
        text, used = candidate, used + list(clause_attrs)
        kept.append(phrase)
        joins.append(join)
    same, ids = None, [p.id for p in kept]
    if facts.shared and rng.random() < phrasings()["probabilities"]["same"]:
        attr = pick(rng, sorted(facts.shared))
        value = facts.shared[attr]
        opening = pick(rng, phrasings()["same"][attr]).format(v=value, a_v=article(value))
        join = pick(rng, phrasings()["same_joins"])
        if len(join.format(same=opening, b=text).split()) <= max_words:
            same, ids = (join, opening), [f"same:{attr}"] + ids
    return Description(_assemble([p.text for p in kept], joins, same), tuple(used), tuple(ids),
                       tuple(w for p in kept for w in p.words), _negatives(kept, joins, same),
                       tuple(p.subject for p in kept))


# each further grammar and the synthesis setting that switches its frames on (synthesis.<grammar>_frames)
GRAMMAR_SWITCHES = {name: f"{name}_frames" for name in GRAMMARS}


def training_grammars(cfg: SynthesisConfig) -> tuple[str, ...]:
    """The further grammars whose frames the settings switch on for training data."""
    return tuple(name for name, switch in GRAMMAR_SWITCHES.items() if getattr(cfg, switch))


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
            d = describe_facts(self.facts(pair), np.random.default_rng(pair.seed), pair.focus, self.cfg.max_facts,
                               self.cfg.max_words, self.cfg.subject_first, training_grammars(self.cfg))
            out.append(Generation(text=d.text, attributes=d.attributes, phrasings=d.phrasings, words=d.words,
                                  negatives=d.negatives))
        return out
