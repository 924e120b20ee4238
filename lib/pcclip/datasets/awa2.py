"""AwA2 class attributes, looked up by predicate name.

In the authors' code the 0-based predicate list has "big" at 14 and "small" at 15, while
their non-visual filter used 1-based numbers; here both are names, resolved against
predicates.txt, and the rows of both matrices (binary and continuous) follow classes.txt
(the labels of `read_awa2`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..resources import load_json
from .files import read_numbered_names
from .names import resolve_names

ATTRIBUTES_FILE = "awa2_attributes.json"


@dataclass(frozen=True, eq=False)
class AttributeTable:
    """Binary class x predicate matrix with names on both axes and a phrase per predicate."""

    classes: tuple[str, ...]
    predicates: tuple[str, ...]
    phrases: tuple[str, ...]
    matrix: np.ndarray  # (n_classes, n_predicates) bool

    def column(self, predicate: str) -> np.ndarray:
        """(n_classes,) bool: which classes have `predicate` (by name)."""
        return self.matrix[:, resolve_names([predicate], self.predicates, "AwA2 predicates")[0]]

    def without(self, predicates: list[str]) -> "AttributeTable":
        """The table with the named predicates removed (every name must exist)."""
        drop = set(resolve_names(predicates, self.predicates, "AwA2 predicates to remove"))
        keep = [i for i in range(len(self.predicates)) if i not in drop]
        return AttributeTable(self.classes, tuple(self.predicates[i] for i in keep),
                              tuple(self.phrases[i] for i in keep), self.matrix[:, keep])


def _names(folder: Path) -> tuple[list[str], list[str], dict[str, str]]:
    """(classes, predicates, predicate -> phrase): the two axes of every AwA2 matrix, in file order."""
    classes = read_numbered_names(folder / "classes.txt")
    predicates = read_numbered_names(folder / "predicates.txt")
    phrases = load_json(ATTRIBUTES_FILE)["predicates"]
    if predicates != list(phrases):
        raise ValueError(f"{folder}/predicates.txt does not list the 85 AwA2 predicates in the published order "
                         f"(pcclip/data/{ATTRIBUTES_FILE}); use the official AwA2 files")
    return classes, predicates, phrases


def _matrix(path: Path, shape: tuple[int, int], what: str) -> np.ndarray:
    """A whitespace-separated class x predicate matrix of the expected shape, all finite."""
    if not path.is_file():
        raise FileNotFoundError(f"missing file {path}")
    matrix = np.loadtxt(path, ndmin=2)
    if matrix.shape != shape or not np.isfinite(matrix).all():
        raise ValueError(f"{path}: expected {what} of shape {shape} (classes.txt x predicates.txt), "
                         f"got shape {matrix.shape}")
    return matrix


def load_attribute_table(folder: Path) -> AttributeTable:
    """Read classes.txt, predicates.txt and predicate-matrix-binary.txt of an AwA2 folder."""
    classes, predicates, phrases = _names(folder)
    matrix = _matrix(folder / "predicate-matrix-binary.txt", (len(classes), len(predicates)), "a 0/1 matrix")
    if not np.isin(matrix, (0, 1)).all():
        raise ValueError(f"{folder}/predicate-matrix-binary.txt: expected a 0/1 matrix, found other values")
    return AttributeTable(tuple(classes), tuple(predicates), tuple(phrases[p] for p in predicates), matrix == 1)


@dataclass(frozen=True, eq=False)
class PredicateStrengths:
    """AwA2's continuous class x predicate matrix (how strongly annotators tied each predicate to each
    class, 0..100), which orders classes where the binary matrix only splits them in two."""

    classes: tuple[str, ...]
    predicates: tuple[str, ...]
    matrix: np.ndarray  # (n_classes, n_predicates) float

    def column(self, predicate: str) -> np.ndarray:
        """(n_classes,) strength of `predicate` (by name) for every class, in classes.txt order."""
        return self.matrix[:, resolve_names([predicate], self.predicates, "AwA2 predicates")[0]]


def load_predicate_strengths(folder: Path) -> PredicateStrengths:
    """Read classes.txt, predicates.txt and predicate-matrix-continuous.txt of an AwA2 folder; rows
    follow classes.txt, the labels of `read_awa2` (not the alphabetical folder order the authors used)."""
    classes, predicates, _ = _names(folder)
    matrix = _matrix(folder / "predicate-matrix-continuous.txt", (len(classes), len(predicates)), "a real matrix")
    return PredicateStrengths(tuple(classes), tuple(predicates), matrix.astype(np.float64))


PREDICATE_LISTS = ("ours", "authors")


def visual_attributes(table: AttributeTable, predicates: str = "ours") -> AttributeTable:
    """The table without the non-visual predicates of the data file. "ours": the 32 of `nonvisual`, each
    phrased as the data file says; "authors": the 16 their code removes (`authors_nonvisual`: their
    1-based numbers read in a 0-based list, so e.g. "flys" and "walks" go and "smelly" stays), each
    phrased by its bare predicate name, as their descriptions are."""
    if predicates not in PREDICATE_LISTS:
        raise ValueError(f"predicates={predicates!r}: use 'ours' or 'authors' (eval.awa2_predicates)")
    if predicates == "authors":
        return replace(table, phrases=table.predicates).without(load_json(ATTRIBUTES_FILE)["authors_nonvisual"])
    return table.without(load_json(ATTRIBUTES_FILE)["nonvisual"])


def attribute_difference_text(table: AttributeTable, first: int, second: int, max_attributes: int = 5) -> str | None:
    """'The first image has attributes of X, while the second image has attributes of Y.' for classes
    `first` and `second` (X: what only the first has, Y: what only the second has, in predicate order,
    at most `max_attributes` each so the sentence fits CLIP's 77 tokens; 0: all, as the authors). None if
    either side is empty."""
    if max_attributes < 0:
        raise ValueError(f"max_attributes={max_attributes}: use a count >= 1, or 0 for every differing attribute")
    cap = max_attributes or None
    a, b = table.matrix[first], table.matrix[second]
    only_a = [table.phrases[i] for i in np.flatnonzero(a & ~b)[:cap]]
    only_b = [table.phrases[i] for i in np.flatnonzero(b & ~a)[:cap]]
    if not only_a or not only_b:
        return None
    return (f"The first image has attributes of {', '.join(only_a)}, "
            f"while the second image has attributes of {', '.join(only_b)}.")
