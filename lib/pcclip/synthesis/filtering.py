"""Reject degenerate generated descriptions and say why.

An LLM asked for a difference description sometimes returns nothing, code, a list,
one word repeated, or a sentence about one image; such text would teach the text
tower noise. Rules live in data/difference_filter.json; each rejection records the
first rule that failed so the report can count reasons.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from ..resources import load_json

# Every reason a description can be rejected for, in the order the rules are checked.
REASONS: tuple[str, ...] = (
    "empty", "non_text", "code_or_markup", "repeated_chars", "repeated_words", "too_short", "too_long",
    "not_about_two_images", "near_duplicate",
)
WRITER_ERROR = "writer_error"  # the writer returned no text (e.g. a malformed server reply); not a text rule
_WORD = re.compile(r"[a-z0-9']+")
_SPACE = re.compile(r"\s")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class FilterRules:
    min_words: int
    max_words: int
    max_chars: int
    min_letter_ratio: float
    code_or_markup: tuple[str, ...]
    max_char_run: int
    max_word_run: int
    ngram: int
    max_ngram_repeats: int
    min_unique_word_ratio: float
    unique_ratio_min_words: int
    two_images: str
    min_image_refs: int


def load_rules(name: str = "difference_filter.json") -> FilterRules:
    raw = {k: v for k, v in load_json(name).items() if not k.startswith("_")}
    raw["code_or_markup"] = tuple(raw["code_or_markup"])
    return FilterRules(**raw)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _non_text(text: str, rules: FilterRules) -> bool:
    """Control characters, replacement characters, or too few letters (symbol or digit soup)."""
    flat = _SPACE.sub(" ", text)
    if not flat.isprintable() or "\ufffd" in flat:
        return True
    chars = len(flat) - flat.count(" ")
    return len(_LETTER.findall(flat)) < rules.min_letter_ratio * chars


def _repeated_words(tokens: list[str], rules: FilterRules) -> bool:
    run = 1
    for prev, cur in zip(tokens, tokens[1:]):
        run = run + 1 if cur == prev else 1
        if run > rules.max_word_run:
            return True
    grams = Counter(tuple(tokens[i:i + rules.ngram]) for i in range(len(tokens) - rules.ngram + 1))
    if grams and max(grams.values()) > rules.max_ngram_repeats:
        return True
    return (len(tokens) >= rules.unique_ratio_min_words
            and len(set(tokens)) < rules.min_unique_word_ratio * len(tokens))


@lru_cache(maxsize=8)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern, ...]:
    return tuple(re.compile(p, flags=re.MULTILINE) for p in patterns)


def check(text: str, rules: FilterRules) -> str:
    """'' if `text` passes every stateless rule, else the name of the first rule it fails."""
    if not text.strip():
        return "empty"
    if _non_text(text, rules):
        return "non_text"
    if any(p.search(text) for p in _compiled(rules.code_or_markup)):
        return "code_or_markup"
    if re.search(r"(.)\1{%d,}" % rules.max_char_run, text):
        return "repeated_chars"
    tokens = words(text)
    if _repeated_words(tokens, rules):
        return "repeated_words"
    if len(tokens) < rules.min_words:
        return "too_short"
    if len(tokens) > rules.max_words or len(text) > rules.max_chars:
        return "too_long"
    if len(re.findall(rules.two_images, text.lower())) < rules.min_image_refs:
        return "not_about_two_images"
    return ""


def duplicate_key(text: str) -> str:
    """Texts equal up to case, punctuation and spacing share a key (near-duplicates)."""
    return " ".join(words(text))


class DescriptionFilter:
    """The stateless rules plus a cap on copies of one text across the whole run.

    `max_copies` = 0 turns the cap off: the template writer repeats short sentences
    by design (a difference has finitely many phrasings), an LLM that does so is stuck.
    `accepted` seeds the copy counts on a resumed run, so a rerun decides as a fresh run would.
    """

    def __init__(self, rules: FilterRules, max_copies: int = 0, accepted: Iterable[str] = ()) -> None:
        self.rules = rules
        self.max_copies = max_copies
        self.copies = Counter(duplicate_key(t) for t in accepted)

    def __call__(self, text: str) -> str:
        reason = check(text, self.rules)
        if reason:
            return reason
        key = duplicate_key(text)
        if self.max_copies and self.copies[key] >= self.max_copies:
            return "near_duplicate"
        self.copies[key] += 1
        return ""
