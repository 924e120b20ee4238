"""Attribute ranking: order images by the projection of their embeddings on a text direction.

If "the first image shows a larger object" points along normalize(e_large) - normalize(e_small),
projecting every normalised image embedding on that text sorts the images by size. Kendall tau
and Spearman rho against the ground-truth attribute measure how well the order holds.
The items may be images (DiffWorld's test split) or class-mean image embeddings (AwA2's classes,
ordered by a column of its continuous attribute matrix); `evaluation.tasks.ranking_tasks` builds them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..embeddings import normalize
from ..models import ClipBundle
from .difference import encode_texts


def _direction(positive: torch.Tensor, negative: torch.Tensor | None) -> torch.Tensor:
    """Unit mean of normalised `positive` rows minus that of `negative` rows (if any)."""
    direction = normalize(positive).mean(dim=0)
    if negative is not None and len(negative):
        direction = direction - normalize(negative).mean(dim=0)
    if not torch.isfinite(direction).all() or float(direction.norm()) == 0.0:
        raise ValueError("text direction is zero or not finite: positive and negative texts embed identically")
    return normalize(direction[None])[0]


def text_direction(bundle: ClipBundle, positive: list[str], negative: list[str] | None = None) -> torch.Tensor:
    """(d,) unit direction: mean of the normalised `positive` texts, minus that of `negative` ones.

    Subtracting the reversed phrasings cancels what all difference sentences share (their
    grammar), which otherwise dominates the direction of an untrained text tower.
    """
    if not positive:
        raise ValueError("text_direction needs at least one positive text")
    emb = bundle.encode_text(positive + list(negative or []))
    return _direction(emb[:len(positive)], emb[len(positive):])


def projections(image_emb: torch.Tensor, direction: torch.Tensor) -> np.ndarray:
    """(n,) cosine of each image embedding with `direction` (its coordinate along it)."""
    if image_emb.ndim != 2 or direction.shape != image_emb.shape[1:]:
        raise ValueError(f"image_emb {tuple(image_emb.shape)} and direction {tuple(direction.shape)} must be "
                         "(n, d) and (d,)")
    if not torch.isfinite(image_emb).all():
        raise ValueError("image embeddings contain NaN or inf: rebuild the embedding cache")
    return (normalize(image_emb) @ normalize(direction[None])[0]).numpy().astype(np.float64)


def rank_correlations(scores: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Kendall tau-b and Spearman rho of `scores` against `truth` (ties handled by both).

    Constant scores carry no ranking information and count as 0; constant truth or fewer
    than two items leave nothing to rank and raise.
    """
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if scores.shape != truth.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} must be 1-D of the same length")
    if len(scores) < 2:
        raise ValueError(f"ranking needs at least 2 items, got {len(scores)}")
    if not (np.isfinite(scores).all() and np.isfinite(truth).all()):
        raise ValueError("scores or truth contain NaN or inf")
    if np.all(truth == truth[0]):
        raise ValueError("ground truth is constant: there is no order to recover")
    if np.all(scores == scores[0]):
        return {"kendall_tau": 0.0, "spearman_rho": 0.0}
    return {"kendall_tau": float(stats.kendalltau(scores, truth).statistic),
            "spearman_rho": float(stats.spearmanr(scores, truth).statistic)}


@dataclass(frozen=True, eq=False)
class RankingTask:
    """Items to order along one attribute's text direction: their embeddings, the true value of each, and
    the (positive, negative) phrasings of the direction. (dataset, split, attribute) is the row identity."""

    dataset: str
    split: str
    attribute: str
    image_emb: torch.Tensor  # (n_items, d): images, or one mean embedding per class
    truth: np.ndarray  # (n_items,)
    positive: list[str]
    negative: list[str]
    items: tuple[str, ...] | None = None  # names of the items where they are classes

    def __post_init__(self):
        if not self.positive:
            raise ValueError(f"no positive texts for attribute {self.attribute!r} of {self.dataset}")
        if self.image_emb.ndim != 2 or len(self.truth) != len(self.image_emb):
            raise ValueError(f"{self.dataset} {self.attribute}: {len(self.truth)} true values for embeddings of "
                             f"shape {tuple(self.image_emb.shape)}; give one value per item")

    @property
    def label(self) -> str:
        """'<dataset> <attribute>': the panel of `plots.evaluation.projection_scatter`."""
        return f"{self.dataset} {self.attribute}"


RANKING_COLUMNS = ["dataset", "split", "attribute", "model", "kendall_tau", "spearman_rho"]


def ranking_table(models: dict[str, ClipBundle], tasks: list[RankingTask]
                  ) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    """Correlations per (task, model) and the projections behind them.

    Returns (table with RANKING_COLUMNS, {(task.label, model): projections}); every model encodes
    the texts of all tasks in one call. No tasks give an empty table.
    """
    rows, projected = [], {}
    for model_name, bundle in (models.items() if tasks else ()):
        emb, lookup = encode_texts(bundle, (t for task in tasks for t in task.positive + task.negative))
        for task in tasks:
            direction = _direction(emb[[lookup[t] for t in task.positive]], emb[[lookup[t] for t in task.negative]])
            proj = projections(task.image_emb, direction)
            projected[(task.label, model_name)] = proj
            rows.append({"dataset": task.dataset, "split": task.split, "attribute": task.attribute,
                         "model": model_name, **rank_correlations(proj, task.truth)})
    return pd.DataFrame(rows, columns=RANKING_COLUMNS), projected


def scatter_inputs(tasks: list[RankingTask], table: pd.DataFrame
                   ) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], float]]:
    """(truth per task label, Kendall tau per (label, model)): what `projection_scatter` takes besides
    the projections, matched to the table's rows by their identity."""
    labels = {(t.dataset, t.split, t.attribute): t.label for t in tasks}
    taus = {(labels[(r.dataset, r.split, r.attribute)], r.model): r.kendall_tau for r in table.itertuples()}
    return {t.label: t.truth for t in tasks}, taus
