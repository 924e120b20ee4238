"""Geometry: analogy and consistency metrics on hand-built embeddings with known answers,
and the controlled DiffWorld edit sets they are computed on."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pcclip.edit_sets import EDIT_LABELS, EDITS, build_edit_set, record_texts, render_size
from pcclip.geometry import (
    View, analogy_queries, analogy_results, consistency_matrices, consistency_results, cross_consistency, embed_views,
    geometry_rows, hits_at_k, mean_cosine, mean_pairwise_cosine, modality_gap, text_gallery,
)
from pcclip.profiles import load_profile
from pcclip.world import COLORS, CONTINUOUS, SHAPES, make_records
from pcclip.world.captions import bucket
from pcclip.world.dataset import holdout_pairs

BUCKETS = ("low", "mid", "high")


def _onehot(index: int, size: int) -> list[float]:
    return [1.0 if i == index else 0.0 for i in range(size)]


def _word_vectors() -> tuple[dict[str, torch.Tensor], list[str]]:
    """'large red circle' etc. as sums of attribute one-hots: arithmetic is exact."""
    names = [f"{s} {c} {k}" for s in ("small", "large") for c in ("red", "blue") for k in ("circle", "square")]
    vocab = ["small", "large", "red", "blue", "circle", "square"]
    vec = {n: torch.tensor([float(w in n.split()) for w in vocab]) for n in names}
    return vec, names


def test_text_analogy_on_word_vectors_finds_the_large_blue_square():
    vec, names = _word_vectors()
    gallery = torch.stack([vec[n] for n in names])
    q = analogy_queries(vec["large red circle"][None], vec["small red circle"][None], vec["small blue square"][None])
    inputs = torch.tensor([[names.index("large red circle"), names.index("small red circle"),
                            names.index("small blue square")]])
    hits = hits_at_k(q, gallery, torch.tensor([names.index("large blue square")]), (1,), inputs)
    assert hits[1].tolist() == [True]
    assert torch.allclose(q[0], torch.nn.functional.normalize(vec["large blue square"], dim=0))


def test_hits_at_k_ranks_excludes_and_breaks_ties_towards_lower_rows():
    gallery = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    query = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    hits = hits_at_k(query, gallery, torch.tensor([1, 3, 2]), (1, 2, 3))
    # target 1 is third (cos .8 after rows 0 and 3); target 3 ties row 0 and loses the tie; target 2 is last
    assert hits[1].tolist() == [False, False, False]
    assert hits[2].tolist() == [False, True, False]
    assert hits[3].tolist() == [True, True, False]
    excluded = hits_at_k(query, gallery, torch.tensor([1, 3, 2]), (1,), torch.tensor([[0, 3], [0, -1], [0, 1]]))
    assert excluded[1].tolist() == [True, True, False]
    with pytest.raises(ValueError, match="excludes its own target"):
        hits_at_k(query[:1], gallery, torch.tensor([1]), (1,), torch.tensor([[1]]))
    with pytest.raises(ValueError, match="one target per query"):
        hits_at_k(query, gallery, torch.tensor([1]), (1,))


def test_mean_pairwise_cosine_hand_computed_and_scale_invariant():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert mean_pairwise_cosine(v) == pytest.approx((2 / math.sqrt(2)) / 3, abs=1e-6)
    assert mean_pairwise_cosine(v * torch.tensor([[3.0], [0.5], [7.0]])) == pytest.approx(0.4714045, abs=1e-6)
    assert mean_pairwise_cosine(torch.tensor([[2.0, 1.0]] * 4)) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_cosine(torch.ones(1, 3))


def test_cross_consistency_of_constructed_changes():
    e = torch.eye(3)
    up = torch.stack([e[0] + 0.0 * e[1], 2 * e[0]])  # the same direction on two objects
    down = -up
    side = torch.stack([e[1], e[2]])  # orthogonal changes: cos 0 to 'up', 0 to each other
    m = cross_consistency(torch.stack([up, down, side]))
    expected = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert np.allclose(m, expected, atol=1e-6)


def test_mean_cosine_and_modality_gap():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert mean_cosine(x, torch.tensor([[5.0, 0.0], [1.0, 0.0]])) == pytest.approx(0.5)
    images, texts = torch.tensor([[2.0, 0.0]] * 3), torch.tensor([[0.0, 0.5]] * 2)
    assert modality_gap(images, texts) == pytest.approx(math.sqrt(2))
    assert modality_gap(images, images * 4) == pytest.approx(0.0)
    # centroids of the normalised sets: (0.5, 0.5) and (0, 1)
    assert modality_gap(torch.tensor([[1.0, 0.0], [0.0, 3.0]]), torch.tensor([[0.0, 1.0]])) == pytest.approx(
        math.sqrt(0.5))


@pytest.fixture(scope="module")
def edit_set():
    p = load_profile("smoke")
    return build_edit_set(p.world, p.geometry, "test"), p


def _differing(records, r1: int, r2: int) -> list[str]:
    a, b = records.row(r1), records.row(r2)
    return [k for k in a if a[k] != b[k]]


def test_edit_set_pairs_differ_in_exactly_the_edited_attribute(edit_set):
    es, profile = edit_set
    held = {tuple(p) for p in holdout_pairs(profile.world).tolist()}
    assert es.edited.shape == (profile.geometry.n_objects, len(EDITS))
    assert es.n_gallery == profile.geometry.n_objects * (1 + len(EDITS))
    for i in range(es.n_objects):
        for k, (attribute, direction) in enumerate(EDITS):
            c, d, a, b = es.base[i], es.edited[i, k], es.donor_a[i, k], es.donor_b[i, k]
            assert _differing(es.records, d, c) == [attribute]
            assert _differing(es.records, a, b) == [attribute]
            if direction:
                assert getattr(es.records, attribute)[d] - getattr(es.records, attribute)[c] == pytest.approx(
                    direction * profile.geometry.delta)
                assert getattr(es.records, attribute)[a] - getattr(es.records, attribute)[b] == pytest.approx(
                    direction * profile.geometry.delta)
                assert bucket(getattr(es.records, attribute)[d]) == ("high" if direction > 0 else "low")
            else:  # the example pair shows the same category change
                assert es.records.row(a)[attribute] == es.records.row(d)[attribute]
                assert es.records.row(b)[attribute] == es.records.row(c)[attribute]
            assert es.records.shape[a] != es.records.shape[d] or es.records.color[a] != es.records.color[d]
    combos = set(zip(es.records.shape.tolist(), es.records.color.tolist()))
    assert not combos & held
    assert [bucket(es.records.size[r]) for r in es.base] == ["mid"] * es.n_objects


def test_edit_set_is_deterministic_and_splits_differ(edit_set):
    es, profile = edit_set
    again = build_edit_set(profile.world, profile.geometry, "test")
    val = build_edit_set(profile.world, profile.geometry, "val")
    assert again.key == es.key and again.records.as_dict().keys() == es.records.as_dict().keys()
    assert all(np.array_equal(x, y) for x, y in zip(again.records.as_dict().values(), es.records.as_dict().values()))
    assert val.key != es.key and not np.array_equal(val.records.size, es.records.size)
    with pytest.raises(ValueError, match="unknown edit-set split"):
        build_edit_set(profile.world, profile.geometry, "train")
    with pytest.raises(ValueError, match="must stay in"):
        build_edit_set(profile.world, replace(profile.geometry, delta=0.45), "test")
    with pytest.raises(ValueError, match="at least 4 objects"):
        build_edit_set(profile.world, replace(profile.geometry, n_objects=3), "test")
    big = build_edit_set(profile.world, profile.geometry, "test", image_size=48)
    assert big.images.shape == (len(es.records), 48, 48, 3) and big.key != es.key
    assert all(np.array_equal(x, y) for x, y in zip(big.records.as_dict().values(), es.records.as_dict().values()))


def test_record_texts_use_the_caption_vocabulary():
    r = make_records(["circle", "square"], ["red", "blue"], [0.9, 0.5], [0.5, 0.1], [0.5, 0.9], [0.5, 0.1])
    assert record_texts(r) == ["a large red circle in the center",
                               "a medium-sized dark blue square near the bottom left"]


def _ideal_features(es, with_owner: bool) -> torch.Tensor:
    """One-hot blocks for shape, colour and the bucket of each continuous attribute, and (images only,
    zeros for texts) the object a record belongs to: equal norms, so analogies are exact."""
    owner = {}
    for i, row in enumerate(es.base):
        owner[row] = i
        owner.update({int(r): i for r in es.edited[i]})
        owner[tuple(getattr(es.records, a)[row] for a in CONTINUOUS)] = i
    feats = []
    for r in range(len(es.records)):
        f = _onehot(int(es.records.shape[r]), len(SHAPES)) + _onehot(int(es.records.color[r]), len(COLORS))
        for a in CONTINUOUS:
            f += _onehot(BUCKETS.index(bucket(getattr(es.records, a)[r])), 3)
        who = owner.get(r, owner.get(tuple(getattr(es.records, a)[r] for a in CONTINUOUS)))
        f += _onehot(who if with_owner else -1, es.n_objects)
        feats.append(f)
    return torch.tensor(feats)


@pytest.fixture(scope="module")
def ideal_view(edit_set):
    es, _ = edit_set
    images = _ideal_features(es, with_owner=True)
    q = es.queries()
    return View(images=images, texts=_ideal_features(es, with_owner=False), changes=images[q["d"]] - images[q["c"]])


def test_analogies_are_exact_on_ideal_embeddings(edit_set, ideal_view):
    es, _ = edit_set
    table = analogy_results(es, {"ideal": ideal_view})
    top = table.set_index(["model", "mode", "group", "metric"])["value"]
    for group in ["all", "size", "x", "y", "brightness", "color", "shape"]:
        assert top[("any", "image", group, "top1")] == 1.0
        assert top[("ideal", "text", group, "top1")] == 1.0
    # the copy baseline returns C's nearest other record: its 10 edits tie, the first (size+) wins
    assert top[("any", "image_copy", "all", "top1")] == pytest.approx(0.1)
    assert top[("any", "image_copy", "size", "top1")] == pytest.approx(0.5)
    assert top[("any", "image_copy", "x", "top1")] == 0.0
    rows = geometry_rows(table, "analogy").set_index(["model", "variant", "attribute", "metric"]).value
    assert rows[("any", "image", "all", "top1")] == 1.0 and rows[("ideal", "text", "size", "top5")] == 1.0


def test_text_gallery_dedupes_captions(edit_set):
    es, _ = edit_set
    rows, ids = text_gallery(es)
    texts = [es.texts[r] for r in rows]
    assert len(set(texts)) == len(texts) and rows.max() < es.n_gallery
    assert all(texts[ids[r]] == es.texts[r] for r in range(es.n_gallery))


def test_consistency_on_ideal_embeddings(edit_set, ideal_view):
    es, _ = edit_set
    table = consistency_results(es, {"ideal": ideal_view}).set_index(["model", "edit", "metric"])["value"]
    for label in ("size+", "x-", "brightness+"):
        assert table[("any", label, "image_consistency")] == pytest.approx(1.0, abs=1e-6)
        assert table[("ideal", label, "caption_consistency")] == pytest.approx(1.0, abs=1e-6)
    assert table[("any", "color", "image_consistency")] < 0.9  # different colour pairs per object
    assert table[("ideal", "all", "description_cos")] == pytest.approx(1.0, abs=1e-6)
    assert table[("ideal", "all", "caption_diff_cos")] == pytest.approx(1.0, abs=1e-6)
    mats = consistency_matrices(es, {"ideal": ideal_view})
    size_up, size_down, x_up = (EDIT_LABELS.index(x) for x in ("size+", "size-", "x+"))
    assert mats["image"][size_up, size_up] == pytest.approx(1.0, abs=1e-6)
    assert mats["image"][size_up, size_down] == pytest.approx(0.5, abs=1e-6)  # both leave the 'mid' bucket
    assert mats["image"][size_up, x_up] == pytest.approx(0.0, abs=1e-6)
    assert mats["ideal"][size_up, size_up] == pytest.approx(1.0, abs=1e-6)


def test_embed_views_encodes_each_text_once_and_checks_sizes(edit_set, tiny_bundle):
    es, _ = edit_set
    assert render_size(tiny_bundle) == 32
    changes = ["the first image shows a larger object"] * es.edited.size
    images = torch.randn(len(es.records), 128)
    views = embed_views({"tiny": tiny_bundle}, {"test": es}, {"test": images}, {"test": changes})
    view = views["test"]["tiny"]
    expected = torch.nn.functional.normalize(tiny_bundle.encode_text(es.texts[:3]), dim=-1)
    assert torch.allclose(view.texts[:3], expected, atol=1e-5)
    assert torch.equal(view.changes[0], view.changes[-1]) and view.changes.shape == (es.edited.size, 128)
    assert torch.equal(view.images, images)
    with pytest.raises(ValueError, match="expected"):
        embed_views({"tiny": tiny_bundle}, {"test": es}, {"test": images[:5]}, {"test": changes})


def test_figures_mark_hits_and_share_one_colour_scale():
    from matplotlib.colors import to_rgba

    from pcclip.plots.geometry import consistency_heatmaps, edit_colors, retrieval_gallery

    colors = edit_colors(list(EDIT_LABELS))
    assert colors["size+"] != colors["size-"] and colors["color"] != colors["shape"]
    mats = {"image": np.array([[1.0, -0.5], [0.2, 0.8]]), "base": np.zeros((2, 2))}
    fig = consistency_heatmaps(mats, ["a", "b"], {"image": "image"})
    limits = {im.get_clim() for ax in fig.axes[:2] for im in ax.get_images()}
    assert limits == {(-1.0, 1.0)} and fig.axes[0].get_title() == "image"
    images = np.zeros((5, 8, 8, 3), np.uint8)
    fig = retrieval_gallery(images, np.array([0, 1]), ["larger", "bluer"], {"m": np.array([[2, 3], [4, 2]])},
                            np.array([3, 4]))
    frames = [[p.get_edgecolor() for p in ax.patches] for ax in fig.axes]
    green, red = to_rgba("limegreen"), to_rgba("crimson")
    assert len(fig.axes) == 6 and frames == [[], [red], [green], [], [green], [red]]


def test_change_descriptions_name_the_change_and_are_seeded(edit_set):
    from pcclip.edit_sets import change_descriptions

    es, _ = edit_set
    texts = change_descriptions(es, seed=0)
    assert len(texts) == es.edited.size and texts == change_descriptions(es, seed=0)
    assert texts != change_descriptions(es, seed=1)
    q = es.queries()
    for text, c, d, k in zip(texts, q["c"], q["d"], q["edit"]):
        attribute = EDITS[k][0]
        if attribute in ("color", "shape"):
            assert es.records.row(c)[attribute] in text and es.records.row(d)[attribute] in text
