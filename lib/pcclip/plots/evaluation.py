"""Figures of the evaluations: difference accuracy, projections, alpha curves, confusions."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def difference_bars(table: pd.DataFrame, value: str = "accuracy", title: str = ""):
    """Grouped bars: `value` per attribute (groups) and model (bars), standard error as whiskers,
    chance (0.5) as a dashed line. `table` has columns attribute, model, value, value_se."""
    attributes, models = list(dict.fromkeys(table.attribute)), list(dict.fromkeys(table.model))
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for k, model in enumerate(models):
        rows = table[table.model == model].set_index("attribute").reindex(attributes)
        ax.bar(np.arange(len(attributes)) + (k - (len(models) - 1) / 2) * width, rows[value], width,
               yerr=rows[f"{value}_se"].fillna(0.0), capsize=2, label=model)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(attributes)), attributes)
    ax.set_ylim(0, 1)
    ax.set_ylabel(value.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def projection_scatter(projected: dict[tuple[str, str], np.ndarray], truth: dict[str, np.ndarray],
                       taus: dict[tuple[str, str], float] | None = None, max_points: int = 300, seed: int = 0):
    """Grid of panels, one row per ranking task (keys of `truth`: an attribute, or a `RankingTask.label`
    such as "awa2 size") and one column per model: the projection of each item (image or class) on the
    model's text direction against its true attribute value."""
    attributes = list(dict.fromkeys(a for a, _ in projected))
    models = list(dict.fromkeys(m for _, m in projected))
    fig, axes = plt.subplots(len(attributes), len(models), figsize=(2.6 * len(models), 2.3 * len(attributes)),
                             squeeze=False)
    for r, attribute in enumerate(attributes):
        pick = np.random.default_rng(seed).permutation(len(truth[attribute]))[:max_points]
        for c, model in enumerate(models):
            ax = axes[r][c]
            ax.scatter(truth[attribute][pick], projected[(attribute, model)][pick], s=4, alpha=0.6)
            tau = f", tau {taus[(attribute, model)]:.2f}" if taus and (attribute, model) in taus else ""
            ax.set_title(f"{model}{tau}", fontsize=8)
            ax.tick_params(labelsize=7)
            if c == 0:
                ax.set_ylabel(f"projection\n({attribute})", fontsize=8)
            if r == len(attributes) - 1:
                ax.set_xlabel("true value", fontsize=8)
    fig.tight_layout()
    return fig


def alpha_curves(curves: pd.DataFrame, alpha: float | None = None, tuned: dict[str, float] | None = None,
                 title: str = ""):
    """Accuracy against alpha per model, on all classes and on the comparative subset
    (alpha = 1 is zero-shot); a vertical line marks the alpha reported in tables and a star each
    model's `tuned` alpha (chosen on a validation split). `title` goes above both panels."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for ax, metric, panel in zip(axes, ("acc1", "subset_acc1"), ("all classes", "comparative subset")):
        for model, rows in curves.groupby("model", sort=False):
            line, = ax.plot(rows.alpha, rows[metric], marker="o", markersize=3, label=model)
            if tuned and model in tuned:
                at = rows.loc[rows.alpha == round(tuned[model], 6), metric]
                ax.plot([tuned[model]], at.to_numpy()[:1], marker="*", markersize=11, color=line.get_color())
        if alpha is not None:
            ax.axvline(alpha, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("alpha (1 = zero-shot)")
        ax.set_ylabel("top-1 accuracy")
        ax.set_title(panel)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()  # after the suptitle, so the panel titles are laid out below it
    return fig


def confusion_before_after(before: np.ndarray, after: np.ndarray, classnames: list[str], title: str = ""):
    """Row-normalised confusions before and after comparative prompting, and their difference."""
    def rownorm(m: np.ndarray) -> np.ndarray:
        return m / np.maximum(m.sum(axis=1, keepdims=True), 1)

    panels = ((rownorm(before), "zero-shot", "Blues", 0, 1), (rownorm(after), "comparative", "Blues", 0, 1),
              (rownorm(after) - rownorm(before), "change", "RdBu", -0.5, 0.5))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, (matrix, name, cmap, lo, hi) in zip(axes, panels):
        im = ax.imshow(matrix, cmap=cmap, vmin=lo, vmax=hi)
        ax.set_xticks(range(len(classnames)), classnames, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(classnames)), classnames, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_title(name, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046)
    axes[0].set_ylabel("true")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
