"""Result tables for notebooks (pivots, flat metrics) and the evaluation figures built from them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pcclip.evaluation.tables import flatten, mean_se_pivot
from pcclip.plots.evaluation import alpha_curves, confusion_before_after, difference_bars, projection_scatter

TABLE = pd.DataFrame({"attribute": ["size", "size", "x", "x"], "model": ["base", "pcclip", "base", "pcclip"],
                      "accuracy": [0.5, 0.9, 0.45, 0.8], "accuracy_se": [0.01, 0.02, float("nan"), 0.0]})


def test_mean_se_pivot_keeps_order_and_omits_missing_errors():
    pivot = mean_se_pivot(TABLE, "attribute", "model", "accuracy")
    assert list(pivot.index) == ["size", "x"] and list(pivot.columns) == ["base", "pcclip"]
    assert pivot.loc["size", "pcclip"] == "0.900 ± 0.020"
    assert pivot.loc["x", "base"] == "0.450"  # one seed: no standard error


def test_flatten_names_every_value():
    flat = flatten(TABLE, ["attribute", "model"], ["accuracy"], "difference")
    assert flat == {"difference/size/base/accuracy": 0.5, "difference/size/pcclip/accuracy": 0.9,
                    "difference/x/base/accuracy": 0.45, "difference/x/pcclip/accuracy": 0.8}
    with pytest.raises(KeyError, match="two_way"):
        flatten(TABLE, ["model"], ["two_way"], "difference")


def test_figures_draw_what_they_are_given():
    fig = difference_bars(TABLE, "accuracy", "t")
    heights = sorted(round(p.get_height(), 3) for p in fig.axes[0].patches)
    assert heights == [0.45, 0.5, 0.8, 0.9]
    truth = np.linspace(0, 1, 50)
    fig = projection_scatter({("size", "base"): truth * 0, ("size", "pcclip"): truth, ("x", "base"): truth,
                              ("x", "pcclip"): -truth}, {"size": truth, "x": truth}, {("size", "pcclip"): 1.0})
    assert [ax.get_title() for ax in fig.axes] == ["base", "pcclip, tau 1.00", "base", "pcclip"]
    assert fig.axes[3].collections[0].get_offsets()[:, 1].tolist() == pytest.approx(
        (-truth[np.random.default_rng(0).permutation(50)]).tolist())
    curves = pd.DataFrame({"model": ["m"] * 3, "alpha": [0.0, 0.5, 1.0], "acc1": [0.2, 0.3, 0.25],
                           "subset_acc1": [0.4, 0.5, 0.45]})
    fig = alpha_curves(curves, 0.8)
    assert fig.axes[1].lines[0].get_ydata().tolist() == [0.4, 0.5, 0.45]
    fig = confusion_before_after(np.array([[3, 1], [0, 4]]), np.array([[4, 0], [0, 4]]), ["a", "b"])
    change = fig.axes[2].images[0].get_array()
    assert np.allclose(change, [[0.25, -0.25], [0.0, 0.0]])
