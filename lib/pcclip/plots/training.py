"""Finetuning figures: loss curves per run and the weight-averaging trade-off."""
from __future__ import annotations

import matplotlib.pyplot as plt


def loss_curves(histories: dict[str, list[dict]], title: str = "finetuning loss"):
    """One panel per run (PC-CLIP and caption losses live on different scales); runs without
    history (no finetuning) are left out."""
    runs = {name: rows for name, rows in histories.items() if rows}
    if not runs:
        raise ValueError("no run has a loss history to plot: were all runs zero-step baselines?")
    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], runs.items()):
        ax.plot([r["step"] + 1 for r in rows], [r["loss"] for r in rows], marker=".")
        ax.set_title(name)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("loss (mean since the previous point)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def alpha_sweep_figure(rows: list[dict], metrics: dict[str, str], title: str = "weight averaging"):
    """Left: each metric against alpha (0 = base, 1 = finetuned). Right: the trade-off between the
    first two metrics, one point per alpha."""
    if len(metrics) < 2:
        raise ValueError(f"alpha_sweep_figure needs two metrics for the trade-off panel, got {list(metrics)}")
    alphas = [r["alpha"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for key, label in metrics.items():
        left.plot(alphas, [r[key] for r in rows], marker="o", label=label)
    left.set_xlabel("alpha (weight of the finetuned model)")
    left.set_ylabel("accuracy")
    left.legend(fontsize=8)
    (kx, lx), (ky, ly) = list(metrics.items())[:2]
    right.plot([r[kx] for r in rows], [r[ky] for r in rows], marker="o", color="gray")
    for r in rows:
        right.annotate(f"{r['alpha']:.2f}", (r[kx], r[ky]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    right.set_xlabel(lx)
    right.set_ylabel(ly)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
