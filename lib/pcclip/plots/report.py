"""Figures of the report: headline numbers per model across finetune seeds (seaborn)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..intervals import t_interval


def seed_errorbars(per_seed: pd.DataFrame, x: str = "attribute", col: str = "split", ylabel: str = "accuracy",
                   chance: float = 0.5, ylim: tuple[float, float] = (0.0, 1.05), hue: str = "model",
                   target: float | None = None, empty: str = "nothing to show"):
    """One panel per value of `col`: per `x` (groups) and `hue` (colours) the mean over finetune seeds with its
    95% t-interval as error bars (the table's interval, `pcclip.intervals`), each seed as a small dot; `chance`
    dashed, a `target` dotted. `per_seed` has columns x, col, hue, seed, value (one row per seed); without rows,
    one panel saying `empty` (a study that has not run)."""
    if per_seed.empty:
        fig, ax = plt.subplots(figsize=(4.6, 1.2))
        ax.text(0.5, 0.5, empty, ha="center", va="center")
        ax.set_axis_off()
        return fig
    panels, models = list(dict.fromkeys(per_seed[col])), list(dict.fromkeys(per_seed[hue]))
    spread = 0.8 - 0.8 / len(models)  # the pointplot's dodge that puts each mean over its seeds' dots
    width = max(4.6, 0.75 * per_seed[x].nunique())  # room for each group's name (eight levers)
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.6), sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        part = per_seed[per_seed[col] == panel]
        sns.pointplot(part, x=x, y="value", hue=hue, hue_order=models, errorbar=t_interval, dodge=spread or False,
                      linestyle="none", capsize=0.1, markersize=4, err_kws={"linewidth": 1.2}, ax=ax,
                      legend=ax is axes[0][-1])
        sns.stripplot(part, x=x, y="value", hue=hue, hue_order=models, dodge=True, size=2.5, alpha=0.5, ax=ax, legend=False)
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1)
        if target is not None:
            ax.axhline(target, color="black", linestyle=":", linewidth=1)
        ax.set(title=f"{col} {panel}", xlabel=x, ylabel=ylabel, ylim=ylim)
        if max(len(str(v)) for v in part[x]) > 8:  # long group names (levers) would run into each other
            plt.setp(ax.get_xticklabels(), rotation=40, ha="right", rotation_mode="anchor")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    axes[0][-1].legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def mean_heatmap(per_seed: pd.DataFrame, index: str = "model", columns: str = "attribute", title: str = ""):
    """Heatmap of the mean over finetune seeds of `value`, `index` by `columns` (first-seen order), annotated."""
    means = per_seed.pivot_table(index=index, columns=columns, values="value", aggfunc="mean", sort=False)
    fig, ax = plt.subplots(figsize=(1.1 * means.shape[1] + 2.5, 0.5 * means.shape[0] + 1.5))
    sns.heatmap(means, annot=True, fmt=".3f", vmin=0, vmax=1, cmap="viridis", cbar_kws={"shrink": 0.8}, ax=ax)
    ax.set(title=title, xlabel=columns, ylabel=index)
    fig.tight_layout()
    return fig
