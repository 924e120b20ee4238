"""DiffWorld's difference sentences: how image 1 differs from image 2, phrased from a grammar in data.

Continuous attributes are phrased by frames (data/difference_phrasings.json): templates in families
(comparative, superlative, two-clause contrast, letter/number-marked roles, change over time, inverted
order, negation), each written from the point of view of a subject image, so one frame serves both
orders ('the first is larger' / 'the second is smaller'). Some frames and some words are held out:
they never appear in training data, so evaluation can ask whether a model generalises over structures
and words rather than over sentences of the grammar it was trained on. A phrasing selects frames and
words: 'train' (training frames and words: the finetuning data), 'eval' (held-out frames, training words),
and the evaluation families of STRUCTURES: besides the frame families, 'subject_first' and 'subject_second'
draw training frames with the given image as the grammatical subject ('the second shape is darker than the
first one'), because a text tower can read one role and not the other. Every draw comes from the caller's
generator, and every sentence keeps a record of its frame, its words and its hard negatives (`Phrase`). Each
held-out frame is also a phrasing of its own, named by its id ('negation:2'), so that a weak frame cannot hide in
its family's row either. Further grammars (GRAMMARS, a frame's 'grammar' in the data) add training arrangements
that only their switch draws: 'broad' (synthesis.broad_frames) and 'order' (synthesis.order_frames: frames whose
described image is not the last one named before the predicate, so that word position alone cannot bind roles).
Every evaluation phrasing leaves them out, so every grammar is scored on one set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from string import Formatter
from typing import Sequence

import numpy as np

from ..resources import load_json
from .attributes import CATEGORICAL, CONTINUOUS

PHRASING_SPLITS = ("train", "eval")
# the further training grammars, each drawn only under its synthesis switch (broad_frames, order_frames)
GRAMMARS = ("broad", "order")
FAMILIES = ("comparative", "superlative", "two_clause", "marked_roles", "change", "inverted", "negation")
# evaluation families: fresh draws of training frames, held-out frames, training frames with held-out words,
# and the held-out frames of each family on their own
# training frames whose subject is the first / the second image (not the passive ones, whose subject is the image with
# more); new families go last, as their order seeds the evaluation draws (evaluation.diffworld_sets)
SUBJECTS = ("subject_first", "subject_second")
STRUCTURES = ("seen_frames", "heldout_frames", "heldout_words", *FAMILIES, *SUBJECTS)
PHRASINGS = (*PHRASING_SPLITS, *STRUCTURES)
OTHER = {"first": "second", "second": "first"}
_FLIP = {"more": "less", "less": "more"}
_WORD_SLOTS = {"c": ("subject", "comparative"), "co": ("other", "comparative"), "p": ("subject", "positive"),
               "po": ("other", "positive"), "vo": ("other", "verb")}


@lru_cache(maxsize=1)
def phrasings() -> dict:
    return load_json("difference_phrasings.json")


def draw_index(rng: np.random.Generator, n: int) -> int:
    return int(rng.random() * n)  # several times faster than rng.integers for one draw


def pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[draw_index(rng, len(items))]


def article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


@dataclass(frozen=True)
class Frame:
    id: str  # "<family>:<index in the family>"
    family: str
    text: str
    negated: str | None  # the frame negated: false with the same fills
    heldout: bool
    # "core", or the further training grammar the frame belongs to (GRAMMARS), which trains it only when switched on
    grammar: str
    attributes: tuple[str, ...]  # the attributes the frame fits
    subject_more: bool  # the image with more is always the subject (passive frames)

    @property
    def slots(self) -> set[str]:
        return {name for _, name, _, _ in Formatter().parse(self.text) if name}


@dataclass(frozen=True)
class Phrase:
    """One clause and its record: which frame and words it used, the direction it states
    (+1: the first image has more; 0 for a category), and its false variants (hard negatives)."""

    text: str
    id: str  # "<attribute>:<family>:<index>"
    words: tuple[str, ...]
    direction: int
    subject: str  # the image the clause is about: "first" or "second" ("" for a category)
    swapped: str  # the same frame and draws with the roles exchanged: states the opposite
    negated: str | None = None  # the frame's negated form with the same draws, where it has one: false


@lru_cache(maxsize=1)
def frames() -> tuple[Frame, ...]:
    table = phrasings()["frames"]
    if tuple(table) != FAMILIES:
        raise ValueError(f"difference_phrasings.json frame families {tuple(table)} must be {FAMILIES}")
    out = tuple(Frame(f"{family}:{k}", family, f["text"], f.get("negated"), bool(f.get("heldout")),
                      f.get("grammar", "core"), tuple(f.get("attributes", CONTINUOUS)), f.get("subject") == "more")
                for family, entries in table.items() for k, f in enumerate(entries))
    odd = [f.id for f in out if f.grammar not in ("core", *GRAMMARS) or (f.heldout and f.grammar != "core")]
    if odd:
        raise ValueError(f"difference_phrasings.json frames {odd}: 'grammar' must be one of {GRAMMARS} (or left out), "
                         "and a held-out frame belongs to no further grammar")
    return out


@lru_cache(maxsize=1)
def heldout_frame_ids() -> tuple[str, ...]:
    """The held-out frames' ids, in the grammar's order: each one is an evaluation phrasing of its own."""
    return tuple(f.id for f in frames() if f.heldout)


def phrasing_names() -> tuple[str, ...]:
    """Every phrasing `selection` knows: PHRASINGS, then each held-out frame by its id."""
    return (*PHRASINGS, *heldout_frame_ids())


def selection(phrasing: str, attribute: str, grammars: tuple[str, ...] = ()) -> tuple[tuple[Frame, ...], str]:
    """(frames, word split 'train' or 'heldout') that `phrasing` draws from for `attribute`. `grammars`: training
    data also draws the frames of these further grammars (GRAMMARS, switched on by synthesis.broad_frames and
    synthesis.order_frames); the evaluation families keep to the core frames, so models trained on any grammar are
    scored on the same sentences."""
    if phrasing not in phrasing_names():
        raise ValueError(f"phrasing split {phrasing!r} must be one of {PHRASINGS} or a held-out frame's id "
                         f"{heldout_frame_ids()}")
    drawn = ("core", *grammars) if phrasing == "train" else ("core",)
    fits = [f for f in frames() if attribute in f.attributes and f.grammar in drawn]
    if phrasing in ("train", "seen_frames"):
        chosen = [f for f in fits if not f.heldout]
    elif phrasing in SUBJECTS:
        chosen = [f for f in fits if not f.heldout and not f.subject_more]
    elif phrasing == "heldout_words":  # frames with a word slot (not the passive ones), so each sentence has one
        chosen = [f for f in fits if not f.heldout and f.slots & set(_WORD_SLOTS)]
    elif phrasing in ("eval", "heldout_frames"):
        chosen = [f for f in fits if f.heldout]
    elif phrasing in FAMILIES:
        chosen = [f for f in fits if f.heldout and f.family == phrasing]
    else:  # one held-out frame
        chosen = [f for f in fits if f.id == phrasing]
    return tuple(chosen), "heldout" if phrasing == "heldout_words" else "train"


def attribute_words(attribute: str, word_split: str, relation: str) -> list[dict]:
    """The synonym entries (comparative, positive, verb forms) for one relation of an attribute."""
    table = phrasings()["words"][attribute]
    return table["heldout"][relation] if word_split == "heldout" else table[relation]


def heldout_words() -> dict[str, set[str]]:
    """attribute -> the words of its held-out entries that no training entry or frame uses ('east', 'tinier')."""
    def tokens(entries: list[dict]) -> set[str]:
        return {w for e in entries for form in e.values() for w in form.split()}
    table = phrasings()["words"]
    common = {w for f in frames() for w in re.findall(r"[a-z]+", f.text)}
    common |= set().union(*(tokens(t["more"] + t["less"]) for t in table.values()))
    return {attr: tokens(t["heldout"]["more"] + t["heldout"]["less"]) - common for attr, t in table.items()}


def _check_split_and_attribute(split: str, attribute: str, allowed: Sequence[str], splits: Sequence[str]) -> None:
    if split not in splits:
        raise ValueError(f"phrasing split {split!r} must be one of {tuple(splits)}")
    if attribute not in allowed:
        raise ValueError(f"attribute {attribute!r} must be one of {tuple(allowed)}")


def _render(frame: Frame, subject: str, fills: dict[str, str], nouns: tuple[str, str], roles: tuple[str, str],
            text: str | None = None) -> str:
    """The frame (or its `text` variant) with `subject` as the subject role; nouns and roles in image order."""
    s, o = (0, 1) if subject == "first" else (1, 0)
    return (text or frame.text).format(s=subject, o=OTHER[subject], S=roles[s], O=roles[o], ns=nouns[s],
                                       no=nouns[o], a_ns=article(nouns[s]), **fills)


def attribute_phrase(attribute: str, direction: int, rng: np.random.Generator, split: str = "train",
                     nouns: tuple[str, str] = ("shape", "shape"), subject_first: float = 0.5,
                     grammars: tuple[str, ...] = ()) -> Phrase:
    """A clause stating `direction` for one continuous attribute (+1: the first image has more), whose subject
    is the first image with probability `subject_first` (but in passive frames and the subject families);
    `grammars`: training clauses also draw the frames of these further grammars (`selection`).

    The draws (frame, subject, role marks, words) take the same random numbers for either direction, so the
    same generator state phrases a fact and its reversed twin with one frame and opposite meaning."""
    _check_split_and_attribute(split, attribute, CONTINUOUS, phrasing_names())
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (first image has more) or -1, got {direction!r}")
    chosen, word_split = selection(split, attribute, grammars)
    if not chosen:
        raise ValueError(f"phrasing {split!r} has no frame for {attribute!r}: add one to difference_phrasings.json")
    frame = chosen[draw_index(rng, len(chosen))]
    subject = "first" if rng.random() < subject_first else "second"
    if frame.subject_more:
        subject = "first" if direction > 0 else "second"
    elif split in SUBJECTS:  # drawn above all the same: both subjects then take the same frame, roles and words
        subject = split.removeprefix("subject_")
    roles = tuple(pick(rng, phrasings()["roles"]))
    relation = "more" if (direction > 0) == (subject == "first") else "less"
    entries = {"subject": pick(rng, attribute_words(attribute, word_split, relation)),
               "other": pick(rng, attribute_words(attribute, word_split, _FLIP[relation]))}
    fills = {slot: entries[who][form] for slot, (who, form) in _WORD_SLOTS.items()}
    used = tuple(fills[slot] for slot in sorted(frame.slots & set(fills)))
    return Phrase(_render(frame, subject, fills, nouns, roles), f"{attribute}:{frame.id}", used, direction, subject,
                  _render(frame, OTHER[subject], fills, nouns, roles),
                  _render(frame, subject, fills, nouns, roles, frame.negated) if frame.negated else None)


def category_phrase(attribute: str, values: tuple[str, str], rng: np.random.Generator, split: str,
                    nouns: tuple[str, str]) -> Phrase:
    """A clause naming each image's shape or colour; its swap names them the other way round."""
    templates = phrasings()["category"][split][attribute]
    k = draw_index(rng, len(templates))
    s = "first" if rng.random() < 0.5 else "second"

    def write(pair: tuple[str, str]) -> str:
        (vs, vo), (ns, no) = (pair, nouns) if s == "first" else (pair[::-1], nouns[::-1])
        return templates[k].format(s=s, o=OTHER[s], vs=vs, vo=vo, a_vs=article(vs), a_vo=article(vo),
                                   A_vs=article(vs).capitalize(), ns=ns, no=no)
    return Phrase(write(values), f"{attribute}:{split}:{k}", tuple(values), 0, "", write(values[::-1]))


def sentence(text: str) -> str:
    """Capitalise each sentence and end with a full stop."""
    text = re.sub(r"(^|[.?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text if text.endswith(".") else text + "."


def attribute_sentence(attribute: str, direction: int, rng: np.random.Generator, split: str = "train") -> str:
    """How image 1 differs from image 2 in one continuous attribute; direction +1: the first
    has more (larger / further right / lower / brighter). `split`: one of `phrasing_names()` ('eval', the
    structures other than seen_frames and the held-out frames' ids never train)."""
    return sentence(sentence_phrase(attribute, direction, rng, split).text)


def sentence_phrase(attribute: str, direction: int, rng: np.random.Generator, split: str = "train") -> Phrase:
    """The clause `attribute_sentence` writes, with its record (which frame a sentence of an evaluation set used)."""
    _check_split_and_attribute(split, attribute, CONTINUOUS, phrasing_names())
    noun = pick(rng, phrasings()["nouns"])
    return attribute_phrase(attribute, direction, rng, split, (noun, noun))


def category_sentence(attribute: str, value1: str, value2: str, rng: np.random.Generator,
                      split: str = "train") -> str:
    """'The first image shows a ring, while the second shows a circle.' for shape or color."""
    _check_split_and_attribute(split, attribute, CATEGORICAL, PHRASING_SPLITS)
    if value1 == value2:
        raise ValueError(f"category_sentence describes a difference: both {attribute} values are {value1!r}")
    noun = pick(rng, phrasings()["nouns"])
    return sentence(category_phrase(attribute, (value1, value2), rng, split, (noun, noun)).text)
