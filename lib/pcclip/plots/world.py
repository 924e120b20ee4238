"""Figures of DiffWorld images and of training histories."""
from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np


def image_grid(images: np.ndarray, titles: list[str] | None = None, ncols: int = 6, scale: float = 1.6):
    """uint8 (n, H, W, 3) images in a grid, each with an optional wrapped title."""
    n = len(images)
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, nrows * scale * 1.25), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(images[i], interpolation="nearest")
        if titles:
            ax.set_title("\n".join(textwrap.wrap(titles[i], 18)), fontsize=7)
    fig.tight_layout()
    return fig


def history_figure(histories: dict[str, list[dict]], key: str = "loss", title: str = ""):
    """One line per run: `key` against step from logged history rows."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, rows in histories.items():
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(title)
    if len(histories) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure(matrix: np.ndarray, classnames: list[str], title: str = ""):
    """Row-normalised confusion matrix (rows: true class)."""
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classnames)), classnames, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classnames)), classnames, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
