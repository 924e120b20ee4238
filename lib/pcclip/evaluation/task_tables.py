"""Notebook 04's tables over every classification task at once: each evaluation of
`pcclip.evaluation` run per task and stacked with a `dataset` column, so the notebook holds no loops.

A table of tasks that have nothing to show (no comparatives, no descriptions, no fitting split)
is empty but keeps its columns, and the notebook's pivots and figures work unchanged.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pandas as pd

from ..models import ClipBundle
from ..profiles import EvalConfig
from .comparative import alpha_grid, compare_models, compare_variants
from .headroom import headroom_table
from .tasks import ClassificationTask
from .zeroshot import zero_shot_table

Models = dict[str, ClipBundle]


def _stack(tasks: Iterable[ClassificationTask], table: Callable[[ClassificationTask], pd.DataFrame],
           columns: list[str]) -> pd.DataFrame:
    parts = [table(t).assign(dataset=t.name) for t in tasks]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*columns, "dataset"])


def zero_shot_tables(models: Models, tasks: list[ClassificationTask]
                     ) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Zero-shot metrics per (dataset, model), and top-1 predictions per dataset and model."""
    predictions: dict[str, dict[str, np.ndarray]] = {}

    def one(t: ClassificationTask) -> pd.DataFrame:
        table, predictions[t.name] = zero_shot_table(models, t.image_emb, t.labels, t.classnames, t.templates)
        return table

    return _stack(tasks, one, ["model", "acc1"]), predictions


def comparative_tables(models: Models, tasks: list[ClassificationTask], cfg: EvalConfig
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict]]:
    """`compare_models` on every task with comparatives: (summary, alpha curves, confusions per dataset).
    Raises if no task has comparatives, naming the datasets to add."""
    chosen = [t for t in tasks if t.comparatives]
    if not chosen:
        raise ValueError(f"no dataset of eval.datasets={[t.name for t in tasks]} ships comparatives: add one that "
                         "does (see pcclip/data/comparatives/)")
    curves, confusions = [], {}

    def one(t: ClassificationTask) -> pd.DataFrame:
        val = None if t.val_emb is None else (t.val_emb, t.val_labels)
        summary, curve, confusions[t.name] = compare_models(models, t.image_emb, t.labels, t.classnames, t.templates,
                                                            t.comparatives, alpha_grid(cfg.alpha_steps), cfg.alpha,
                                                            val=val)
        curves.append(curve.assign(dataset=t.name))
        return summary

    summary = _stack(chosen, one, ["model"])
    return summary, pd.concat(curves, ignore_index=True), confusions


def variant_tables(models: Models, tasks: list[ClassificationTask], cfg: EvalConfig) -> pd.DataFrame:
    """`compare_variants` on every task with comparatives: the paper's formula and its scaled variants per
    (dataset, model, variant); the val-chosen ones where the task has a validation split."""
    return _stack([t for t in tasks if t.comparatives],
                  lambda t: compare_variants(models, t.image_emb, t.labels, t.classnames, t.templates, t.comparatives,
                                             alpha_grid(cfg.alpha_steps), cfg.alpha,
                                             val=None if t.val_emb is None else (t.val_emb, t.val_labels)),
                  ["model", "variant", "alpha", "scale", "acc1", "gain_acc1", "worst_class"])


def headroom_tables(models: Models, tasks: list[ClassificationTask], alpha: float) -> pd.DataFrame:
    """`headroom_table` on every task with comparatives and labelled fitting images."""
    return _stack([t for t in tasks if t.comparatives and t.fit_emb is not None],
                  lambda t: headroom_table(models, t.fit_emb, t.fit_labels, t.image_emb, t.labels, t.classnames,
                                           t.templates, t.comparatives, alpha),
                  ["model", "classifier", "acc1", "subset_acc1"])


def extended_tables(models: Models, tasks: list[ClassificationTask]) -> pd.DataFrame:
    """Zero-shot with extended class descriptions on every task that has them (extended_acc1,
    extended_worst_class per dataset and model)."""
    def one(t: ClassificationTask) -> pd.DataFrame:
        table, _ = zero_shot_table(models, t.image_emb, t.labels, t.classnames, t.templates, t.descriptions)
        return table[["model", "acc1", "worst_class"]].rename(columns={"acc1": "extended_acc1",
                                                                       "worst_class": "extended_worst_class"})

    return _stack([t for t in tasks if t.descriptions], one, ["model", "extended_acc1", "extended_worst_class"])
