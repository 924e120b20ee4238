"""DiffWorld attribute records: the exact ground truth behind every image.

A record is one object on a plain background. Categorical attributes are
indices into SHAPES and COLORS; continuous ones live in [0, 1] so images can
be ranked by them and pairs can differ in exactly one of them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

SHAPES: tuple[str, ...] = (
    "circle", "ring", "square", "diamond", "triangle", "cross", "star", "hexagon",
)
COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple")
# Hue in degrees for each colour (HSV), chosen to be well separated.
HUES: tuple[float, ...] = (0.0, 30.0, 58.0, 125.0, 225.0, 285.0)
CONTINUOUS: tuple[str, ...] = ("size", "x", "y", "brightness")
CATEGORICAL: tuple[str, ...] = ("shape", "color")
ATTRIBUTES: tuple[str, ...] = CATEGORICAL + CONTINUOUS


@dataclass(frozen=True)
class Records:
    """A batch of objects as parallel arrays (struct of arrays, cheap to slice)."""

    shape: np.ndarray  # int64 index into SHAPES
    color: np.ndarray  # int64 index into COLORS
    size: np.ndarray  # float64 in [0, 1]: object radius, small to large
    x: np.ndarray  # float64 in [0, 1]: left to right
    y: np.ndarray  # float64 in [0, 1]: top to bottom
    brightness: np.ndarray  # float64 in [0, 1]: dark to bright

    def __post_init__(self) -> None:
        n = len(self.shape)
        for f in fields(self):
            arr = getattr(self, f.name)
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"Records.{f.name} must be 1-D of length {n}, got shape {arr.shape}")
        if n and (self.shape.min() < 0 or self.shape.max() >= len(SHAPES)):
            raise ValueError(f"Records.shape indices must lie in [0, {len(SHAPES)})")
        if n and (self.color.min() < 0 or self.color.max() >= len(COLORS)):
            raise ValueError(f"Records.color indices must lie in [0, {len(COLORS)})")
        for name in CONTINUOUS:
            arr = getattr(self, name)
            if n and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
                raise ValueError(f"Records.{name} must be finite and lie in [0, 1]")

    def __len__(self) -> int:
        return len(self.shape)

    def __getitem__(self, idx) -> "Records":
        idx = np.atleast_1d(np.asarray(idx)) if np.isscalar(idx) else idx
        return Records(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def row(self, i: int) -> dict[str, float | int | str]:
        """One record as a plain dict with names for the categorical attributes."""
        out: dict[str, float | int | str] = {name: float(getattr(self, name)[i]) for name in CONTINUOUS}
        out["shape"] = SHAPES[int(self.shape[i])]
        out["color"] = COLORS[int(self.color[i])]
        return out

    def replace(self, **changes: np.ndarray | float | int) -> "Records":
        """A copy with some attributes changed (scalars broadcast): controlled pairs."""
        values = self.as_dict()
        for name, value in changes.items():
            if name not in values:
                raise KeyError(f"unknown attribute {name!r}; known: {ATTRIBUTES}")
            dtype = values[name].dtype
            values[name] = np.broadcast_to(np.asarray(value, dtype=dtype), (len(self),)).copy()
        return Records(**values)

    @staticmethod
    def concat(parts: list["Records"]) -> "Records":
        return Records(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Records)})


def make_records(shape, color, size, x, y, brightness) -> Records:
    """Build records from names or indices and scalars or arrays (broadcast)."""
    def to_index(values, names: tuple[str, ...], what: str) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(values))
        if arr.dtype.kind in "US":
            unknown = sorted(set(arr.tolist()) - set(names))
            if unknown:
                raise ValueError(f"unknown {what} {unknown}; known: {names}")
            arr = np.array([names.index(v) for v in arr.tolist()])
        return arr.astype(np.int64)

    cols = dict(
        shape=to_index(shape, SHAPES, "shape"), color=to_index(color, COLORS, "colour"),
        size=np.atleast_1d(np.asarray(size, dtype=np.float64)), x=np.atleast_1d(np.asarray(x, dtype=np.float64)),
        y=np.atleast_1d(np.asarray(y, dtype=np.float64)),
        brightness=np.atleast_1d(np.asarray(brightness, dtype=np.float64)),
    )
    n = max(len(v) for v in cols.values())
    return Records(**{k: np.broadcast_to(v, (n,)).copy() for k, v in cols.items()})


def sample_records(n: int, rng: np.random.Generator, combos: np.ndarray | None = None) -> Records:
    """Draw n records uniformly; `combos` (k, 2) restricts (shape, colour) pairs."""
    if combos is None:
        shape = rng.integers(0, len(SHAPES), n)
        color = rng.integers(0, len(COLORS), n)
    else:
        pick = combos[rng.integers(0, len(combos), n)]
        shape, color = pick[:, 0].astype(np.int64), pick[:, 1].astype(np.int64)
    u = rng.random((4, n))
    return Records(shape=shape, color=color, size=u[0], x=u[1], y=u[2], brightness=u[3])
