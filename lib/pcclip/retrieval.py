"""Difference-guided retrieval: "like this image, but larger".

The query is normalize(e(image)) + lambda * normalize(t(description of a change)); if
text differences point along image differences (what PC-CLIP trains for), the
nearest gallery images are the query image changed that way. The query image itself
stays in the gallery: returning it means the description was ignored.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .edit_sets import EditSet, query_relations
from .embeddings import difference_vectors, normalize
from .evaluation.difference import encode_texts
from .geometry import SHARED, View, grouped_rows, hits_at_k, topk_columns
from .models import ClipBundle
from .profiles import GeometryConfig

KS: tuple[int, ...] = (1, 5, 10)


def guided_queries(image_emb: torch.Tensor, change_emb: torch.Tensor, lam: float) -> torch.Tensor:
    """normalize(normalize(image) + lam * normalize(change)); lam = 0 searches by the image alone."""
    return normalize(normalize(image_emb) + lam * normalize(change_emb))


def recall_at_k(queries: torch.Tensor, gallery: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = KS,
                exclude: torch.Tensor | None = None) -> dict[str, float]:
    """{"recall@k": fraction of queries whose single ground-truth target is in the top k}."""
    return {f"recall@{k}": float(h.mean()) for k, h in hits_at_k(queries, gallery, targets, ks, exclude).items()}


def lambda_grid(geo: GeometryConfig) -> np.ndarray:
    if geo.lambda_steps < 2 or geo.lambda_max <= 0:
        raise ValueError(f"geometry.lambda_steps={geo.lambda_steps}, geometry.lambda_max={geo.lambda_max}: "
                         "the lambda grid needs at least 2 steps and a positive maximum")
    return np.round(np.linspace(0.0, geo.lambda_max, geo.lambda_steps), 6)


def _inputs(edit_set: EditSet, view: View) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q = edit_set.queries()
    return view.images[q["c"]], view.images[:edit_set.n_gallery], torch.from_numpy(q["d"])


def sweep_lambda(edit_set: EditSet, view: View, lambdas: np.ndarray) -> pd.DataFrame:
    """Recall@k for each lambda (rows: lambda, recall@1, recall@5, recall@10)."""
    image, gallery, targets = _inputs(edit_set, view)
    return pd.DataFrame([{"lambda": float(lam), **recall_at_k(guided_queries(image, view.changes, lam), gallery,
                                                             targets)} for lam in lambdas])


def choose_lambda(sweep: pd.DataFrame) -> float:
    """Best recall@1, then recall@5, then the smaller lambda."""
    best = sweep.sort_values(["recall@1", "recall@5", "lambda"], ascending=[False, False, True], kind="stable")
    return float(best["lambda"].iloc[0])


def retrieve(edit_set: EditSet, view: View, lam: float, k: int) -> np.ndarray:
    """(n_queries, k) gallery rows returned for each query, best first."""
    image, gallery, _ = _inputs(edit_set, view)
    scores = guided_queries(image, view.changes, lam) @ normalize(gallery).T
    return scores.topk(k, dim=1).indices.numpy()


def retrieval_results(val: EditSet, test: EditSet, val_views: dict[str, View], test_views: dict[str, View],
                      lambdas: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, sweeps). results: long table (model, group, metric, value) on test at the lambda
    chosen on val, by attribute and overall, plus the model-free baseline "nearest neighbour of the
    query image other than itself". sweeps: val recall per model and lambda."""
    rows, sweeps = [], []
    groups = test.query_attributes()
    image, gallery, targets = _inputs(test, next(iter(test_views.values())))
    exclude = torch.from_numpy(test.queries()["c"]).unsqueeze(1)
    nn = recall_at_k(image, gallery, targets, exclude=exclude)
    rows += [{"model": SHARED, "group": "nearest_neighbour", "metric": m, "value": v} for m, v in nn.items()]
    for model, view in test_views.items():
        sweep = sweep_lambda(val, val_views[model], lambdas).assign(model=model)
        sweeps.append(sweep)
        lam = choose_lambda(sweep)
        rows.append({"model": model, "group": "all", "metric": "lambda", "value": lam})
        image, gallery, targets = _inputs(test, view)
        hits = hits_at_k(guided_queries(image, view.changes, lam), gallery, targets, KS)
        rows += grouped_rows({f"recall@{k}": h for k, h in hits.items()}, groups, {"model": model})
    return pd.DataFrame(rows), pd.concat(sweeps, ignore_index=True)


def chosen_lambdas(results: pd.DataFrame) -> dict[str, float]:
    """model -> the lambda chosen on val, from a `retrieval_results` table."""
    rows = results[results.metric == "lambda"]
    return dict(zip(rows.model, rows.value.astype(float)))


def verbal_analogy_results(edit_set: EditSet, views: dict[str, View], models: dict[str, ClipBundle],
                           candidates: tuple[list[str], list[str]], lambdas: dict[str, float],
                           ks: tuple[int, ...] = (1, 5)) -> pd.DataFrame:
    """A : B :: C : ? solved through language, with the images A, B, C as the only inputs.

    The model names the change from B to A with the candidate description (`candidates` = texts,
    relation labels from `edit_sets.relation_descriptions`) nearest to normalize(e_A) - normalize(e_B),
    then searches with C plus lambda times that description (`guided_queries`, at the model's
    retrieval lambda chosen on val). Long table (model, mode="verbal", group, metric, value): "named"
    (the change was named exactly) and top-k of D in the gallery, overall and by attribute.
    """
    texts, labels = candidates
    q, truth, groups = edit_set.queries(), query_relations(edit_set), edit_set.query_attributes()
    unknown = sorted(set(truth) - set(labels))
    if unknown:
        raise ValueError(f"changes {unknown[:3]} have no candidate description; build the candidates with "
                         "edit_sets.relation_descriptions")
    rows = []
    for model, view in views.items():
        emb, row = encode_texts(models[model], texts)  # normalised
        cand = emb[[row[t] for t in texts]]
        chosen = (difference_vectors(view.images[q["a"]], view.images[q["b"]]) @ cand.T).argmax(dim=1)
        named = (np.array(labels)[chosen.numpy()] == truth).astype(np.float64)
        queries = guided_queries(view.images[q["c"]], cand[chosen], lambdas[model])
        hits = hits_at_k(queries, view.images[:edit_set.n_gallery], torch.from_numpy(q["d"]), ks)
        rows += grouped_rows({"named": named, **topk_columns(hits)}, groups, {"model": model, "mode": "verbal"})
    return pd.DataFrame(rows)
