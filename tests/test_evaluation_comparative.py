"""Comparative prompting: the paper's formula and its scaled variants on hand-built vectors, the fast sweep,
the data loaders."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from pcclip.embeddings import normalize
from pcclip.evaluation.comparative import (Comparative, alpha_grid, alpha_sweep, comparative_classifier,
                                           comparative_classes, comparative_sweep, comparative_targets,
                                           comparative_variants, compare_models, compare_variants,
                                           difference_scale, select_alpha, select_alpha_scale)
from pcclip.evaluation.prompts import load_comparatives, load_descriptions, load_templates, parse_comparatives
from pcclip.evaluation.zeroshot import classification_metrics, predict, zero_shot_classifier
from pcclip.world import SHAPES

A = 1 / math.sqrt(2)
T2 = torch.eye(2)


def test_formula_on_hand_built_vectors():
    comp = torch.tensor([[A, -A]])  # "class 0 differs from class 1 like [1,-1]"
    w = comparative_classifier(T2, comp, [Comparative(0, 1, "c")], alpha=0.5)
    # m_1 = t_0 - c = [1-a, a]; 0.5 t_1 + 0.5 m_1 = [(1-a)/2, (1+a)/2], whose norm is sqrt(3)/2
    assert w[1].tolist() == pytest.approx([(1 - A) / math.sqrt(3), (1 + A) / math.sqrt(3)], abs=1e-6)
    assert w[0].tolist() == pytest.approx([1.0, 0.0])  # no comparative: keeps t_0 at every alpha


def test_comparatives_of_one_class_are_averaged():
    comps = [Comparative(0, 2, "a"), Comparative(1, 2, "b")]
    emb = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    m = comparative_targets(torch.eye(3), emb, comps)
    # (t_0 - a + t_1 - b) / 2 = ([0,0,1] + [0,0,0]) / 2
    assert m[2].tolist() == pytest.approx([0.0, 0.0, 0.5])
    assert m[:2].tolist() == torch.eye(3)[:2].tolist()
    assert comparative_classes(comps).tolist() == [0, 1, 2]


def test_invalid_comparatives_and_alphas_raise():
    with pytest.raises(ValueError, match="two different classes"):
        comparative_targets(T2, torch.ones(1, 2), [Comparative(1, 1, "x")])
    with pytest.raises(ValueError, match="two different classes"):
        comparative_targets(T2, torch.ones(1, 2), [Comparative(0, 5, "x")])
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        comparative_classifier(T2, torch.tensor([[A, -A]]), [Comparative(0, 1, "c")], alpha=1.5)
    # text == t_0 makes m_1 = 0: at alpha 0 class 1 has no vector left
    with pytest.raises(ValueError, match="zero vector for class"):
        comparative_classifier(T2, torch.tensor([[1.0, 0.0]]), [Comparative(0, 1, "c")], alpha=0.0)
    with pytest.raises(ValueError, match="fewer than 2 classes"):
        alpha_sweep(torch.eye(2), np.array([0, 1]), T2, torch.zeros(0, 2), [], [1.0])


def test_subset_accuracy_classifies_among_comparative_classes_only():
    images = torch.tensor([[1.0, 0.0, 0.0], [0.1, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    labels = np.array([0, 0, 1, 2])
    row = alpha_sweep(images, labels, torch.eye(3), torch.tensor([[A, -A, 0.0]]), [Comparative(0, 1, "c")],
                      [1.0]).iloc[0]
    assert row.acc1 == 0.75  # image 1 goes to class 2 among all classes
    assert row.subset_acc1 == 1.0  # among {0, 1} it is class 0; the class-2 image is left out
    assert row.worst_class == 0.5 and row.subset_worst_class == 1.0


def test_fast_sweep_matches_building_each_classifier():
    gen = torch.Generator().manual_seed(0)
    images, class_emb = torch.randn(200, 8, generator=gen), normalize(torch.randn(5, 8, generator=gen))
    comps = [Comparative(0, 1, "a"), Comparative(2, 1, "b"), Comparative(3, 4, "c")]
    comp_emb = normalize(torch.randn(3, 8, generator=gen))
    labels = np.random.default_rng(0).integers(0, 5, 200)
    alphas = alpha_grid(11)
    curve = alpha_sweep(images, labels, class_emb, comp_emb, comps, alphas)
    for alpha, acc in zip(curve.alpha, curve.acc1):
        w = comparative_classifier(class_emb, comp_emb, comps, alpha)
        assert acc == pytest.approx((predict(images, w)[:, 0].numpy() == labels).mean())
    one_at_a_time = alpha_sweep(images, labels, class_emb, comp_emb, comps, alphas, chunk=1)
    assert one_at_a_time.equals(curve)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        alpha_sweep(images, labels, class_emb, comp_emb, comps, [0.5, -0.1])


def test_alpha_one_is_zero_shot(tiny_bundle):
    classes, templates = list(SHAPES), ["a {}", "a photo of a {}"]
    comps = [Comparative(1, 0, "the first image shows a ring, while the second shows a circle"),
             Comparative(6, 5, "the first image shows a star, while the second shows a cross")]
    gen = torch.Generator().manual_seed(1)
    images, labels = torch.randn(300, 128, generator=gen), np.random.default_rng(1).integers(0, 8, 300)
    zs = zero_shot_classifier(tiny_bundle, classes, templates)
    comp_emb = normalize(tiny_bundle.encode_text([c.text for c in comps]))
    torch.testing.assert_close(comparative_classifier(zs, comp_emb, comps, 1.0), zs)
    row = comparative_sweep(tiny_bundle, images, labels, classes, templates, comps, [1.0]).iloc[0]
    metrics = classification_metrics(images, labels, zs, classes)
    assert row.acc1 == metrics["acc1"] and row.worst_class == metrics["worst_class"]
    summary, curves, confusions = compare_models({"m": tiny_bundle}, images, labels, classes, templates, comps,
                                                 [0.0, 0.5], alpha=1.0)
    assert summary.loc[0, "gain_acc1"] == 0.0 and sorted(curves.alpha) == [0.0, 0.5, 1.0]
    assert (confusions["m"][0] == confusions["m"][1]).all()


def test_compare_models_reports_the_chosen_alpha(tiny_bundle):
    classes, comps = list(SHAPES), [Comparative(7, 0, "The first image shows a hexagon, while the second shows a circle.")]
    gen = torch.Generator().manual_seed(2)
    images, labels = torch.randn(100, 128, generator=gen), np.random.default_rng(2).integers(0, 8, 100)
    summary, curves, _ = compare_models({"m": tiny_bundle}, images, labels, classes, ["a {}"], comps,
                                        alpha_grid(11), alpha=0.8)
    at = curves.set_index("alpha")
    assert 0.8 in at.index and summary.loc[0, "comparative_acc1"] == at.loc[0.8, "acc1"]
    assert summary.loc[0, "zero_shot_subset_acc1"] == at.loc[1.0, "subset_acc1"]


def test_a_sweep_without_comparative_images_scores_all_classes_only():
    class_emb, comp_emb = normalize(torch.randn(5, 8)), normalize(torch.randn(1, 8))
    comps, images, labels = [Comparative(3, 4, "x")], torch.randn(4, 8), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"none of the 4 images belongs to a comparative class \[3, 4\]"):
        alpha_sweep(images, labels, class_emb, comp_emb, comps, [0.5, 1.0])
    curve = alpha_sweep(images, labels, class_emb, comp_emb, comps, [0.5, 1.0], subset=False)
    assert list(curve.columns) == ["alpha", "acc1", "mean_per_class", "worst_class"]
    full = alpha_sweep(images, np.array([0, 1, 3, 4]), class_emb, comp_emb, comps, [0.5, 1.0])
    assert full.columns.tolist()[:4] == curve.columns.tolist() and "subset_acc1" in full


def test_select_alpha_takes_the_best_and_breaks_ties_towards_zero_shot():
    curve = pd.DataFrame({"alpha": [0.0, 0.5, 0.8, 1.0], "acc1": [0.2, 0.7, 0.7, 0.6]})
    assert select_alpha(curve) == 0.8
    assert select_alpha(curve.assign(acc1=0.5)) == 1.0  # a flat curve keeps zero-shot
    assert select_alpha(curve.assign(subset_acc1=[0.9, 0.1, 0.1, 0.1]), "subset_acc1") == 0.0
    with pytest.raises(ValueError, match="sweep is empty"):
        select_alpha(curve.iloc[:0])


def _shape_comparatives_and_splits(seed: int) -> tuple[list[str], list[Comparative], torch.Tensor, np.ndarray,
                                                       torch.Tensor, np.ndarray]:
    """SHAPES with two comparatives, random test (120) and val (80) embeddings and labels."""
    comps = [Comparative(7, 0, "The first image shows a hexagon, while the second shows a circle."),
             Comparative(6, 5, "The first image shows a star, while the second shows a cross.")]
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    test, test_labels = torch.randn(120, 128, generator=gen), rng.integers(0, 8, 120)
    return list(SHAPES), comps, test, test_labels, torch.randn(80, 128, generator=gen), rng.integers(0, 8, 80)


def test_tuned_alpha_is_chosen_on_val_and_scored_on_test(tiny_bundle):
    classes, comps, test, test_labels, val, val_labels = _shape_comparatives_and_splits(3)
    grid = alpha_grid(11)
    args = ({"m": tiny_bundle}, test, test_labels, classes, ["a {}"], comps, grid)
    plain, curves, _ = compare_models(*args, alpha=0.8)
    assert not [c for c in plain.columns if c.startswith("tuned")]
    summary, same_curves, _ = compare_models(*args, alpha=0.8, val=(val, val_labels))
    assert same_curves.equals(curves)  # val only picks alpha; the test curve is untouched
    row, at = summary.iloc[0], curves.set_index("alpha")
    on_val = comparative_sweep(tiny_bundle, val, val_labels, classes, ["a {}"], comps, grid)
    assert row.tuned_alpha == select_alpha(on_val)
    assert row.tuned_acc1 == at.loc[row.tuned_alpha, "acc1"]
    assert row.tuned_gain_acc1 == row.tuned_acc1 - at.loc[1.0, "acc1"]
    assert row.tuned_gain_subset_acc1 == at.loc[row.tuned_alpha, "subset_acc1"] - at.loc[1.0, "subset_acc1"]
    # validating on the test images themselves picks the test curve's best alpha
    on_test, _, _ = compare_models(*args, alpha=0.8, val=(test, test_labels))
    assert on_test.loc[0, "tuned_alpha"] == select_alpha(curves) and on_test.loc[0, "tuned_acc1"] == curves.acc1.max()


def test_alpha_grid_hits_round_values():
    grid = alpha_grid(11, extra=(0.85,))
    assert len(grid) == 12 and 0.8 in grid and grid[0] == 0.0 and grid[-1] == 1.0


def test_names_resolve_or_fail_loudly():
    names = ["annual crop", "sea lake", "forest"]
    assert parse_comparatives([{"first": "Sea_Lake", "second": "forest", "text": "t"}], names, "f.json") == [
        Comparative(1, 2, "t")]
    with pytest.raises(ValueError, match=r"f.json 'comparatives': 2 name\(s\) not found: 'forrest' \(closest: "
                                         r"\['forest'\]\); 'lake'"):
        parse_comparatives([{"first": "forrest", "second": "lake", "text": "t"}], names, "f.json")
    raw = [{"first": "forest", "second": "annual crop", "text": "more trees"}]
    assert parse_comparatives(raw, names, "f.json") == [Comparative(2, 0, "more trees")]
    with pytest.raises(ValueError, match="with itself"):
        parse_comparatives([{"first": "forest", "second": "Forest", "text": "x"}], names, "f.json")
    with pytest.raises(ValueError, match="entry 0 must be"):
        parse_comparatives([{"first": "forest", "second": "sea lake"}], names, "f.json")
    with pytest.raises(ValueError, match="is empty"):
        parse_comparatives([], names, "f.json")


def test_shipped_diffworld_prompts_resolve():
    classes = list(SHAPES)
    comps = load_comparatives("diffworld", classes)
    assert comps and all(c.first != c.second for c in comps)
    assert len(comparative_classes(comps)) < len(classes)  # a subset: the confusable shapes only
    assert all(t.count("{}") == 1 for t in load_templates("diffworld"))
    assert set(load_descriptions("diffworld", classes)) == set(classes)


# Three unit class vectors at distance D = 2 sin(B / 2) from class 0 (B = 0.4 rad): class 1's text vector
# t_1 is wrong (out of the plane), its images lie in the x-y plane at angle B from t_0, and the comparative
# "class 0 differs from class 1" is the exact direction from class 1's images to class 0's (the oracle).
B = 0.4
D = 2 * math.sin(B / 2)
TRIO = torch.tensor([[1.0, 0.0, 0.0], [math.cos(B), 0.0, math.sin(B)], [math.cos(B), 0.0, -math.sin(B)]])
TOWARD_1 = [Comparative(0, 1, "class 0 differs from class 1")]


def _in_plane(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle), 0.0]


ORACLE = normalize(torch.tensor([[1.0, 0.0, 0.0]]) - torch.tensor([_in_plane(B)]))


def test_difference_scale_is_the_median_pairwise_distance():
    vectors = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])  # distances 5, 1, sqrt(18)
    assert difference_scale(vectors) == pytest.approx(math.sqrt(18))
    assert difference_scale(TRIO) == pytest.approx(D)  # distances D, D and 2 sin B
    with pytest.raises(ValueError, match="at least 2 class vectors"):
        difference_scale(torch.ones(1, 3))
    with pytest.raises(ValueError, match="coincide"):
        difference_scale(torch.ones(3, 3))
    with pytest.raises(ValueError, match="positive number, got 0.0"):
        comparative_targets(TRIO, ORACLE, TOWARD_1, scale=0.0)


def test_scaled_variant_lands_on_the_oracle_where_the_paper_overshoots():
    images, labels = torch.tensor([_in_plane(0.0), _in_plane(B), TRIO[2].tolist()]), np.array([0, 1, 2])
    scaled = comparative_classifier(TRIO, ORACLE, TOWARD_1, alpha=0.0, scale=difference_scale(TRIO))
    assert scaled[1].tolist() == pytest.approx(_in_plane(B), abs=1e-6)  # t_0 - D * oracle = class 1's images
    paper = comparative_classifier(TRIO, ORACLE, TOWARD_1, alpha=0.0)
    assert float(paper[1] @ images[1]) < float(TRIO[0] @ images[1])  # overshot: class 0 is nearer
    assert predict(images, paper)[:, 0].tolist() == [0, 0, 2]
    assert predict(images, scaled)[:, 0].tolist() == [0, 1, 2]
    rows = comparative_variants(images, labels, TRIO, ORACLE, TOWARD_1, [0.0, 1.0], alpha=0.0).set_index("variant")
    assert rows.index.tolist() == ["paper", "scaled"]  # no val split: no val-chosen variants
    assert rows.loc["paper", ["acc1", "scale"]].tolist() == pytest.approx([2 / 3, 1.0])
    assert rows.loc["scaled", ["acc1", "scale", "gain_acc1", "worst_class"]].tolist() == pytest.approx(
        [1.0, D, 1 / 3, 1.0])  # zero-shot misses class 1 as well


def _split(angles: list[tuple[int, float]]) -> tuple[torch.Tensor, np.ndarray]:
    return (torch.tensor([_in_plane(a) for _, a in angles] + [TRIO[2].tolist()]),
            np.array([label for label, _ in angles] + [2]))


def test_val_scaled_chooses_on_val_only():
    # test: a class-0 image at 0.25 rad needs class 1's vector pushed far (scale 2D is best);
    # val: a class-1 image at 0.3 rad needs it near (scales D/2 and D tie; the tie goes to D, factor 1)
    test, test_labels = _split([(0, 0.25), (1, B)])
    val, val_labels = _split([(0, 0.0), (1, 0.3), (1, B)])
    alphas, factors = [0.0, 1.0], (0.5, 1.0, 2.0)
    assert select_alpha_scale(val, val_labels, TRIO, ORACLE, TOWARD_1, alphas, factors) == (0.0, pytest.approx(D))
    assert select_alpha_scale(test, test_labels, TRIO, ORACLE, TOWARD_1, alphas, factors) == (
        0.0, pytest.approx(2 * D))
    rows = comparative_variants(test, test_labels, TRIO, ORACLE, TOWARD_1, alphas, alpha=1.0, val=(val, val_labels))
    chosen = rows.set_index("variant").loc["val_scaled"]
    assert chosen.scale == pytest.approx(D) and chosen.alpha == 0.0
    at = alpha_sweep(test, test_labels, TRIO, ORACLE, TOWARD_1, [0.0, 1.0], scale=D).set_index("alpha")
    assert chosen.acc1 == at.loc[0.0, "acc1"] == pytest.approx(2 / 3)  # scored on test, below test's best (1.0)
    assert chosen.gain_acc1 == at.loc[0.0, "acc1"] - at.loc[1.0, "acc1"]
    with pytest.raises(ValueError, match="positive numbers, got \\[0.0\\]"):
        select_alpha_scale(val, val_labels, TRIO, ORACLE, TOWARD_1, alphas, (0.0,))


def test_variant_rows_carry_their_identity_beside_the_paper_columns(tiny_bundle):
    classes, comps, test, test_labels, *val = _shape_comparatives_and_splits(4)
    args = ({"m": tiny_bundle}, test, test_labels, classes, ["a {}"], comps, alpha_grid(11))
    summary = compare_models(*args, alpha=0.8, val=tuple(val))[0].iloc[0]
    rows = compare_variants(*args, alpha=0.8, val=tuple(val)).set_index("variant")
    assert rows.index.tolist() == ["paper", "scaled", "paper_tuned", "val_scaled"] and set(rows.model) == {"m"}
    assert rows.loc["paper", ["acc1", "gain_acc1", "worst_class", "gain_subset_acc1"]].tolist() == [
        summary.comparative_acc1, summary.gain_acc1, summary.comparative_worst_class, summary.gain_subset_acc1]
    assert rows.loc["paper_tuned", ["alpha", "acc1"]].tolist() == [summary.tuned_alpha, summary.tuned_acc1]
    assert rows.loc["scaled", "scale"] == pytest.approx(difference_scale(zero_shot_classifier(tiny_bundle, classes,
                                                                                              ["a {}"])))
