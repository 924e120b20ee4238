"""Controlled DiffWorld sets: objects and their single-attribute edits.

Each object has a base record (continuous attributes in the middle caption bucket)
and ten edits made with `Records.replace`: size, x, y and brightness moved up and
down by `delta`, a new colour, a new shape. An edit differs from its base in exactly
one attribute, so "the same change applied to another object" has an exact answer:
the analogies and the difference-guided retrieval of notebook 05 are scored on it.
The bases and edits of all objects form the gallery.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from .fingerprint import fingerprint
from .models import ClipBundle
from .profiles import GeometryConfig, WorldConfig
from .world import COLORS, CONTINUOUS, SHAPES, Records, make_records, render
from .world.captions import bucket, vocabulary
from .world.dataset import RENDER_VERSION, allowed_pairs
from .world.phrasing import attribute_sentence, category_sentence

EDITS: tuple[tuple[str, int], ...] = tuple((a, d) for a in CONTINUOUS for d in (1, -1)) + (("color", 0), ("shape", 0))
EDIT_SPLITS: tuple[str, ...] = ("val", "test")  # val chooses lambda, test reports
EDITSET_VERSION = 1  # bump when the construction below changes: invalidates embedding caches


def edit_label(attribute: str, direction: int) -> str:
    """'size+', 'x-', 'color', ...: direction +1 means the edited image has more of the attribute."""
    return attribute + {1: "+", -1: "-", 0: ""}[direction]


EDIT_LABELS: tuple[str, ...] = tuple(edit_label(a, d) for a, d in EDITS)


@dataclass(frozen=True)
class EditSet:
    """Records of a controlled set; rows [0, n_gallery) are the gallery (bases, then edits).

    Query q = i * n_edits + k asks for edit k of object i: C = base[i], D = edited[i, k],
    and the analogy's example pair A - B shows the same change on another object.
    """

    split: str
    image_size: int
    records: Records
    base: np.ndarray  # (n_objects,) row of each unedited object
    edited: np.ndarray  # (n_objects, n_edits) row of object i with edit k applied
    donor_a: np.ndarray  # (n_objects, n_edits) A: another object with the same change applied
    donor_b: np.ndarray  # (n_objects, n_edits) B: that object before the change
    n_gallery: int
    key: str  # identifies the pixels for the embedding cache

    @cached_property
    def images(self) -> np.ndarray:
        return render(self.records, self.image_size)

    @cached_property
    def texts(self) -> list[str]:
        """A fixed caption of every record, in the words the captions of DiffWorld use."""
        return record_texts(self.records)

    @property
    def n_objects(self) -> int:
        return len(self.base)

    def queries(self) -> dict[str, np.ndarray]:
        """Flattened query arrays: rows a, b, c, d and the edit index of each query."""
        n, k = self.edited.shape
        return {"a": self.donor_a.ravel(), "b": self.donor_b.ravel(), "c": np.repeat(self.base, k),
                "d": self.edited.ravel(), "edit": np.tile(np.arange(k), n)}

    def query_labels(self) -> np.ndarray:
        return np.array(EDIT_LABELS)[self.queries()["edit"]]

    def query_attributes(self) -> np.ndarray:
        return np.array([a for a, _ in EDITS])[self.queries()["edit"]]


def record_texts(records: Records) -> list[str]:
    """Deterministic caption per record: the first word of each bucket's vocabulary entry."""
    v = vocabulary()
    where = v["where"]
    out = []
    for i in range(len(records)):
        size = v["size_words"][bucket(records.size[i])][0]
        light = v["brightness_words"][bucket(records.brightness[i])][0]
        xw, yw = v["x_words"][bucket(records.x[i])], v["y_words"][bucket(records.y[i])]
        place = "both" if xw and yw else "x_only" if xw else "y_only" if yw else "centre"
        words = " ".join(w for w in (size, light, COLORS[records.color[i]], SHAPES[records.shape[i]]) if w)
        out.append(f"a {words}{where[place][0].format(x=xw, y=yw)}")
    return out


class _Rows:
    """Interns records so an identical record always gets the same row."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.index: dict[tuple, int] = {}

    def add(self, records: Records) -> np.ndarray:
        cols = records.as_dict()
        out = []
        for row in zip(*(cols[name].tolist() for name in ("shape", "color", "size", "x", "y", "brightness"))):
            if row not in self.index:
                self.index[row] = len(self.rows)
                self.rows.append(row)
            out.append(self.index[row])
        return np.array(out, dtype=np.int64)

    def records(self) -> Records:
        return make_records(*(np.array(col) for col in zip(*self.rows)))


def _check_geometry(geo: GeometryConfig) -> None:
    if geo.n_objects < 4:
        raise ValueError(f"geometry.n_objects={geo.n_objects}: a controlled set needs at least 4 objects "
                         "(each analogy borrows its example pair from another object)")
    lo, hi = 0.5 - geo.base_spread - geo.delta, 0.5 + geo.base_spread + geo.delta
    if geo.base_spread < 0 or geo.delta <= 0 or lo < 0 or hi > 1:
        raise ValueError(f"geometry.delta={geo.delta} and geometry.base_spread={geo.base_spread} move attributes "
                         f"to [{lo:.2f}, {hi:.2f}]; they must stay in [0, 1] (delta + spread <= 0.5, both >= 0)")


def _bases(world: WorldConfig, geo: GeometryConfig, split: str, rng: np.random.Generator) -> Records:
    """Objects with distinct shape:colour combinations (cycling when there are more objects than combos)."""
    combos = allowed_pairs(world, split)
    order = np.concatenate([rng.permutation(len(combos)) for _ in range(-(-geo.n_objects // len(combos)))])
    pick = combos[order[:geo.n_objects]]
    u = 0.5 + rng.uniform(-geo.base_spread, geo.base_spread, (len(CONTINUOUS), geo.n_objects))
    return make_records(pick[:, 0], pick[:, 1], *u)


def _new_category(bases: Records, attribute: str, allowed: set, rng: np.random.Generator) -> np.ndarray:
    """Per object, a different value of `attribute` whose shape:colour combination is allowed."""
    names = SHAPES if attribute == "shape" else COLORS
    out = []
    for s, c in zip(bases.shape.tolist(), bases.color.tolist()):
        current = s if attribute == "shape" else c
        options = [v for v in range(len(names)) if v != current
                   and ((v, c) if attribute == "shape" else (s, v)) in allowed]
        out.append(rng.choice(options))
    return np.array(out, dtype=np.int64)


def _edit(bases: Records, attribute: str, direction: int, delta: float, allowed: set,
          rng: np.random.Generator) -> Records:
    if direction:
        return bases.replace(**{attribute: getattr(bases, attribute) + direction * delta})
    return bases.replace(**{attribute: _new_category(bases, attribute, allowed, rng)})


def _donor(bases: Records, i: int, attribute: str, before: int, after: int, allowed: set) -> int:
    """Another object whose shape and colour both differ from object i (so no caption repeats) and
    that can take both the before and after value of a categorical edit."""
    n = len(bases)
    for j in [(i + off) % n for off in range(1, n)]:
        s, c = int(bases.shape[j]), int(bases.color[j])
        if s == bases.shape[i] or c == bases.color[i]:
            continue
        if attribute == "shape" and not {(before, c), (after, c)} <= allowed:
            continue
        if attribute == "color" and not {(s, before), (s, after)} <= allowed:
            continue
        return j
    raise ValueError(f"no donor object for a {attribute} edit of object {i}: raise geometry.n_objects "
                     f"(now {n}) so that objects with other shapes and colours exist")


def _set_key(world: WorldConfig, geo: GeometryConfig, split: str, image_size: int) -> str:
    ident = {"world": asdict(world), "geometry": asdict(geo), "split": split, "render": RENDER_VERSION,
             "size": image_size, "version": EDITSET_VERSION}
    return f"geometry-{split}-{fingerprint(ident)}"


def render_size(bundle: ClipBundle) -> int:
    """The model's input side: DiffWorld models read 32 px; a paper model gets the same shapes drawn
    at its own resolution (224 px), so the geometry notebook runs for every profile."""
    size = bundle.model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def build_edit_set(world: WorldConfig, geo: GeometryConfig, split: str, image_size: int | None = None) -> EditSet:
    """The controlled set of `split` ("val" or "test"): deterministic from geometry.seed; drawn at
    `image_size` pixels (default world.image_size)."""
    if split not in EDIT_SPLITS:
        raise ValueError(f"unknown edit-set split {split!r}; choose one of {EDIT_SPLITS}")
    _check_geometry(geo)
    rng = np.random.default_rng([geo.seed, EDIT_SPLITS.index(split), 2024])
    allowed = {tuple(p) for p in allowed_pairs(world, split).tolist()}
    bases = _bases(world, geo, split, rng)
    rows = _Rows()
    base = rows.add(bases)
    edits = [_edit(bases, a, d, geo.delta, allowed, rng) for a, d in EDITS]
    edited = np.stack([rows.add(e) for e in edits], axis=1)
    n_gallery = len(rows.rows)
    donor_a, donor_b = np.empty_like(edited), np.empty_like(edited)
    for k, (attribute, direction) in enumerate(EDITS):
        for i in range(len(bases)):
            before = 0 if direction else int(getattr(bases, attribute)[i])
            after = 0 if direction else int(getattr(edits[k], attribute)[i])
            j = _donor(bases, i, attribute, before, after, allowed)
            if direction:
                donor_a[i, k], donor_b[i, k] = edited[j, k], base[j]
                continue
            donor = bases[j]
            donor_b[i, k] = rows.add(donor.replace(**{attribute: before}))[0]
            donor_a[i, k] = rows.add(donor.replace(**{attribute: after}))[0]
    size = image_size or world.image_size
    return EditSet(split=split, image_size=size, records=rows.records(), base=base, edited=edited,
                   donor_a=donor_a, donor_b=donor_b, n_gallery=n_gallery, key=_set_key(world, geo, split, size))


def query_changes(edit_set: EditSet) -> list[tuple[str, int, str, str]]:
    """Per query, (attribute, direction, after, before): how D differs from C (and A from B); the
    values are D's and C's category names for categorical edits, "" for continuous ones."""
    q = edit_set.queries()
    out = []
    for c, d, k in zip(q["c"].tolist(), q["d"].tolist(), q["edit"].tolist()):
        attribute, direction = EDITS[k]
        values = ("", "") if direction else (str(edit_set.records.row(d)[attribute]),
                                             str(edit_set.records.row(c)[attribute]))
        out.append((attribute, direction, *values))
    return out


def change_descriptions(edit_set: EditSet, seed: int) -> list[str]:
    """Per query, an eval phrasing of how D (first image) differs from C (second image)."""
    rng = np.random.default_rng([seed, EDIT_SPLITS.index(edit_set.split), 77])
    return [attribute_sentence(attribute, direction, rng, split="eval") if direction
            else category_sentence(attribute, after, before, rng, split="eval")
            for attribute, direction, after, before in query_changes(edit_set)]


def relation_label(attribute: str, direction: int, after: str = "", before: str = "") -> str:
    """A change named exactly: 'size+' for continuous edits, 'color:red<blue' (now red, was blue) for
    categorical ones."""
    return edit_label(attribute, direction) if direction else f"{attribute}:{after}<{before}"


def relation_descriptions(seed: int) -> tuple[list[str], list[str]]:
    """Every single-attribute change in words, as (descriptions, relation labels): one eval phrasing
    per continuous edit and one per ordered pair of colours and of shapes. These are the candidates a
    verbal analogy names a change with (`pcclip.retrieval.verbal_analogy_results`)."""
    rng = np.random.default_rng([seed, 91])
    texts, labels = [], []
    for attribute, direction in EDITS:
        if direction:
            texts.append(attribute_sentence(attribute, direction, rng, split="eval"))
            labels.append(relation_label(attribute, direction))
            continue
        values = COLORS if attribute == "color" else SHAPES
        for after in values:
            for before in (v for v in values if v != after):
                texts.append(category_sentence(attribute, after, before, rng, split="eval"))
                labels.append(relation_label(attribute, 0, after, before))
    return texts, labels


def query_relations(edit_set: EditSet) -> np.ndarray:
    """The exact change of every query, as a `relation_label`."""
    return np.array([relation_label(*change) for change in query_changes(edit_set)])
