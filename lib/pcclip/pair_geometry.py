"""Embedding geometry on real images, from labelled difference pairs (notebook 03's sets).

Real images have no controlled edits, but the paper's difference sets pair images whose difference
is known ("the first image contains a larger animal, while the second contains a smaller animal").
A description says how image 1 differs from image 2, so image 2 plus the description should land
near image 1, and every image 1 that the same description joins to image 2 is a right answer: a
query is one (image 2, description) with all its images 1 as targets. The tables have the columns of
`pcclip.geometry` and `pcclip.retrieval` (groups are set names), so notebook 05 records both worlds
the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .datasets.pairset import PairSet
from .embeddings import difference_vectors, normalize
from .evaluation.difference import encode_texts
from .geometry import SHARED, analogy_queries, hits_at_k, mean_cosine, mean_pairwise_cosine, topk_columns
from .models import ClipBundle
from .retrieval import KS, choose_lambda, guided_queries

# A description joins the heatmaps and the UMAP with this many of its pairs (drawn), as DiffWorld shows 40
# objects per edit; descriptions with fewer pairs (most AwA2 attribute lists, every CUB text) stay out.
POINTS_PER_DIRECTION = 40


@dataclass(frozen=True)
class PairGeometrySet:
    """One difference set for geometry: its pairs, the embeddings of its split and its queries.

    Query q is image `query[q]` (an image 2) with description `texts[q]`; `targets[q]` lists every
    image 1 paired with it under that description. `tune` marks the half of the queries on which
    the retrieval lambda is chosen; the other half is scored.
    """

    name: str
    pairs: PairSet
    images: torch.Tensor  # (n_images, d) the split's image embeddings
    query: np.ndarray
    texts: list[str]
    targets: list[np.ndarray]
    tune: np.ndarray  # (n_queries,) bool

    @property
    def gallery(self) -> np.ndarray:
        """Image rows the queries search: every image of the set's pairs, ascending."""
        return np.unique(np.concatenate([self.pairs.idx1, self.pairs.idx2]))


def pair_geometry_set(name: str, pairs: PairSet, images: torch.Tensor, seed: int) -> PairGeometrySet:
    """Group the pairs into queries and split the queries in two halves (seeded)."""
    found: dict[tuple[int, str], list[int]] = {}
    for i1, i2, text in zip(pairs.idx1.tolist(), pairs.idx2.tolist(), pairs.texts):
        found.setdefault((i2, text), []).append(i1)
    if len(found) < 2:
        raise ValueError(f"difference set {name!r} has {len(found)} distinct (image, description) queries; "
                         "geometry needs at least 2 to choose lambda on one half and score the other "
                         "(raise eval.n_images)")
    if int(max(pairs.idx1.max(), pairs.idx2.max())) >= len(images):
        raise ValueError(f"difference set {name!r} indexes images beyond its {len(images)} embeddings")
    order = np.random.default_rng([seed, 505]).permutation(len(found))
    tune = np.zeros(len(found), bool)
    tune[order[:len(found) // 2]] = True
    keys = list(found)
    return PairGeometrySet(name, pairs, images.float(), np.array([k[0] for k in keys]), [k[1] for k in keys],
                           [np.unique(v) for v in found.values()], tune)


def geometry_pair_sets(sets: dict[tuple[str, str, str], list[PairSet]], embeddings: dict[str, torch.Tensor],
                       seed: int) -> dict[str, PairGeometrySet]:
    """The first draw of every set of `evaluation.tasks.difference_tasks` (keyed by split, which names the
    set for the paper's sets), as geometry sets."""
    splits = [split for split, _, _ in sets]
    if len(set(splits)) != len(splits):
        raise ValueError(f"difference sets {list(sets)} share a split: geometry names each set by its split "
                         "(the paper's sets; DiffWorld uses pcclip.edit_sets)")
    return {split: pair_geometry_set(split, draws[0], embeddings[split], seed)
            for (split, _, _), draws in sets.items()}


def any_hits(queries: torch.Tensor, gallery: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...],
             exclude: torch.Tensor | None = None) -> dict[int, np.ndarray]:
    """Per query and k, whether ANY gallery row marked in `targets` (n, m) bool is among the k nearest.

    The best-scoring target (ties: the lower row) stands in for all, so `geometry.hits_at_k` ranks it.
    """
    scores = normalize(queries) @ normalize(gallery).T
    allowed = targets.clone()
    if exclude is not None and exclude.numel():
        rows = torch.arange(len(queries)).unsqueeze(1).expand_as(exclude)
        keep = exclude >= 0
        allowed[rows[keep], exclude[keep]] = False
    if not allowed.any(1).all():
        raise ValueError("a query has no target left in the gallery once its excluded rows are removed")
    best = scores.masked_fill(~allowed, -torch.inf).argmax(1)
    return hits_at_k(queries, gallery, best, ks, exclude)


def _gallery_rows(gs: PairGeometrySet) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(query rows in the gallery, target mask (n_queries, n_gallery), gallery embeddings)."""
    gallery = gs.gallery
    mask = np.zeros((len(gs.query), len(gallery)), bool)
    for q, t in enumerate(gs.targets):
        mask[q, np.searchsorted(gallery, t)] = True
    return np.searchsorted(gallery, gs.query), mask, gs.images[gallery]


def encode_descriptions(models: dict[str, ClipBundle], sets: dict[str, PairGeometrySet]
                        ) -> dict[str, tuple[torch.Tensor, dict[str, int]]]:
    """model -> (normalised embeddings of every distinct description of all sets, text -> row)."""
    texts = [t for gs in sets.values() for t in (*gs.pairs.texts, *gs.texts)]
    return {name: encode_texts(bundle, texts) for name, bundle in models.items()}


def _description_groups(pairs: PairSet) -> dict[str, np.ndarray]:
    """description -> indices of its pairs, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, text in enumerate(pairs.texts):
        out.setdefault(text, []).append(i)
    return {t: np.array(v) for t, v in out.items()}


def _pair_diffs(gs: PairGeometrySet) -> torch.Tensor:
    return difference_vectors(gs.images[gs.pairs.idx1], gs.images[gs.pairs.idx2])


def pair_consistency_results(sets: dict[str, PairGeometrySet],
                             text_emb: dict[str, tuple[torch.Tensor, dict[str, int]]]) -> pd.DataFrame:
    """Long table (model, edit, metric, value), edit = set name, plus the mean over sets ("all").

    image_consistency (model "any"): mean pairwise cosine of the image difference vectors of pairs
    with the same description, averaged over descriptions that have at least 2 pairs (absent for a
    set whose descriptions never repeat); description_cos: mean cosine of every pair's image
    difference with its description (what PC-CLIP trains).
    """
    rows = []
    for name, gs in sets.items():
        diffs = _pair_diffs(gs)
        repeated = [idx for idx in _description_groups(gs.pairs).values() if len(idx) >= 2]
        if repeated:
            rows.append({"model": SHARED, "edit": name, "metric": "image_consistency",
                         "value": float(np.mean([mean_pairwise_cosine(diffs[idx]) for idx in repeated]))})
        for model, (emb, row) in text_emb.items():
            rows.append({"model": model, "edit": name, "metric": "description_cos",
                         "value": mean_cosine(diffs, emb[[row[t] for t in gs.pairs.texts]])})
    table = pd.DataFrame(rows)
    means = table.groupby(["model", "metric"], sort=False, as_index=False)["value"].mean().assign(edit="all")
    return pd.concat([table, means], ignore_index=True)[["model", "edit", "metric", "value"]]


def _guided(gs: PairGeometrySet, text: tuple[torch.Tensor, dict[str, int]], lam: float,
            select: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(queries: image 2 plus lam times the description, gallery, target mask) of the selected queries."""
    q_rows, mask, gallery = _gallery_rows(gs)
    emb, row = text
    change = emb[[row[t] for t, s in zip(gs.texts, select) if s]]
    return guided_queries(gallery[q_rows[select]], change, lam), gallery, torch.from_numpy(mask[select])


def _guided_hits(gs: PairGeometrySet, text: tuple[torch.Tensor, dict[str, int]], lam: float,
                 select: np.ndarray) -> dict[int, np.ndarray]:
    return any_hits(*_guided(gs, text, lam, select), KS)


def pair_retrieve(gs: PairGeometrySet, text: tuple[torch.Tensor, dict[str, int]], lam: float, select: np.ndarray,
                  k: int) -> np.ndarray:
    """(n_selected, k) image rows of the split returned for the selected queries, best first."""
    queries, gallery, _ = _guided(gs, text, lam, select)
    return gs.gallery[(queries @ normalize(gallery).T).topk(k, dim=1).indices.numpy()]


def set_rows(values: dict[str, dict[str, np.ndarray]], ids: dict[str, str]) -> list[dict]:
    """Long-table rows {**ids, group, metric, value} from per-query arrays per set: "all" (the mean over
    sets, each weighing the same whatever its number of queries), then each set's mean."""
    means = {name: {m: float(v.mean()) for m, v in metrics.items()} for name, metrics in values.items()}
    names = list(next(iter(means.values())))
    rows = [{**ids, "group": "all", "metric": m, "value": float(np.mean([s[m] for s in means.values()]))}
            for m in names]
    return rows + [{**ids, "group": name, "metric": m, "value": v} for name, s in means.items() for m, v in s.items()]


def _recalls(hits: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"recall@{k}": h for k, h in hits.items()}


def pair_retrieval_results(sets: dict[str, PairGeometrySet], text_emb: dict[str, tuple[torch.Tensor, dict[str, int]]],
                           lambdas: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, sweeps) in the format of `retrieval.retrieval_results`, group = set name (`set_rows`).

    Each model's lambda is chosen (best recall@1, mean over sets) on the tuning half of the queries
    and reported on the other half, with the model-free baseline "nearest neighbour of the query image
    other than itself" on that half.
    """
    nn = {}
    for name, gs in sets.items():
        q_rows, mask, gallery = _gallery_rows(gs)
        query_rows = torch.from_numpy(q_rows[~gs.tune])
        nn[name] = _recalls(any_hits(gallery[query_rows], gallery, torch.from_numpy(mask[~gs.tune]), KS,
                                     query_rows.unsqueeze(1)))
    rows = [{**row, "group": "nearest_neighbour"} for row in set_rows(nn, {"model": SHARED}) if row["group"] == "all"]
    sweeps = []
    for model, text in text_emb.items():
        sweep = pd.DataFrame([{"lambda": float(lam), **{r["metric"]: r["value"] for r in set_rows(
            {name: _recalls(_guided_hits(gs, text, lam, gs.tune)) for name, gs in sets.items()}, {})
            if r["group"] == "all"}} for lam in lambdas])
        sweeps.append(sweep.assign(model=model))
        lam = choose_lambda(sweep)
        rows.append({"model": model, "group": "all", "metric": "lambda", "value": lam})
        rows += set_rows({name: _recalls(_guided_hits(gs, text, lam, ~gs.tune)) for name, gs in sets.items()},
                         {"model": model})
    return pd.DataFrame(rows), pd.concat(sweeps, ignore_index=True)


def _analogy_inputs(gs: PairGeometrySet, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, c) gallery rows and the target mask of every query with a donor pair: another pair with
    the same description and neither image the query's (A - B shows the change, C = the query image)."""
    q_rows, mask, _ = _gallery_rows(gs)
    by_text = _description_groups(gs.pairs)
    g1, g2 = (np.searchsorted(gs.gallery, idx) for idx in (gs.pairs.idx1, gs.pairs.idx2))
    abc, masks = [], []
    for q, text in enumerate(gs.texts):
        donors = by_text[text][(g1[by_text[text]] != q_rows[q]) & (g2[by_text[text]] != q_rows[q])]
        if not len(donors):
            continue
        j = int(rng.choice(donors))
        m = mask[q].copy()
        m[[g1[j], g2[j]]] = False
        if m.any():
            abc.append((g1[j], g2[j], q_rows[q]))
            masks.append(m)
    if not abc:
        return np.zeros((0, 3), np.int64), np.zeros((0, len(gs.gallery)), bool)
    return np.array(abc, dtype=np.int64), np.stack(masks)


def pair_analogy_results(sets: dict[str, PairGeometrySet], seed: int, ks: tuple[int, ...] = (1, 5)) -> pd.DataFrame:
    """Long table (model "any", mode, group, metric, value) of image analogies A : B :: C : ?, where A - B
    is a pair with the same description as the query (C, its images 1): top-k accuracy with A, B, C out
    of the gallery; "image_copy" returns C's nearest neighbour (the change ignored). Sets whose
    descriptions never repeat have no analogies."""
    out: dict[str, dict] = {"image": {}, "image_copy": {}}
    for s, (name, gs) in enumerate(sets.items()):
        abc, mask = _analogy_inputs(gs, np.random.default_rng([seed, s, 606]))
        if not len(abc):
            continue
        gallery, exclude, targets = gs.images[gs.gallery], torch.from_numpy(abc), torch.from_numpy(mask)
        a, b, c = (gallery[abc[:, i]] for i in range(3))
        out["image"][name] = topk_columns(any_hits(analogy_queries(a, b, c), gallery, targets, ks, exclude))
        out["image_copy"][name] = topk_columns(any_hits(c, gallery, targets, ks, exclude))
    rows = [row for mode, hits in out.items() if hits for row in set_rows(hits, {"model": SHARED, "mode": mode})]
    return pd.DataFrame(rows, columns=["model", "mode", "group", "metric", "value"])


def _oriented(gs: PairGeometrySet) -> list[tuple[str, np.ndarray]]:
    """Up to two (label, pair indices) of a set: "<set>+" for its leading description (the one whose
    pairs have sign +1 where the set is ordered, else the most frequent) and "<set>-" for its reverse,
    each kept when it has at least POINTS_PER_DIRECTION pairs."""
    groups = {t: idx for t, idx in _description_groups(gs.pairs).items() if len(idx) >= POINTS_PER_DIRECTION}
    if not groups:
        return []
    lead = max(groups, key=lambda t: (int((gs.pairs.sign[groups[t]] > 0).all()), len(groups[t])))
    out = [(f"{gs.name}+", groups[lead])]
    reverse = gs.pairs.reversed_texts[groups[lead][0]] if gs.pairs.reversed_texts else None
    if reverse in groups and reverse != lead:
        out.append((f"{gs.name}-", groups[reverse]))
    return out


@dataclass(frozen=True)
class Directions:
    """The described changes shown in the heatmaps and the UMAP: K labels with n pairs drawn for each."""

    labels: list[str]
    diffs: torch.Tensor  # (K, n, d) image difference vectors of the drawn pairs
    texts: dict[str, torch.Tensor]  # model -> (K, d) mean description direction (over all the change's pairs)


def pair_directions(sets: dict[str, PairGeometrySet], text_emb: dict[str, tuple[torch.Tensor, dict[str, int]]],
                    seed: int) -> Directions:
    """Every set's oriented changes (`_oriented`), each with POINTS_PER_DIRECTION of its pairs drawn (seeded)."""
    found = [(label, gs, idx) for gs in sets.values() for label, idx in _oriented(gs)]
    if not found:
        raise ValueError(f"no description has {POINTS_PER_DIRECTION} pairs in any of {sorted(sets)}: the heatmaps "
                         "and UMAP need repeated descriptions (raise eval.n_images)")
    rng = np.random.default_rng([seed, 707])
    diffs = [_pair_diffs(gs)[np.sort(rng.choice(idx, POINTS_PER_DIRECTION, replace=False))] for _, gs, idx in found]
    texts = {model: normalize(torch.stack([emb[[row[gs.pairs.texts[i]] for i in idx]].mean(0)
                                           for _, gs, idx in found])) for model, (emb, row) in text_emb.items()}
    return Directions([label for label, _, _ in found], torch.stack(diffs), texts)

