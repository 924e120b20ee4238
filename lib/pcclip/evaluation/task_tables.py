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
from .comparative import Comparative, alpha_grid, compare_models, compare_variants
from .headroom import headroom_table
from .tasks import ClassificationTask
from .zeroshot import zero_shot_table

Models = dict[str, ClipBundle]


def _stack(tasks: Iterable[ClassificationTask], table: Callable[[ClassificationTask], pd.DataFrame],
           columns: list[str]) -> pd.DataFrame:
    parts = [table(t).assign(dataset=t.name) for t in tasks]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*columns, "dataset"])


def comparative_groups(models: Models, task: ClassificationTask) -> list[tuple[Models, list[Comparative]]]:
    """(models, the comparatives they are scored with): all of them with the task's set, or each model with
    its own (`model_comparatives`, eval.comparatives_per_model)."""
    if not task.model_comparatives:
        return [(models, task.comparatives)]
    missing = [name for name in models if name not in task.model_comparatives]
    if missing:
        raise ValueError(f"{task.name}: no comparatives of their own for models {missing}; pass every model name to "
                         "classification_tasks(..., models=list(models))")
    return [({name: bundle}, task.model_comparatives[name]) for name, bundle in models.items()]


def _grouped(models: Models, task: ClassificationTask,
             table: Callable[[Models, list[Comparative]], pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([table(group, comps) for group, comps in comparative_groups(models, task)], ignore_index=True)


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
        confusions[t.name] = {}

        def group(some: Models, comparatives: list[Comparative]) -> pd.DataFrame:
            summary, curve, confused = compare_models(some, t.image_emb, t.labels, t.classnames, t.templates,
                                                      comparatives, alpha_grid(cfg.alpha_steps), cfg.alpha, val=val)
            curves.append(curve.assign(dataset=t.name))
            confusions[t.name].update(confused)
            return summary

        return _grouped(models, t, group)

    summary = _stack(chosen, one, ["model"])
    return summary, pd.concat(curves, ignore_index=True), confusions


def variant_tables(models: Models, tasks: list[ClassificationTask], cfg: EvalConfig) -> pd.DataFrame:
    """`compare_variants` on every task with comparatives: the paper's formula and its scaled variants per
    (dataset, model, variant); the val-chosen ones where the task has a validation split."""
    return _stack([t for t in tasks if t.comparatives],
                  lambda t: _grouped(models, t, lambda some, comps: compare_variants(
                      some, t.image_emb, t.labels, t.classnames, t.templates, comps, alpha_grid(cfg.alpha_steps),
                      cfg.alpha, val=None if t.val_emb is None else (t.val_emb, t.val_labels))),
                  ["model", "variant", "alpha", "scale", "acc1", "gain_acc1", "worst_class"])


def headroom_tables(models: Models, tasks: list[ClassificationTask], alpha: float) -> pd.DataFrame:
    """`headroom_table` on every task with comparatives and labelled fitting images, with the task's own set of
    comparatives for every model (under eval.comparatives_per_model: the first model's), so that the
    model-independent references are scored on one comparative subset."""
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
