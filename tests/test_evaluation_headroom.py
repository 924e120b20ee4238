"""Headroom references for comparative prompting: class means, oracle comparatives, the linear probe."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pcclip.evaluation.comparative import Comparative, compare_models
from pcclip.evaluation.headroom import (class_means, headroom_table, linear_probe, oracle_comparatives)
from pcclip.world import SHAPES


def _arc(degrees: np.ndarray) -> torch.Tensor:
    rad = np.deg2rad(degrees)
    return torch.tensor(np.stack([np.cos(rad), np.sin(rad)], 1), dtype=torch.float32)


def test_class_means_and_oracle_direction():
    emb = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, 1.0], [1.0, 1.0]])  # rows are normalised first
    labels = np.array([0, 1, 1, 0])
    means = class_means(emb, labels, 2)
    expected = torch.tensor([[(1 + 1 / math.sqrt(2)) / 2, (1 / math.sqrt(2)) / 2], [0.0, 1.0]])
    torch.testing.assert_close(means, expected)
    oracle = oracle_comparatives(emb, labels, 2, [Comparative(0, 1, "a"), Comparative(1, 0, "b")])
    diff = means[0] - means[1]
    assert oracle[0].tolist() == pytest.approx((diff / diff.norm()).tolist())
    assert oracle[1].tolist() == pytest.approx((-diff / diff.norm()).tolist())
    with pytest.raises(ValueError, match=r"classes \[2\] have no labelled images"):
        class_means(emb, labels, 3)


def test_linear_probe_beats_class_means_on_an_uneven_arc():
    # class 0 spreads over 0-80 degrees, class 1 sits at 85-95: nearest-mean puts the boundary
    # near 65 degrees and misses class 0's far end; a linear boundary with a bias separates them
    rng = np.random.default_rng(0)
    degrees = np.concatenate([rng.uniform(0, 80, 200), rng.uniform(85, 95, 200)])
    labels = np.repeat([0, 1], 200)
    emb = _arc(degrees)
    means = class_means(emb, labels, 2)
    mean_acc = float(((emb @ means.T).argmax(1).numpy() == labels).mean())
    weights, bias = linear_probe(emb, labels, 2, l2=1e-6, iters=500)
    probe_acc = float(((emb @ weights.T + bias).argmax(1).numpy() == labels).mean())
    assert mean_acc < 0.95 and probe_acc > 0.99
    again = linear_probe(emb, labels, 2, l2=1e-6, iters=500)
    assert torch.equal(again[0], weights) and torch.equal(again[1], bias)  # deterministic


def test_linear_probe_returns_weights_at_the_logit_scale_of_its_fit():
    # fitting scale * x @ w.T + b with l2 * |w|^2 is fitting x @ v.T + b with v = scale * w and l2 / scale^2
    # on v: the returned weights are v, so both fits give the same classifier, and its logits on the
    # normalised embeddings are those the fit optimised (a probe returning w would be 10x too flat)
    rng = np.random.default_rng(1)
    emb = torch.tensor(rng.normal(size=(120, 3)), dtype=torch.float32)
    labels = (emb[:, 0] + 0.5 * emb[:, 1] > 0).long().numpy() + (emb[:, 2] > 0.8).long().numpy()
    w10, b10 = linear_probe(emb, labels, 3, l2=1e-2, scale=10.0, iters=500)
    w1, b1 = linear_probe(emb, labels, 3, l2=1e-4, scale=1.0, iters=500)
    torch.testing.assert_close(w10, w1, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(b10, b1, atol=2e-3, rtol=2e-3)
    assert float(w10.norm()) > 3.0  # unit-scale class vectors times the scale, not raw unit-scale ones


def test_headroom_table_matches_the_comparative_summary(tiny_bundle):
    rng = np.random.default_rng(1)
    classes = list(SHAPES)
    fit_labels, labels = rng.integers(0, len(classes), 200), rng.integers(0, len(classes), 60)
    fit_emb, image_emb = torch.randn(200, 128), torch.randn(60, 128)
    comps = [Comparative(0, 1, "the first shape is a circle, the second a square"),
             Comparative(1, 0, "the first shape is a square, the second a circle")]
    table = headroom_table({"base": tiny_bundle}, fit_emb, fit_labels, image_emb, labels, classes,
                           ["a photo of a {}"], comps, alpha=0.7)
    assert table[["model", "classifier"]].values.tolist() == [
        ["base", "zero_shot"], ["base", "comparative"], ["base", "oracle_comparative"],
        ["any", "class_means"], ["any", "linear_probe"]]
    summary, _, _ = compare_models({"base": tiny_bundle}, image_emb, labels, classes, ["a photo of a {}"], comps,
                                   [0.7, 1.0], 0.7)
    row = table.set_index("classifier")
    assert row.loc["zero_shot", "acc1"] == pytest.approx(summary.zero_shot_acc1[0])
    assert row.loc["comparative", "acc1"] == pytest.approx(summary.comparative_acc1[0])
    assert row.loc["comparative", "subset_acc1"] == pytest.approx(summary.comparative_subset_acc1[0])
    assert table.acc1.between(0, 1).all() and table.subset_acc1.between(0, 1).all()
