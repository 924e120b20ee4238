"""The difference-set type every pair builder returns and difference classification scores, and the
positions of the pairs a draw of images forms."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAIR_ORDERS = ("ordered", "unordered")


def pair_positions(n: int, pairs: str = "ordered") -> tuple[np.ndarray, np.ndarray]:
    """Positions (a, b), a != b, of the pairs among `n` drawn items, in row-major order: both orders
    ("ordered", ours: a description that ignores which image comes first scores exactly chance) or only
    a < b ("unordered", the authors' i < j: one order per pair)."""
    if pairs not in PAIR_ORDERS:
        raise ValueError(f"pairs={pairs!r}: use 'ordered' (both orders) or 'unordered' (i < j, the authors'); "
                         "set eval.pairs")
    a, b = np.nonzero(~np.eye(n, dtype=bool)) if pairs == "ordered" else np.triu_indices(n, k=1)
    return a.astype(np.int64), b.astype(np.int64)


@dataclass(frozen=True)
class PairSet:
    """Ordered image pairs of one split, each with a ground-truth description of its difference.

    idx1/idx2 index that split's image embeddings; `sign` is +1 when the first image has more of a
    continuous attribute, -1 when less, 0 for a categorical one; `reversed_texts` (optional) say
    the opposite of `texts`, pair by pair, for the two-way test.
    """

    idx1: np.ndarray
    idx2: np.ndarray
    texts: list[str]
    sign: np.ndarray
    reversed_texts: list[str] | None = None
    attribute: str = ""

    def __post_init__(self) -> None:
        n = len(self.idx1)
        sizes = {"idx2": len(self.idx2), "texts": len(self.texts), "sign": len(self.sign)}
        if self.reversed_texts is not None:
            sizes["reversed_texts"] = len(self.reversed_texts)
        bad = {k: v for k, v in sizes.items() if v != n}
        if bad:
            raise ValueError(f"PairSet {self.attribute!r}: idx1 has {n} pairs but {bad}; all must match")

    def __len__(self) -> int:
        return len(self.idx1)
