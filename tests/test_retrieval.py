"""Difference-guided retrieval on hand-built embeddings with known answers."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from pcclip.edit_sets import EDIT_LABELS, build_edit_set, query_relations, relation_descriptions
from pcclip.geometry import View
from pcclip.profiles import load_profile
from pcclip.retrieval import (
    choose_lambda, chosen_lambdas, guided_queries, lambda_grid, recall_at_k, retrieval_results, retrieve, sweep_lambda,
    verbal_analogy_results,
)
from pcclip.world import COLORS, CONTINUOUS, SHAPES


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


def _relation_vector(label: str, dim: int) -> torch.Tensor:
    """The exact image difference of a relation in `_ideal_features`' layout: shape one-hots, colour
    one-hots, then a (low, mid, high) bucket block per continuous attribute."""
    v = torch.zeros(dim)
    if ":" in label:
        attribute, values = label.split(":")
        after, before = values.split("<")
        names, offset = (SHAPES, 0) if attribute == "shape" else (COLORS, len(SHAPES))
        v[offset + names.index(after)], v[offset + names.index(before)] = 1.0, -1.0
        return v
    block = len(SHAPES) + len(COLORS) + 3 * CONTINUOUS.index(label[:-1])
    v[block + (2 if label.endswith("+") else 0)], v[block + 1] = 1.0, -1.0  # edits leave the middle bucket
    return v


def test_relation_candidates_cover_every_query(ideal):
    _, sets = ideal
    texts, labels = relation_descriptions(seed=0)
    assert len(texts) == len(labels) == 8 + 6 * 5 + 8 * 7 and len(set(labels)) == len(labels)
    assert labels[:2] == ["size+", "size-"] and "color:red<blue" in labels and "shape:ring<circle" in labels
    assert relation_descriptions(seed=0) == (texts, labels)
    es, _ = sets["test"]
    truth = query_relations(es)
    assert set(truth) <= set(labels) and (truth[::len(EDIT_LABELS)] == "size+").all()
    q = es.queries()
    k = np.flatnonzero(q["edit"] == len(EDIT_LABELS) - 2)[0]  # a colour edit: named after D and C's colours
    assert truth[k] == f"color:{es.records.row(q['d'][k])['color']}<{es.records.row(q['c'][k])['color']}"


def test_verbal_analogies_name_the_change_then_retrieve(ideal, text_tower):
    _, sets = ideal
    es, view = sets["test"]
    texts, labels = relation_descriptions(seed=0)
    dim = view.images.shape[1]
    exact = text_tower({t: _relation_vector(label, dim) for t, label in zip(texts, labels)})
    blind = text_tower({t: torch.ones(dim) for t in texts})  # every description embeds alike
    table = verbal_analogy_results(es, {"exact": view, "blind": view}, {"exact": exact, "blind": blind},
                                   (texts, labels), {"exact": 0.5, "blind": 0.5})
    value = table.set_index(["model", "group", "metric"])["value"]
    assert set(table["mode"]) == {"verbal"}
    assert value[("exact", "all", "named")] == 1.0 and value[("exact", "all", "top1")] == 1.0
    assert value[("exact", "shape", "top1")] == 1.0 and value[("exact", "size", "named")] == 1.0
    # the blind model names every change "size+" (the first candidate): right only for size+ queries
    assert value[("blind", "all", "named")] == pytest.approx(0.1) and value[("blind", "size", "named")] == 0.5
    with pytest.raises(ValueError, match="have no candidate description"):
        verbal_analogy_results(es, {"exact": view}, {"exact": exact}, (texts[:8], labels[:8]), {"exact": 0.5})
