"""Embedding geometry: analogies by vector arithmetic, directional consistency, modality gap.

The metric functions are pure functions over embedding tensors; the `*_results`
functions apply them to a controlled DiffWorld set (`pcclip.edit_sets`) for every
model. The image tower is shared by all models (only the text tower is finetuned),
so image-only results are reported once, under model "any".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .edit_sets import EDIT_LABELS, EditSet
from .embeddings import difference_vectors, normalize
from .evaluation.difference import encode_texts
from .models import ClipBundle
from .results import SHARED_MODEL as SHARED



def analogy_queries(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """normalize(normalize(a) - normalize(b) + normalize(c)): 'c changed the way b became a'."""
    return normalize(normalize(a) - normalize(b) + normalize(c))


def hits_at_k(queries: torch.Tensor, gallery: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...],
              exclude: torch.Tensor | None = None) -> dict[int, np.ndarray]:
    """Per query and k, whether gallery[targets] is among the k most cosine-similar gallery rows.

    `exclude` (n, m) lists gallery rows a query may not return (its own inputs); -1 pads.
    Ties are broken towards the lower gallery index.
    """
    if len(queries) != len(targets):
        raise ValueError(f"{len(queries)} queries but {len(targets)} targets: give one target per query")
    if not len(gallery) or int(targets.max()) >= len(gallery) or int(targets.min()) < 0:
        raise ValueError(f"targets must index the gallery of {len(gallery)} rows")
    scores = normalize(queries) @ normalize(gallery).T
    if exclude is not None and exclude.numel():
        rows = torch.arange(len(queries)).unsqueeze(1).expand_as(exclude)
        keep = exclude >= 0
        if (exclude[keep] == targets.unsqueeze(1).expand_as(exclude)[keep]).any():
            raise ValueError("a query excludes its own target from the gallery; check the exclusion lists")
        scores[rows[keep], exclude[keep]] = -torch.inf
    # rank = number of rows scoring strictly higher, plus tied rows before the target
    target_score = scores.gather(1, targets.view(-1, 1))
    idx = torch.arange(len(gallery)).unsqueeze(0)
    rank = (scores > target_score).sum(1) + ((scores == target_score) & (idx < targets.view(-1, 1))).sum(1)
    return {k: (rank < k).numpy() for k in ks}


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """Mean cosine over all pairs i != j of rows: 1.0 when every row points the same way."""
    if len(vectors) < 2:
        raise ValueError(f"pairwise consistency needs at least 2 vectors, got {len(vectors)}")
    v = normalize(vectors)
    gram = v @ v.T
    n = len(v)
    return float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1)))


def cross_consistency(diffs: torch.Tensor) -> np.ndarray:
    """(K, K) mean cosine between difference vectors of change a and change b on different objects.

    `diffs` is (K, n, d): change k applied to object i. The diagonal is each change's
    directional consistency; opposite changes (size+ vs size-) should come out negative.
    """
    k, n, _ = diffs.shape
    if n < 2:
        raise ValueError(f"cross consistency needs at least 2 objects per change, got {n}")
    v = normalize(diffs)
    cos = torch.einsum("aid,bjd->abij", v, v)
    off = ~torch.eye(n, dtype=torch.bool)
    return (cos[:, :, off].mean(-1)).numpy()


def mean_cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean row-wise cosine of two (n, d) tensors (or one (d,) broadcast against (n, d))."""
    return float((normalize(x) * normalize(y)).sum(-1).mean())


def modality_gap(image_emb: torch.Tensor, text_emb: torch.Tensor) -> float:
    """Euclidean distance between the centroids of the normalised image and text embeddings."""
    return float(torch.linalg.vector_norm(normalize(image_emb).mean(0) - normalize(text_emb).mean(0)))


@dataclass(frozen=True)
class View:
    """One model's embeddings of an edit set: images (shared tower), record captions, change descriptions."""

    images: torch.Tensor  # (n_records, d)
    texts: torch.Tensor  # (n_records, d): embedding of edit_set.texts
    changes: torch.Tensor  # (n_queries, d): embedding of the change descriptions (D relative to C)


def embed_views(models: dict[str, ClipBundle], sets: dict[str, EditSet], image_emb: dict[str, torch.Tensor],
                changes: dict[str, list[str]]) -> dict[str, dict[str, View]]:
    """split -> model -> View. Image embeddings are shared; texts are normalised, and each distinct
    text of all splits is encoded once per model (captions and phrasings repeat a lot)."""
    for split, es in sets.items():
        if len(image_emb[split]) != len(es.records) or len(changes[split]) != es.edited.size:
            raise ValueError(f"edit set {es.key}: got {len(image_emb[split])} image embeddings and "
                             f"{len(changes[split])} changes, expected {len(es.records)} and {es.edited.size}")
    texts = [t for split, es in sets.items() for t in (*es.texts, *changes[split])]
    out: dict[str, dict[str, View]] = {split: {} for split in sets}
    for name, bundle in models.items():
        emb, row = encode_texts(bundle, texts)
        for split, es in sets.items():
            out[split][name] = View(images=image_emb[split].float(), texts=emb[[row[t] for t in es.texts]],
                                    changes=emb[[row[t] for t in changes[split]]])
    return out


def text_gallery(edit_set: EditSet) -> tuple[np.ndarray, np.ndarray]:
    """Distinct gallery captions: (row of each distinct caption, caption id of every record or -1)."""
    ids: dict[str, int] = {}
    rows = []
    for row, text in enumerate(edit_set.texts[:edit_set.n_gallery]):
        if text not in ids:
            ids[text] = len(rows)
            rows.append(row)
    return np.array(rows), np.array([ids.get(t, -1) for t in edit_set.texts])


def _analogy_inputs(edit_set: EditSet, view: View) -> dict[str, tuple]:
    """mode -> (a, b, c, gallery, targets, exclude) for every query of the set."""
    q = edit_set.queries()
    rows, ids = text_gallery(edit_set)
    g = edit_set.n_gallery

    def image_ex(*cols: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.where(c < g, c, -1) for c in cols], 1))

    def text_ex(*cols: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([ids[c] for c in cols], 1))

    img, txt = view.images, view.texts
    image_gallery = (img[:g], torch.from_numpy(q["d"]), image_ex(q["a"], q["b"], q["c"]))
    text_gal = (txt[rows], torch.from_numpy(ids[q["d"]]), text_ex(q["a"], q["b"], q["c"]))
    return {"image": (img[q["a"]], img[q["b"]], img[q["c"]], *image_gallery),
            "text": (txt[q["a"]], txt[q["b"]], txt[q["c"]], *text_gal),
            "text_to_image": (txt[q["a"]], txt[q["b"]], img[q["c"]], *image_gallery),
            "image_to_text": (img[q["a"]], img[q["b"]], txt[q["c"]], *text_gal)}


def grouped_rows(values: dict[str, np.ndarray], groups: np.ndarray, ids: dict[str, str]) -> list[dict]:
    """Long-table rows {**ids, group, metric, value}: the mean of each per-query array in `values`,
    over all queries ("all") and per group."""
    out = []
    for group in ["all", *dict.fromkeys(groups.tolist())]:
        mask = np.ones(len(groups), bool) if group == "all" else groups == group
        out += [{**ids, "group": group, "metric": metric, "value": float(v[mask].mean())}
                for metric, v in values.items()]
    return out


def topk_columns(hits: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """`hits_at_k` output keyed as metric names ("top1", "top5")."""
    return {f"top{k}": h for k, h in hits.items()}


def analogy_results(edit_set: EditSet, views: dict[str, View], ks: tuple[int, ...] = (1, 5)) -> pd.DataFrame:
    """Long table (model, mode, group, metric, value): top-k analogy accuracy overall and by attribute.

    Modes: image (A, B, C, gallery all images), text (captions), text_to_image (caption
    offset applied to an image), image_to_text, and the "copy" baselines that return
    the nearest neighbour of C alone (the change ignored).
    """
    groups = edit_set.query_attributes()
    out = []
    for model, view in views.items():
        for mode, (a, b, c, gallery, targets, exclude) in _analogy_inputs(edit_set, view).items():
            shared = mode == "image"
            if shared and model != next(iter(views)):
                continue
            name = SHARED if shared else model
            hits = hits_at_k(analogy_queries(a, b, c), gallery, targets, ks, exclude)
            out += grouped_rows(topk_columns(hits), groups, {"model": name, "mode": mode})
            if mode in ("image", "text"):
                copy = hits_at_k(c, gallery, targets, ks, exclude)
                out += grouped_rows(topk_columns(copy), groups, {"model": name, "mode": f"{mode}_copy"})
    return pd.DataFrame(out)


def _image_diffs(edit_set: EditSet, view: View) -> torch.Tensor:
    """(K, n, d) image difference vectors: edit k of object i relative to its base."""
    img = view.images
    return torch.stack([difference_vectors(img[edit_set.edited[:, k]], img[edit_set.base])
                        for k in range(edit_set.edited.shape[1])])


def _text_directions(edit_set: EditSet, view: View) -> torch.Tensor:
    """(K, d) mean normalised change-description embedding per edit, renormalised."""
    n, k = edit_set.edited.shape
    return normalize(normalize(view.changes).view(n, k, -1).mean(0))


def consistency_results(edit_set: EditSet, views: dict[str, View]) -> pd.DataFrame:
    """Long table (model, edit, metric, value) of directional consistency, per edit and mean ("all").

    image_consistency: mean pairwise cosine of the image difference vectors of one edit;
    description_cos: their cosine with the text of the change description;
    caption_diff_cos: their cosine with the caption difference vector t(D) - t(C);
    caption_consistency: mean pairwise cosine of those caption difference vectors.
    """
    n, k = edit_set.edited.shape
    rows = []
    for model, view in views.items():
        diffs = _image_diffs(edit_set, view)
        changes = view.changes.view(n, k, -1)
        for e, label in enumerate(EDIT_LABELS):
            d, c = edit_set.edited[:, e], edit_set.base
            caption = difference_vectors(view.texts[d], view.texts[c])
            if model == next(iter(views)):
                rows.append({"model": SHARED, "edit": label, "metric": "image_consistency",
                             "value": mean_pairwise_cosine(diffs[e])})
            rows += [{"model": model, "edit": label, "metric": m, "value": v} for m, v in (
                ("description_cos", mean_cosine(diffs[e], changes[:, e])),
                ("caption_diff_cos", mean_cosine(diffs[e], caption)),
                ("caption_consistency", mean_pairwise_cosine(caption)))]
        g = edit_set.n_gallery
        rows.append({"model": model, "edit": "all", "metric": "modality_gap",
                     "value": modality_gap(view.images[:g], view.texts[:g])})
    table = pd.DataFrame(rows)
    means = (table[table.edit != "all"].groupby(["model", "metric"], sort=False, as_index=False)["value"].mean()
             .assign(edit="all"))
    return pd.concat([table, means], ignore_index=True)


def consistency_matrices(edit_set: EditSet, views: dict[str, View]) -> dict[str, np.ndarray]:
    """(K, K) heatmaps: "image" = cross consistency of image difference vectors; "<model>" = mean
    cosine of the image differences of edit a (rows) with the description direction of edit b (columns)."""
    first = next(iter(views.values()))
    return direction_matrices(_image_diffs(edit_set, first),
                              {model: _text_directions(edit_set, view) for model, view in views.items()})


def direction_matrices(diffs: torch.Tensor, directions: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """`diffs` (K, n, d): n image differences per change; `directions` model -> (K, d) unit text directions.
    "image": `cross_consistency`; "<model>": mean cosine of change a's image differences with direction b."""
    out = {"image": cross_consistency(diffs)}
    for model, dirs in directions.items():
        out[model] = torch.einsum("and,bd->ab", normalize(diffs), dirs).div(diffs.shape[1]).numpy()
    return out


def difference_points(edit_set: EditSet, views: dict[str, View]) -> tuple[np.ndarray, np.ndarray, dict]:
    """For the UMAP figure: image difference vectors (n*K, d) with their edit labels, and per model the
    (K, d) description directions (labels EDIT_LABELS)."""
    diffs = _image_diffs(edit_set, next(iter(views.values())))
    return flat_points(diffs, EDIT_LABELS, {m: _text_directions(edit_set, v) for m, v in views.items()})


def flat_points(diffs: torch.Tensor, labels: tuple[str, ...] | list[str], directions: dict[str, torch.Tensor]
                ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(K, n, d) differences of K labelled changes as UMAP input: (K*n, d) points, their labels, and per
    model the (K, d) directions as arrays."""
    k, n, _ = diffs.shape
    return (diffs.reshape(k * n, -1).numpy(), np.repeat(np.array(labels), n),
            {m: d.numpy() for m, d in directions.items()})


# Retrieval's image-only baseline is a variant of the overall figure, not an attribute group.
BASELINE_GROUPS = ("nearest_neighbour",)


def geometry_rows(table: pd.DataFrame, task: str) -> pd.DataFrame:
    """Metric rows of an analogy, consistency or retrieval table: its mode is the variant, its group or
    edit the attribute ("all" for the overall figure)."""
    frame = table.rename(columns={"mode": "variant", "group": "attribute", "edit": "attribute"})
    baseline = frame["attribute"].isin(BASELINE_GROUPS)
    if baseline.any():
        frame = frame.assign(variant=frame["attribute"].where(baseline, frame.get("variant", "")),
                             attribute=frame["attribute"].mask(baseline, "all"))
    return frame.assign(task=task)
