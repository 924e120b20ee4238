"""Figures of the difference data: example pairs, attribute coverage, lengths, filter outcomes."""
from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def example_pairs(images1: np.ndarray, images2: np.ndarray, texts: Sequence[str], notes: Sequence[str] = ()):
    """One row per pair: first image, second image, and the description (with an optional note)."""
    n = len(texts)
    fig, axes = plt.subplots(n, 3, figsize=(9, 1.5 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 5]})
    for k in range(n):
        for ax, image, label in ((axes[k][0], images1[k], "first"), (axes[k][1], images2[k], "second")):
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_title(label, fontsize=9)
        axes[k][2].axis("off")
        note = f"\n[{notes[k]}]" if k < len(notes) else ""
        axes[k][2].text(0.0, 0.5, textwrap.fill(texts[k] or "(no description)", 70) + note, fontsize=8,
                        va="center", ha="left", transform=axes[k][2].transAxes)
    fig.tight_layout()
    return fig


def attribute_coverage(mentions: pd.DataFrame, support: pd.DataFrame | None = None):
    """Share of accepted descriptions stating each attribute; optionally beside the share of pairs
    whose captions (and exact attributes) would support it."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    series = {"descriptions": mentions.set_index("attribute")["share"]}
    if support is not None:
        support = support.set_index("attribute")
        series.update({"captions support": support["caption"], "exact attributes support": support["oracle"]})
    attributes = list(series["descriptions"].index)
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series.items()):
        ax.bar(np.arange(len(attributes)) + (k - (len(series) - 1) / 2) * width, values.reindex(attributes), width,
               label=label)
    ax.set_xticks(range(len(attributes)), attributes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def length_histogram(lengths: dict[str, Sequence[int]]):
    """Words per description, one histogram per group (e.g. accepted / rejected)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    top = max((max(v) for v in lengths.values() if len(v)), default=1)
    bins = np.arange(0, top + 2) - 0.5
    for label, values in lengths.items():
        if len(values):
            ax.hist(values, bins=bins, alpha=0.6, label=f"{label} ({len(values)})")
    ax.set_xlabel("words per description")
    ax.set_ylabel("descriptions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def filter_outcomes(report: pd.DataFrame):
    """Horizontal bars: how many descriptions were accepted and rejected for each reason."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(report["outcome"][::-1], report["count"][::-1])
    ax.set_xscale("symlog")
    ax.set_xlabel("descriptions (symlog)")
    fig.tight_layout()
    return fig
