"""Notebook 05's one call: on DiffWorld the same tables as the edit-set functions the notebook called
before, value for value (the committed diffworld results stay valid)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pcclip.cache import array_source, embed_images
from pcclip.edit_sets import EDIT_LABELS, EDIT_SPLITS, build_edit_set, change_descriptions, relation_descriptions
from pcclip.geometry import analogy_results, consistency_matrices, consistency_results, difference_points, embed_views
from pcclip.geometry_tables import geometry_tables
from pcclip.models import load_clip
from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.retrieval import chosen_lambdas, lambda_grid, retrieval_results, retrieve, verbal_analogy_results


@pytest.fixture(scope="module")
def models(tiny_bundle):
    torch.manual_seed(1)
    return {"base": tiny_bundle, "pcclip": load_clip("diffclip-tiny")}


def test_diffworld_results_are_the_edit_set_functions(models):
    profile = load_profile("smoke", {"geometry.n_objects": 6, "geometry.lambda_steps": 4})
    paths = run_paths("smoke")
    out = geometry_tables(profile, paths, models)
    geo, base = profile.geometry, models["base"]
    sets = {s: build_edit_set(profile.world, geo, s, 32) for s in EDIT_SPLITS}
    changes = {s: change_descriptions(es, geo.seed) for s, es in sets.items()}
    emb = {s: embed_images(base, array_source(base, es.images, es.key), paths.cache, profile.cache) for s, es in sets.items()}
    views = embed_views(models, sets, emb, changes)
    retrieval, sweeps = retrieval_results(sets["val"], sets["test"], views["val"], views["test"], lambda_grid(geo))
    verbal = verbal_analogy_results(sets["test"], views["test"], models, relation_descriptions(geo.seed),
                                    chosen_lambdas(retrieval))
    pd.testing.assert_frame_equal(out.analogies, pd.concat([analogy_results(sets["test"], views["test"]), verbal],
                                                           ignore_index=True))
    pd.testing.assert_frame_equal(out.consistency, consistency_results(sets["test"], views["test"]))
    pd.testing.assert_frame_equal(out.retrieval, retrieval)
    pd.testing.assert_frame_equal(out.sweeps, sweeps)
    for name, matrix in consistency_matrices(sets["test"], views["test"]).items():
        np.testing.assert_array_equal(out.matrices[name], matrix)
    points, labels, directions = difference_points(sets["test"], views["test"])
    np.testing.assert_array_equal(out.points[0], points)
    assert out.points[1].tolist() == labels.tolist() and out.labels == list(EDIT_LABELS)
    assert out.sets.queries.tolist() == [6 * len(EDIT_LABELS)] * 2
    found = retrieve(sets["test"], views["test"]["pcclip"], chosen_lambdas(retrieval)["pcclip"], 4)
    assert out.gallery["results"]["pcclip"].tolist() == found[np.arange(6) * 10 + [0, 3, 4, 7, 8, 9]].tolist()
    assert len(out.examples["titles"]) == 1 + len(EDIT_LABELS)


def test_models_without_base_are_refused(models):
    with pytest.raises(ValueError, match="lack 'base'"):
        geometry_tables(load_profile("smoke"), run_paths("smoke"), {"pcclip": models["pcclip"]})
