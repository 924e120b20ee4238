"""Difference-based classification: does the description of how image 1 differs from image 2
point along the difference of their embeddings?

The paper's protocol counts a pair as correct when cos(text, normalize(e1) - normalize(e2)) > 0;
chance is 0.5 whatever the model. The stricter two-way test asks the true description to beat
its reversed twin ("larger" vs "smaller"), which a text tower that ignores the direction word fails.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from ..embeddings import difference_vectors, normalize
from ..datasets.pairset import PairSet
from ..models import ClipBundle


def _check_matrix(name: str, x: torch.Tensor) -> None:
    if x.ndim != 2:
        raise ValueError(f"{name} must be a (n, d) matrix, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf: rebuild the embedding cache or check the model's weights")


def difference_scores(text_emb: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    """(n,) cos(text, difference_vectors(e1, e2)); identical images score exactly 0."""
    if len(text_emb) == 0:
        raise ValueError("empty pair list: no pairs to score (do the images differ in the attribute?)")
    if not text_emb.shape == e1.shape == e2.shape:
        raise ValueError(f"text_emb {tuple(text_emb.shape)}, e1 {tuple(e1.shape)} and e2 {tuple(e2.shape)} "
                         "must have the same (n, d) shape: one text per image pair")
    for name, x in (("text_emb", text_emb), ("e1", e1), ("e2", e2)):
        _check_matrix(name, x)
    return (normalize(text_emb) * difference_vectors(e1, e2)).sum(dim=1)


def difference_accuracy(text_emb: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor) -> float:
    """Fraction of pairs with cos(text, difference_vectors(e1, e2)) > 0 (a score of exactly 0 is wrong)."""
    return float((difference_scores(text_emb, e1, e2) > 0).float().mean())


def two_way_accuracy(text_emb: torch.Tensor, reversed_emb: torch.Tensor, e1: torch.Tensor,
                     e2: torch.Tensor) -> float:
    """Fraction of pairs whose true description scores strictly higher than its reversed twin."""
    return float((difference_scores(text_emb, e1, e2) > difference_scores(reversed_emb, e1, e2)).float().mean())


def mean_and_stderr(values: Iterable[float], ddof: int = 1) -> tuple[float, float]:
    """Mean and standard error (std with `ddof` / sqrt(n)) over seeds. ddof 1, the sample estimate, is
    ours; the authors use 0 (`np.std`). The error is NaN when there are no more seeds than ddof."""
    if ddof not in (0, 1):
        raise ValueError(f"se_ddof={ddof}: use 1 (sample standard deviation) or 0 (the authors' np.std)")
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values to average: evaluate at least one seed")
    se = float(arr.std(ddof=ddof) / np.sqrt(arr.size)) if arr.size > ddof else float("nan")
    return float(arr.mean()), se


def encode_texts(bundle: ClipBundle, texts: Iterable[str]) -> tuple[torch.Tensor, dict[str, int]]:
    """Normalised embeddings of the distinct texts and a text -> row map.

    Evaluation sentences repeat a few phrasings thousands of times; encoding each once keeps
    an evaluation of many pairs at the cost of its distinct sentences.
    """
    unique = list(dict.fromkeys(texts))
    return normalize(bundle.encode_text(unique)), {t: i for i, t in enumerate(unique)}


@dataclass(frozen=True)
class _Batch:
    """Every pair of many PairSets as one set of index arrays, so each model scores them all in a
    few large tensor operations instead of a dozen small ones per set and seed."""

    diffs: torch.Tensor  # difference_vectors of each distinct image pair, shared by every model
    pairs: torch.Tensor  # the row of `diffs` of each pair: families and frames describe the same pairs
    unique: list[str]  # distinct sentences, encoded once per model
    rows: torch.Tensor  # the sentence of each pair
    twin_rows: torch.Tensor  # its reversed twin (its own sentence when the set has none)
    has_twin: np.ndarray  # per PairSet
    starts: np.ndarray  # first pair of each PairSet


def _batch(sets: dict[tuple[str, str, str], list[PairSet]], embeddings: dict[str, torch.Tensor]) -> _Batch:
    missing = sorted({key[0] for key in sets} - set(embeddings))
    if missing:
        raise KeyError(f"no image embeddings for split(s) {missing}; embeddings has {sorted(embeddings)}")
    empty = [key for key, draws in sets.items() if not draws or any(len(p) == 0 for p in draws)]
    if empty:
        raise ValueError(f"empty pair list for {empty[0]}: no pairs to score (draw more images, eval.n_images)")
    for name, emb in embeddings.items():
        _check_matrix(f"image embeddings of {name!r}", emb)
    names = list(embeddings)
    offset = dict(zip(names, np.cumsum([0] + [len(embeddings[n]) for n in names[:-1]]).tolist()))
    flat = [(key[0], p) for key, draws in sets.items() for p in draws]
    texts = [t for _, p in flat for t in p.texts]
    twins = [t for _, p in flat for t in (p.reversed_texts or p.texts)]
    lookup = {t: i for i, t in enumerate(dict.fromkeys(texts + twins))}
    images = normalize(torch.cat([embeddings[n] for n in names]))
    idx1, idx2 = (np.concatenate([getattr(p, end) + offset[s] for s, p in flat]) for end in ("idx1", "idx2"))
    distinct, pairs = np.unique(idx1 * len(images) + idx2, return_inverse=True)
    first, second = (torch.as_tensor(i) for i in np.divmod(distinct, len(images)))
    return _Batch(difference_vectors(images[first], images[second]), torch.as_tensor(pairs.reshape(-1)), list(lookup),
                  torch.tensor([lookup[t] for t in texts]), torch.tensor([lookup[t] for t in twins]),
                  np.array([p.reversed_texts is not None for _, p in flat]),
                  np.cumsum([0] + [len(p) for _, p in flat[:-1]]))


def _hits(batch: _Batch, text_emb: torch.Tensor, chunk: int = 2**13) -> tuple[np.ndarray, np.ndarray]:
    """Per PairSet: share of pairs with cos(text, difference) > 0, and share beating the twin,
    `chunk` pairs at a time to bound memory."""
    right, beats = [], []
    for lo in range(0, len(batch.pairs), chunk):
        part = slice(lo, lo + chunk)
        diff = batch.diffs[batch.pairs[part]]
        true = (text_emb[batch.rows[part]] * diff).sum(dim=1)
        twin = (text_emb[batch.twin_rows[part]] * diff).sum(dim=1)
        right.append((true > 0).numpy())
        beats.append((true > twin).numpy())
    sizes = np.diff([*batch.starts, len(batch.pairs)])
    acc = np.add.reduceat(np.concatenate(right).astype(np.float64), batch.starts) / sizes
    two = np.add.reduceat(np.concatenate(beats).astype(np.float64), batch.starts) / sizes
    return acc, np.where(batch.has_twin, two, np.nan)


DIFFERENCE_COLUMNS = ("split", "phrasing", "attribute", "model", "accuracy", "accuracy_se", "two_way", "two_way_se",
                      "pairs")


def difference_table(models: dict[str, ClipBundle], embeddings: dict[str, torch.Tensor],
                     sets: dict[tuple[str, str, str], list[PairSet]], se_ddof: int = 1) -> pd.DataFrame:
    """One row per (split, phrasing, attribute, model): mean and standard error over the seeds
    (`se_ddof`: eval.se_ddof, see `mean_and_stderr`).

    `sets` maps (split, phrasing, attribute) to one PairSet per seed; `embeddings[split]` holds
    that split's image embeddings, shared by every model (image towers are never trained).
    Each model encodes every distinct sentence once, and each distinct image pair is differenced once for all sets
    and models (notebook 03's families and frames describe the same pairs); no sets give an empty table.
    """
    if not sets:  # e.g. structure_tasks of a profile without a grammar
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
    batch = _batch(sets, embeddings)
    bounds = np.cumsum([0] + [len(draws) for draws in sets.values()])
    rows = []
    for model_name, bundle in models.items():
        text_emb = normalize(bundle.encode_text(batch.unique))
        _check_matrix(f"text embeddings of model {model_name!r}", text_emb)
        acc, two = _hits(batch, text_emb)
        for k, ((split, phrasing, attribute), draws) in enumerate(sets.items()):
            (acc_mean, acc_se), (two_mean, two_se) = (mean_and_stderr(x[bounds[k]:bounds[k + 1]], se_ddof)
                                                      for x in (acc, two))
            rows.append({"split": split, "phrasing": phrasing, "attribute": attribute, "model": model_name,
                         "accuracy": acc_mean, "accuracy_se": acc_se, "two_way": two_mean, "two_way_se": two_se,
                         "pairs": float(np.mean([len(p) for p in draws]))})
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
