"""Geometry on labelled difference pairs: synthetic embeddings with known answers, and the paper path's
tables built from rehearsal fixtures."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pcclip.datasets.pairset import PairSet
from pcclip.embeddings import normalize
from pcclip.geometry import direction_matrices
from pcclip.pair_geometry import (POINTS_PER_DIRECTION, any_hits, encode_descriptions, pair_analogy_results,
                                  pair_consistency_results, pair_directions, pair_geometry_set, pair_retrieval_results,
                                  set_rows)
from pcclip.retrieval import lambda_grid
from pcclip.profiles import GeometryConfig

D, N, T = 32, 40, 0.5  # dimension, objects, half the step along the change direction
MORE, LESS = "the first is more", "the first is less"


class Tower:
    """A text tower that maps each description to a fixed vector."""

    def __init__(self, vectors: dict[str, torch.Tensor]):
        self.vectors = vectors

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self.vectors[t] for t in texts])


def _synthetic(seed: int = 0):
    """Object i as a pair of unit vectors a_i +- T*u (a_i orthogonal to u, |a_i|^2 + T^2 = 1): its image
    difference points exactly along u. Pairs (more, less) in both orders, described MORE and LESS. The
    objects look alike, so an image's nearest neighbour is another object on the same side, not its pair."""
    g = torch.Generator().manual_seed(seed)
    u = normalize(torch.randn(D, generator=g))
    a = torch.randn(D, generator=g) + 0.3 * torch.randn(N, D, generator=g)
    a = normalize(a - (a @ u)[:, None] * u) * (1 - T**2) ** 0.5
    images = torch.cat([a + T * u, a - T * u])  # rows i: more of u, N + i: less
    idx_more, idx_less = np.arange(N), np.arange(N, 2 * N)
    pairs = PairSet(np.concatenate([idx_more, idx_less]), np.concatenate([idx_less, idx_more]),
                    [MORE] * N + [LESS] * N, np.array([1] * N + [-1] * N), [LESS] * N + [MORE] * N, "syn")
    return pair_geometry_set("syn", pairs, images, seed=0), u


def _towers(u: torch.Tensor) -> dict:
    g = torch.Generator().manual_seed(9)
    random = {t: normalize(torch.randn(D, generator=g)) for t in (MORE, LESS)}
    return encode_descriptions({"aligned": Tower({MORE: u, LESS: -u}), "random": Tower(random)}, {"syn": _synthetic()[0]})


def test_any_hits_finds_the_best_of_several_targets_and_respects_exclusions():
    gallery = torch.eye(4)
    queries = torch.tensor([[1.0, 0.9, 0.1, 0.0], [0.0, 0.0, 1.0, 0.5]])
    targets = torch.tensor([[False, True, False, True], [True, False, False, True]])
    hits = any_hits(queries, gallery, targets, (1, 2))
    assert hits[1].tolist() == [False, False] and hits[2].tolist() == [True, True]
    excluded = any_hits(queries, gallery, targets, (1,), exclude=torch.tensor([[0], [2]]))
    assert excluded[1].tolist() == [True, True]  # row 0 gone: target row 1 is first; row 2 gone: target row 3
    with pytest.raises(ValueError, match="no target left"):
        any_hits(queries, gallery, targets, (1,), exclude=torch.tensor([[1, 3], [0, 3]]))


def test_every_set_weighs_the_same_in_the_overall_figure():
    rows = set_rows({"big": {"top1": np.ones(99)}, "small": {"top1": np.zeros(1)}}, {"model": "m"})
    assert rows == [{"model": "m", "group": "all", "metric": "top1", "value": 0.5},
                    {"model": "m", "group": "big", "metric": "top1", "value": 1.0},
                    {"model": "m", "group": "small", "metric": "top1", "value": 0.0}]


def test_queries_group_pairs_and_split_in_halves():
    gs, _ = _synthetic()
    assert len(gs.query) == 2 * N and gs.tune.sum() == N  # every (image 2, description) once
    assert [t.tolist() for t in gs.targets[:2]] == [[0], [1]] and gs.gallery.tolist() == list(range(2 * N))


def test_consistency_is_one_along_the_text_direction_and_near_zero_for_a_random_tower():
    gs, u = _synthetic()
    table = pair_consistency_results({"syn": gs}, _towers(u))
    value = table.set_index(["model", "edit", "metric"])["value"]
    assert value["any", "syn", "image_consistency"] == pytest.approx(1.0, abs=1e-5)
    assert value["aligned", "syn", "description_cos"] == pytest.approx(1.0, abs=1e-5)
    assert abs(value["random", "syn", "description_cos"]) < 0.35
    assert value["aligned", "all", "description_cos"] == value["aligned", "syn", "description_cos"]


def test_retrieval_finds_the_pair_at_the_right_lambda_never_chosen_on_scored_queries():
    gs, u = _synthetic()
    lambdas = lambda_grid(GeometryConfig(lambda_max=3.0, lambda_steps=13))
    results, sweeps = pair_retrieval_results({"syn": gs}, _towers(u), lambdas)
    value = results.set_index(["model", "group", "metric"])["value"]
    assert value["aligned", "syn", "recall@1"] == 1.0 and value["aligned", "all", "lambda"] > 0
    assert value["any", "nearest_neighbour", "recall@1"] == 0.0  # another object on the same side
    at_zero = sweeps[(sweeps["lambda"] == 0) & (sweeps.model == "aligned")]
    assert at_zero["recall@1"].item() == 0.0  # lambda 0 returns the query image itself
    exact = sweeps[(sweeps["lambda"] == 2 * T) & (sweeps.model == "aligned")]  # image 2 + 2T*u is image 1
    assert exact["recall@1"].item() == 1.0
    assert value["random", "syn", "recall@1"] < 1.0
    assert results.group.isin(["syn", "all", "nearest_neighbour"]).all() and set(sweeps.model) == {"aligned", "random"}


def test_lambda_is_swept_on_the_tuning_half_and_scored_on_the_other(monkeypatch):
    from pcclip import pair_geometry

    gs, u = _synthetic()
    calls, real = [], pair_geometry._guided_hits
    monkeypatch.setattr(pair_geometry, "_guided_hits", lambda g, text, lam, select: calls.append(
        (lam, select.copy())) or real(g, text, lam, select))
    lambdas = np.array([0.0, 1.0, 2.0])
    pair_retrieval_results({"syn": gs}, _towers(u), lambdas)
    tuned = [lam for lam, select in calls if (select == gs.tune).all()]
    scored = [lam for lam, select in calls if (select == ~gs.tune).all()]
    assert len(tuned) + len(scored) == len(calls) and 0 < gs.tune.sum() < len(gs.tune)
    assert tuned == [*lambdas, *lambdas] and len(scored) == 2  # per model: the sweep, then one scored run


def test_analogies_with_a_shared_description_are_exact():
    gs, _ = _synthetic()
    table = pair_analogy_results({"syn": gs}, seed=0)
    value = table.set_index(["model", "mode", "group", "metric"])["value"]
    assert value["any", "image", "syn", "top1"] == 1.0 and value["any", "image_copy", "syn", "top1"] == 0.0
    assert list(table.columns) == ["model", "mode", "group", "metric", "value"]


def test_directions_are_oriented_and_opposite():
    gs, u = _synthetic()
    assert N == POINTS_PER_DIRECTION
    dirs = pair_directions({"syn": gs}, _towers(u), seed=0)
    assert dirs.labels == ["syn+", "syn-"] and tuple(dirs.diffs.shape) == (2, N, D)
    mats = direction_matrices(dirs.diffs, dirs.texts)
    np.testing.assert_allclose(mats["image"], [[1, -1], [-1, 1]], atol=1e-5)
    np.testing.assert_allclose(mats["aligned"], [[1, -1], [-1, 1]], atol=1e-5)
    assert np.abs(mats["random"]).max() < 0.5


@pytest.fixture(scope="module")
def rehearsal_root(tmp_path_factory):
    from pcclip.rehearsal.fixtures import write_fixtures

    root = tmp_path_factory.mktemp("rehearsal")
    write_fixtures(root, seed=0, datasets=("cifar100", "flowers102", "awa2"))
    return root


def test_paper_tables_from_rehearsal_fixtures_cover_every_set(rehearsal_root, tiny_bundle):
    from pcclip.datasets import PAIR_SETS
    from pcclip.geometry import geometry_rows
    from pcclip.geometry_tables import geometry_tables
    from pcclip.models import load_clip
    from pcclip.paths import run_paths
    from pcclip.profiles import load_profile

    profile = load_profile("rehearsal", {"data_root": str(rehearsal_root), "eval.datasets": "cifar100,flowers102,awa2",
                                         "eval.n_images": 40, "eval.seeds": 1, "geometry.lambda_steps": 4})
    torch.manual_seed(1)
    models = {"base": tiny_bundle, "pcclip": load_clip("diffclip-tiny")}
    out = geometry_tables(profile, run_paths("rehearsal"), models)
    assert out.sets["set"].tolist() == list(PAIR_SETS)
    for table, column in ((out.consistency, "edit"), (out.retrieval, "group")):
        assert set(PAIR_SETS) | {"all"} <= set(table[column]), (column, sorted(set(table[column])))
        assert np.isfinite(table.value).all()
    assert set(out.consistency.metric) == {"image_consistency", "description_cos"}
    lam = out.retrieval[out.retrieval.metric == "lambda"]
    assert lam.model.tolist() == ["base", "pcclip"] and lam.value.isin(out.sweeps["lambda"]).all()
    assert {"awa2_size", "cifar100_size", "flowers102_colour"} <= set(out.analogies.group)  # repeated descriptions
    assert np.isfinite(out.analogies.value).all() and set(out.analogies["mode"]) == {"image", "image_copy"}
    # the group sets give both directions (AwA2's attribute lists repeat too rarely); every matrix is K x K over those labels, the UMAP has their points
    assert out.labels == ["awa2_size+", "awa2_size-", "cifar100_size+", "cifar100_size-", "flowers102_colour+",
                          "flowers102_colour-"]
    k = len(out.labels)
    assert all(m.shape == (k, k) and np.isfinite(m).all() for m in out.matrices.values())
    assert set(out.matrices) == {"image", "base", "pcclip"}
    diffs, labels, directions = out.points
    assert set(labels) == set(out.labels) and len(diffs) == len(labels) and directions["base"].shape[0] == k
    rows = [geometry_rows(out.analogies, "analogy"), geometry_rows(out.consistency, "consistency"),
            geometry_rows(out.retrieval, "retrieval")]  # notebook 05's recording cell
    assert all({"model", "attribute", "metric", "value", "task"} <= set(r.columns) for r in rows)
    # figure inputs read from the data root: one gallery row per set, every index within the images read
    from pcclip.plots.geometry import retrieval_gallery
    from pcclip.plots.world import image_grid

    gallery = out.gallery
    assert len(gallery["queries"]) == len(PAIR_SETS) and gallery["results"]["pcclip"].shape == (len(PAIR_SETS), 4)
    assert max(gallery["results"]["base"].max(), gallery["queries"].max()) < len(gallery["images"])
    assert all(im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8 for im in gallery["images"])
    assert len(retrieval_gallery(**gallery).axes) == len(PAIR_SETS) * (1 + 2 * 4)
    assert len(image_grid(**out.examples).axes) == 6 and "image 1: The first image" in out.examples["titles"][2]


def test_bad_sets_are_refused_with_the_fix():
    gs, u = _synthetic()
    one = PairSet(np.array([0, 1]), np.array([2, 2]), [MORE, MORE], np.array([1, 1]), attribute="one")
    with pytest.raises(ValueError, match=r"1 distinct \(image, description\) queries.*raise eval.n_images"):
        pair_geometry_set("one", one, gs.images, seed=0)
    with pytest.raises(ValueError, match="beyond its 3 embeddings"):
        pair_geometry_set("syn", gs.pairs, gs.images[:3], seed=0)
    few = pair_geometry_set("few", PairSet(gs.pairs.idx1[::4], gs.pairs.idx2[::4], gs.pairs.texts[::4],
                                           gs.pairs.sign[::4], gs.pairs.reversed_texts[::4], "few"), gs.images, 0)
    with pytest.raises(ValueError, match="no description has 40 pairs in any of \\['few'\\]"):
        pair_directions({"few": few}, _towers(u), seed=0)
