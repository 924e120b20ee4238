"""Notebook 05's tables and figure inputs for either source, through one call.

DiffWorld: the controlled edit sets (`pcclip.edit_sets`, `pcclip.geometry`, `pcclip.retrieval`),
exactly as the notebook computed them before. Paper: the ground-truth difference sets of notebook
03 (`pcclip.pair_geometry`). The tables have the same columns either way, so the notebook records
them with one cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cache import array_source, embed_images
from .datasets import PAIR_SETS, load_dataset
from .edit_sets import (EDIT_LABELS, EDIT_SPLITS, EditSet, build_edit_set, change_descriptions,
                        relation_descriptions, render_size)
from .evaluation.tasks import difference_tasks
from .geometry import (analogy_results, consistency_matrices, consistency_results, difference_points, direction_matrices,
                       embed_views, flat_points)
from .models import ClipBundle
from .pair_geometry import (PairGeometrySet, encode_descriptions, geometry_pair_sets, pair_analogy_results,
                            pair_consistency_results, pair_directions, pair_retrieval_results, pair_retrieve)
from .paths import RunPaths
from .profiles import Profile, data_root
from .retrieval import chosen_lambdas, lambda_grid, retrieval_results, retrieve, verbal_analogy_results
from .synthesis.cub import CUB_SET, CUB_SPLIT

GALLERY_MODELS = ("base", "pcclip")  # the models the retrieval gallery shows
GALLERY_PICKS = (0, 3, 4, 7, 8, 9)  # DiffWorld: six objects, six kinds of edit (size+, x-, y+, brightness-, ...)
GALLERY_K = 4  # images each model returns per gallery row


@dataclass
class GeometryResults:
    """What notebook 05 shows and records. `labels` name the rows of every matrix and the UMAP's
    changes; `gallery` holds the arguments of `plots.geometry.retrieval_gallery` and `examples` those of
    `plots.world.image_grid` where the images are at hand (DiffWorld), else None."""

    sets: pd.DataFrame  # one row per set: its size
    analogies: pd.DataFrame  # (model, mode, group, metric, value)
    consistency: pd.DataFrame  # (model, edit, metric, value)
    retrieval: pd.DataFrame  # (model, group, metric, value)
    sweeps: pd.DataFrame  # (lambda, recall@k..., model) on the sets that choose lambda
    labels: list[str]
    matrices: dict[str, np.ndarray]  # "image" and one per model: (K, K) mean cosines
    points: tuple[np.ndarray, np.ndarray, dict]  # (differences, their labels, model -> (K, d) directions)
    gallery: dict | None = None
    examples: dict | None = None


def geometry_tables(profile: Profile, paths: RunPaths, models: dict[str, ClipBundle]) -> GeometryResults:
    """Every table and figure input of notebook 05 for the profile's source."""
    if "base" not in models:
        raise ValueError(f"models {sorted(models)} lack 'base': pass pcclip.loading.load_models(profile, paths)")
    if profile.source == "diffworld":
        return _edit_set_tables(profile, paths, models)
    return _pair_tables(profile, paths, models)


def _edit_set_tables(profile: Profile, paths: RunPaths, models: dict[str, ClipBundle]) -> GeometryResults:
    """The controlled DiffWorld sets: val chooses the retrieval lambda, test reports."""
    geo, base = profile.geometry, models["base"]
    sets = {split: build_edit_set(profile.world, geo, split, render_size(base)) for split in EDIT_SPLITS}
    changes = {s: change_descriptions(es, geo.seed) for s, es in sets.items()}
    image_emb = {s: embed_images(base, array_source(base, es.images, es.key), paths.cache, profile.cache,
                                 profile.model.precision) for s, es in sets.items()}
    views = embed_views(models, sets, image_emb, changes)
    test, view = sets["test"], views["test"]
    analogies = analogy_results(test, view)
    consistency = consistency_results(test, view)
    matrices, points = consistency_matrices(test, view), difference_points(test, view)
    retrieval, sweeps = retrieval_results(sets["val"], test, views["val"], view, lambda_grid(geo))
    verbal = verbal_analogy_results(test, view, models, relation_descriptions(geo.seed), chosen_lambdas(retrieval))
    summary = pd.DataFrame([{"split": s, "objects": es.n_objects, "gallery": es.n_gallery, "images": len(es.records),
                             "queries": es.edited.size} for s, es in sets.items()])
    return GeometryResults(summary, pd.concat([analogies, verbal], ignore_index=True), consistency, retrieval, sweeps,
                           list(EDIT_LABELS), matrices, points, _edit_gallery(test, view, changes["test"], retrieval),
                           _edit_family(test))


def _edit_gallery(test: EditSet, views: dict, changes: list[str], retrieval: pd.DataFrame) -> dict:
    q, lam = test.queries(), chosen_lambdas(retrieval)
    pick = np.arange(len(GALLERY_PICKS)) * len(EDIT_LABELS) + np.array(GALLERY_PICKS)
    found = {m: retrieve(test, views[m], lam[m], GALLERY_K)[pick] for m in GALLERY_MODELS if m in views}
    return {"images": test.images, "queries": q["c"][pick], "changes": [changes[i] for i in pick], "results": found,
            "targets": q["d"][pick]}


def _edit_family(test: EditSet) -> dict:
    family = [test.base[0], *test.edited[0]]
    return {"images": test.images[family],
            "titles": [f"{label}: {test.texts[r]}" for label, r in zip(["base", *EDIT_LABELS], family)]}


def _pair_tables(profile: Profile, paths: RunPaths, models: dict[str, ClipBundle]) -> GeometryResults:
    """The paper's ground-truth difference sets (first draw each): half the queries choose lambda."""
    geo = profile.geometry
    pair_sets, embeddings = difference_tasks(profile, paths, models["base"])
    sets = geometry_pair_sets(pair_sets, embeddings, geo.seed)
    text = encode_descriptions(models, sets)
    consistency = pair_consistency_results(sets, text)
    retrieval, sweeps = pair_retrieval_results(sets, text, lambda_grid(geo))
    analogies = pair_analogy_results(sets, geo.seed)
    directions = pair_directions(sets, text, geo.seed)
    summary = pd.DataFrame([{"set": name, "pairs": len(gs.pairs), "gallery": len(gs.gallery),
                             "queries": len(gs.query), "descriptions": len(set(gs.pairs.texts))}
                            for name, gs in sets.items()])
    pixels = _SetImages(profile)
    return GeometryResults(summary, analogies, consistency, retrieval, sweeps, directions.labels,
                           direction_matrices(directions.diffs, directions.texts),
                           flat_points(directions.diffs, directions.labels, directions.texts),
                           _pair_gallery(sets, text, chosen_lambdas(retrieval), pixels), _pair_examples(sets, pixels))


class _SetImages:
    """Pixels of a few images of the difference sets, read from the data root for the figures: a list
    with one entry per image asked for, so figures index them like an array."""

    def __init__(self, profile: Profile):
        self.root, self.loaded, self.images = data_root(profile), {}, []
        self.row: dict[tuple[str, int], int] = {}

    def __call__(self, name: str, image: int) -> int:
        """The list index of image `image` of set `name`, read on first use."""
        if (name, image) not in self.row:
            if name not in self.loaded:
                spec = ("cub200", CUB_SPLIT) if name == CUB_SET else (PAIR_SETS[name].dataset, PAIR_SETS[name].split)
                self.loaded[name] = load_dataset(spec[0], self.root, split=spec[1])
            self.row[(name, image)] = len(self.images)
            self.images.append(np.asarray(self.loaded[name].dataset[image][0].convert("RGB")))
        return self.row[(name, image)]


def _pair_gallery(sets: dict[str, PairGeometrySet], text: dict, lambdas: dict[str, float], pixels: _SetImages) -> dict:
    """The first scored query of each set (up to six sets) and what each gallery model returns for it."""
    queries, changes, found, targets = [], [], {m: [] for m in GALLERY_MODELS if m in text}, []
    for name, gs in list(sets.items())[:len(GALLERY_PICKS)]:
        q = int(np.flatnonzero(~gs.tune)[0])
        select = np.arange(len(gs.query)) == q
        queries.append(pixels(name, int(gs.query[q])))
        changes.append(gs.texts[q])
        for m in found:
            found[m].append([pixels(name, int(r)) for r in pair_retrieve(gs, text[m], lambdas[m], select, GALLERY_K)[0]])
        targets.append(np.array([pixels.row[(name, int(t))] for t in gs.targets[q] if (name, int(t)) in pixels.row]))
    return {"images": pixels.images, "queries": np.array(queries), "changes": changes,
            "results": {m: np.array(rows) for m, rows in found.items()}, "targets": targets}


def _pair_examples(sets: dict[str, PairGeometrySet], pixels: _SetImages) -> dict:
    """The first pair of each set (up to three sets, six images): image 1 titled with its description."""
    images, titles = [], []
    for name, gs in list(sets.items())[:3]:
        p = gs.pairs
        images += [pixels.images[pixels(name, int(p.idx1[0]))], pixels.images[pixels(name, int(p.idx2[0]))]]
        titles += [f"{name}, image 1: {p.texts[0]}", f"{name}, image 2"]
    return {"images": images, "titles": titles}
