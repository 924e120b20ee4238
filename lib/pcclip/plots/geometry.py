"""Figures of notebook 05: difference vectors in UMAP, consistency heatmaps, a retrieval gallery."""
from __future__ import annotations

import textwrap
import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

PANEL = 4.6  # inches per panel side


def edit_colors(labels: list[str]) -> dict[str, tuple]:
    """One hue per attribute (tab20 pairs): dark for 'more' (+), light for 'less' (-)."""
    cmap = plt.get_cmap("tab20")
    attributes = list(dict.fromkeys(label.rstrip("+-") for label in labels))
    return {label: cmap(2 * attributes.index(label.rstrip("+-")) + (1 if label.endswith("-") else 0))
            for label in labels}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _umap_2d(points: np.ndarray, n_neighbors: int, seed: int) -> np.ndarray:
    """UMAP (cosine) of a few hundred points. The exact k nearest neighbours are handed over, which
    skips UMAP's own neighbour search: its numba compilation costs more than the whole layout here."""
    import umap

    k = min(n_neighbors, len(points) - 1)
    dist = np.clip(1.0 - _unit(points) @ _unit(points).T, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    knn = (idx, np.take_along_axis(dist, idx, axis=1).astype(np.float32), None)
    reducer = umap.UMAP(n_neighbors=k, metric="cosine", random_state=seed, n_jobs=1, n_epochs=200, init="random",
                        precomputed_knn=knn)
    with warnings.catch_warnings():  # no search index: we never call transform, so the warning is moot
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        return reducer.fit_transform(points.astype(np.float32))


def difference_umap(diffs: np.ndarray, labels: np.ndarray, directions: dict[str, np.ndarray],
                    edit_labels: list[str], n_neighbors: int = 15, seed: int = 0) -> Figure:
    """One UMAP of the image difference vectors (dots, coloured by edit), the same in every panel; per
    model, each edit's change-description direction (star) sits at the mean position of the
    `n_neighbors` image differences most cosine-similar to it. A text tower whose descriptions point
    along image differences (PC-CLIP's aim) puts every star in its own edit's cluster."""
    colors = edit_colors(edit_labels)
    xy = _umap_2d(diffs, n_neighbors, seed)
    fig, axes = plt.subplots(1, len(directions), figsize=(PANEL * len(directions), PANEL), squeeze=False)
    for ax, (model, dirs) in zip(axes[0], directions.items()):
        for label in edit_labels:
            m = labels == label
            ax.scatter(xy[m, 0], xy[m, 1], s=9, color=colors[label], label=label, alpha=0.8, linewidths=0)
        nearest = np.argsort(-(_unit(dirs) @ _unit(diffs).T), axis=1, kind="stable")[:, :n_neighbors]
        for (x, y), label in zip(xy[nearest].mean(axis=1), edit_labels):
            ax.scatter([x], [y], s=170, marker="*", color=colors[label], edgecolors="black", linewidths=0.8)
            ax.annotate(label, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.set_title(f"{model}: image differences (dots), descriptions (stars)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def consistency_heatmaps(matrices: dict[str, np.ndarray], labels: list[str], titles: dict[str, str]) -> Figure:
    """Side-by-side (K, K) cosine heatmaps on one symmetric colour scale, values written in the cells."""
    limit = max(float(np.abs(m).max()) for m in matrices.values()) or 1.0
    fig, axes = plt.subplots(1, len(matrices), figsize=(PANEL * len(matrices), PANEL), squeeze=False,
                             layout="constrained")
    for ax, (name, mat) in zip(axes[0], matrices.items()):
        image = ax.imshow(mat, cmap="RdBu_r", vmin=-limit, vmax=limit)
        for (r, c), v in np.ndenumerate(mat):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=5.5,
                    color="white" if abs(v) > 0.6 * limit else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(titles.get(name, name), fontsize=9)
    axes[0, 0].set_ylabel("rows: image difference of edit", fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.7, label="mean cosine")
    return fig


def retrieval_gallery(images: np.ndarray, queries: np.ndarray, changes: list[str], results: dict[str, np.ndarray],
                      targets: np.ndarray) -> Figure:
    """Rows: a query image and its change description, then the top-k gallery images of each model
    (green frame: the ground-truth edit, or any of a query's targets where `targets` holds arrays;
    red: anything else)."""
    k = next(iter(results.values())).shape[1]
    cols = 1 + k * len(results)
    fig, axes = plt.subplots(len(queries), cols, figsize=(1.1 * cols + 1.5, 1.35 * len(queries)), squeeze=False)
    for r, (q, change, target) in enumerate(zip(queries, changes, targets)):
        axes[r, 0].imshow(images[q])
        axes[r, 0].set_ylabel("\n".join(textwrap.wrap(change, 22)), fontsize=6, rotation=0, ha="right", va="center")
        for m, (model, rows) in enumerate(results.items()):
            for j, row in enumerate(rows[r]):
                ax = axes[r, 1 + m * k + j]
                ax.imshow(images[row])
                color = "limegreen" if np.isin(row, target).item() else "crimson"
                ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, lw=3, color=color))
                if r == 0:
                    ax.set_title(f"{model} #{j + 1}", fontsize=7)
    axes[0, 0].set_title("query", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
