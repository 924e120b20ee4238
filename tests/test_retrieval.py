"""Difference-guided retrieval on hand-built embeddings with known answers."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from pcclip.edit_sets import build_edit_set
from pcclip.geometry import View
from pcclip.profiles import load_profile
from pcclip.retrieval import (
    choose_lambda, chosen_lambdas, guided_queries, lambda_grid, recall_at_k, retrieval_results, retrieve, sweep_lambda,
)


def test_guided_queries_hand_computed():
    image, change = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 5.0]])
    assert torch.allclose(guided_queries(image, change, 0.0), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(guided_queries(image, change, 1.0), torch.tensor([[1.0, 1.0]]) / math.sqrt(2))
    assert torch.allclose(guided_queries(image, change, 3.0), torch.tensor([[1.0, 3.0]]) / math.sqrt(10))


def test_recall_at_k_counts_the_single_target():
    gallery = torch.eye(4)
    queries = torch.tensor([[1.0, 0.9, 0.0, 0.0], [0.0, 0.0, 1.0, 0.1], [0.3, 0.2, 0.1, 0.0]])
    # target ranks: query 0 -> row 1 second; query 1 -> row 2 first; query 2 -> row 3 last
    rec = recall_at_k(queries, gallery, torch.tensor([1, 2, 3]), ks=(1, 2, 4))
    assert rec == pytest.approx({"recall@1": 1 / 3, "recall@2": 2 / 3, "recall@4": 1.0})
    excluded = recall_at_k(queries, gallery, torch.tensor([1, 2, 3]), ks=(1,), exclude=torch.tensor([[0], [3], [0]]))
    assert excluded == pytest.approx({"recall@1": 2 / 3})


def test_lambda_grid_and_choice():
    geo = load_profile("smoke").geometry
    assert lambda_grid(replace(geo, lambda_max=2.0, lambda_steps=5)).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    with pytest.raises(ValueError, match="lambda_steps"):
        lambda_grid(replace(geo, lambda_steps=1))
    sweep = pd.DataFrame({"lambda": [0.0, 0.5, 1.0, 2.0], "recall@1": [0.1, 0.6, 0.6, 0.6],
                          "recall@5": [0.2, 0.7, 0.9, 0.9]})
    assert choose_lambda(sweep) == 1.0  # recall@1 ties: better recall@5, then the smaller lambda


@pytest.fixture(scope="module")
def ideal():
    """Edit sets whose image embeddings are one-hot attribute blocks plus the owning object, and whose
    change descriptions embed exactly as e(D) - e(C): retrieval has exact answers."""
    profile = load_profile("smoke")
    from test_geometry import _ideal_features

    out = {}
    for split in ("val", "test"):
        es = build_edit_set(profile.world, profile.geometry, split)
        images = _ideal_features(es, with_owner=True)
        q = es.queries()
        out[split] = (es, View(images=images, texts=images, changes=images[q["d"]] - images[q["c"]]))
    return profile, out


def test_retrieval_on_ideal_embeddings(ideal):
    profile, sets = ideal
    (val, val_view), (test, test_view) = sets["val"], sets["test"]
    geo = replace(profile.geometry, lambda_max=1.5, lambda_steps=4)  # 0, .5, 1, 1.5
    sweep = sweep_lambda(val, val_view, lambda_grid(geo))
    # lambda 0 returns the query image itself; any lambda with lambda * sqrt(7/2) > 1/2 returns the edit
    assert sweep["recall@1"].tolist() == [0.0, 1.0, 1.0, 1.0]
    results, sweeps = retrieval_results(val, test, {"ideal": val_view}, {"ideal": test_view}, lambda_grid(geo))
    value = results.set_index(["model", "group", "metric"])["value"]
    assert value[("ideal", "all", "lambda")] == 0.5 and chosen_lambdas(results) == {"ideal": 0.5}
    assert value[("ideal", "all", "recall@1")] == 1.0 and value[("ideal", "color", "recall@1")] == 1.0
    # without the description, the nearest other image is one of C's 10 edits (they tie; size+ comes first)
    assert value[("any", "nearest_neighbour", "recall@1")] == pytest.approx(0.1)
    assert value[("any", "nearest_neighbour", "recall@5")] == pytest.approx(0.5)
    assert len(sweeps) == 4
    top = retrieve(test, test_view, 0.5, 2)
    assert np.array_equal(top[:, 0], test.queries()["d"])
    assert np.array_equal(retrieve(test, test_view, 0.0, 1)[:, 0], test.queries()["c"])
