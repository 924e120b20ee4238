"""DiffWorld: a procedural world of shapes with exact ground-truth attributes."""
from .attributes import ATTRIBUTES, COLORS, CONTINUOUS, SHAPES, Records, make_records, sample_records
from .captions import caption, captions
from .dataset import SPLITS, WorldSplit, build_split, holdout_pairs
from .render import render

__all__ = [
    "ATTRIBUTES", "COLORS", "CONTINUOUS", "SHAPES", "SPLITS", "Records", "WorldSplit", "build_split",
    "caption", "captions", "holdout_pairs", "make_records", "render", "sample_records",
]
