"""Class groups (size, colour) from data/groups/<set>.json, resolved against a dataset's own names.

A group file lists classes by name ("groups": {"larger": ["camel", ...]}) or, for AwA2, by
predicate name ("predicates": {"larger": "big"}); "template" is the difference sentence
with {first} and {second} replaced by the group names of the two images; "ordered": true
says the groups are listed from most to least (larger before smaller).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..resources import load_json
from .awa2 import AttributeTable
from .names import resolve_names


@dataclass(frozen=True)
class ClassGroups:
    name: str
    template: str
    groups: dict[str, tuple[int, ...]]  # group name -> class labels
    ordered: bool = False  # groups listed from most to least of a quantity (size)

    def text(self, first: str, second: str) -> str:
        return self.template.format(first=first, second=second)


def _by_predicate(spec: dict[str, str], table: AttributeTable) -> dict[str, tuple[int, ...]]:
    """Group g = classes with predicate spec[g] and none of the other groups' predicates."""
    has = {g: table.column(p) for g, p in spec.items()}
    out = {}
    for g in spec:
        others = np.zeros(len(table.classes), dtype=bool)
        for h in spec:
            if h != g:
                others |= has[h]
        out[g] = tuple(int(i) for i in np.flatnonzero(has[g] & ~others))
    return out


def load_groups(set_name: str, classnames: Sequence[str], table: AttributeTable | None = None) -> ClassGroups:
    """Groups of data/groups/<set_name>.json as label indices of a dataset with `classnames`."""
    spec = load_json(f"groups/{set_name}.json")
    if "predicates" in spec:
        if table is None:
            raise ValueError(f"group set {set_name!r} is defined by attributes: pass the dataset's AttributeTable")
        if len(table.classes) != len(classnames):
            raise ValueError(f"group set {set_name!r}: attribute table has {len(table.classes)} classes, "
                             f"the dataset {len(classnames)}")
        groups = _by_predicate(spec["predicates"], table)
    else:
        what = f"group set {set_name!r} (pcclip/data/groups/{set_name}.json) against {spec['dataset']} classes"
        groups = {g: tuple(resolve_names(names, classnames, what)) for g, names in spec["groups"].items()}
    flat = [c for members in groups.values() for c in members]
    if len(flat) != len(set(flat)):
        raise ValueError(f"group set {set_name!r}: a class belongs to two groups")
    empty = [g for g, members in groups.items() if not members]
    if empty or len(groups) < 2:
        raise ValueError(f"group set {set_name!r}: needs at least two non-empty groups (empty: {empty})")
    return ClassGroups(set_name, spec["template"], groups, bool(spec.get("ordered", False)))
