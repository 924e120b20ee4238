"""Classes and attributes by name, never by raw index.

The authors' code picked Flowers-102 colours and the AwA2 "big" attribute by index and
got them wrong. Here every group, attribute and comparative is written by name in a data
file and resolved against the names the dataset itself gives, failing loudly (with the
closest names) when one does not resolve.
"""
from __future__ import annotations

import difflib
import re
from typing import Sequence

from ..resources import load_json


class UnknownName(ValueError):
    """A name in a data file or argument that is not among the dataset's own names."""


def normalize_name(name: str) -> str:
    """Case, spaces, '_', '-', '/' and '+' do not distinguish names ("Black-footed" == "black_footed")."""
    return " ".join(re.sub(r"[\s_\-/+]+", " ", name).lower().split())


def _index(names: Sequence[str], what: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        key = normalize_name(name)
        if key in index:
            raise ValueError(f"{what}: names {names[index[key]]!r} and {name!r} are the same after normalisation; "
                             "names could not be resolved unambiguously")
        index[key] = i
    return index


def resolve_names(wanted: Sequence[str], names: Sequence[str], what: str) -> list[int]:
    """Positions of `wanted` in `names`; every failure is reported at once with the closest names."""
    index = _index(names, what)
    missing = [w for w in wanted if normalize_name(w) not in index]
    if missing:
        hints = []
        for w in missing:
            close = difflib.get_close_matches(normalize_name(w), list(index), n=3, cutoff=0.5)
            hints.append(f"{w!r} (closest: {[names[index[c]] for c in close] or 'none'})")
        raise UnknownName(f"{what}: {len(missing)} name(s) not found: {'; '.join(hints)}")
    return [index[normalize_name(w)] for w in wanted]


def class_table(dataset: str) -> dict[str, str]:
    """Raw label name -> prompt name, in label order, from data/classnames/<dataset>.json."""
    return dict(load_json(f"classnames/{dataset}.json")["classes"])


def display_names(dataset: str, title: str, raw: Sequence[str]) -> tuple[str, ...]:
    """Prompt names for the labels the dataset gave, after checking they are the published ones in order.

    A mismatch means a different copy or version of the dataset (or a parsing change in
    torchvision): labels would silently mean other classes, so it is an error.
    """
    table = class_table(dataset)
    expected, raw = list(table), list(raw)
    if raw != expected:
        i = next((k for k, (a, b) in enumerate(zip(raw, expected)) if a != b), min(len(raw), len(expected)))
        got = raw[i] if i < len(raw) else "<none>"
        want = expected[i] if i < len(expected) else "<none>"
        raise ValueError(f"{title}: label {i} on disk is {got!r} but pcclip/data/classnames/{dataset}.json expects "
                         f"{want!r} ({len(raw)} classes on disk, {len(expected)} expected); use the official copy "
                         "of the dataset or fix the class list")
    return tuple(table.values())
