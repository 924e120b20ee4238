"""Result tables for notebooks (pivots, flat metrics) and the evaluation figures built from them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pcclip.evaluation.tables import classification_rows, difference_rows, mean_se_pivot
from pcclip.plots.evaluation import alpha_curves, confusion_before_after, difference_bars, projection_scatter

TABLE = pd.DataFrame({"attribute": ["size", "size", "x", "x"], "model": ["base", "pcclip", "base", "pcclip"],
                      "accuracy": [0.5, 0.9, 0.45, 0.8], "accuracy_se": [0.01, 0.02, float("nan"), 0.0]})


def test_mean_se_pivot_keeps_order_and_omits_missing_errors():
    pivot = mean_se_pivot(TABLE, "attribute", "model", "accuracy")
    assert list(pivot.index) == ["size", "x"] and list(pivot.columns) == ["base", "pcclip"]
    assert pivot.loc["size", "pcclip"] == "0.900 ± 0.020"
    assert pivot.loc["x", "base"] == "0.450"  # one seed: no standard error


def test_difference_rows_carry_identity_and_standard_errors():
    diff = TABLE.assign(split="test", phrasing="eval", two_way=0.7, two_way_se=0.0, pairs=40.0)
    rows = difference_rows(diff, {"test": ("diffworld", "test")}).set_index(["attribute", "model", "metric"])
    assert rows.loc[("size", "pcclip", "accuracy"), ["value", "se", "n"]].tolist() == [0.9, 0.02, 40.0]
    assert rows.loc[("x", "base", "two_way"), "value"] == 0.7
    assert set(rows.task) == {"difference"} and set(rows.variant) == {"eval"} and set(rows.dataset) == {"diffworld"}
    with pytest.raises(KeyError, match="two_way"):
        difference_rows(TABLE.assign(split="test"), {"test": ("diffworld", "test")})
    with pytest.raises(KeyError, match="no .dataset, split."):
        difference_rows(diff, {"holdout": ("diffworld", "holdout")})


def test_difference_rows_place_paper_sets_in_their_own_dataset_and_split():
    diff = TABLE.assign(split="cifar100_size", phrasing="ground_truth", two_way=0.7, two_way_se=0.0, pairs=40.0)
    rows = difference_rows(diff, {"cifar100_size": ("cifar100", "test")})
    assert set(rows.dataset) == {"cifar100"} and set(rows.split) == {"test"}
    assert set(rows.variant) == {"ground_truth"}


def test_classification_rows_keep_each_table_apart():
    zero = pd.DataFrame({"dataset": ["d"], "model": ["base"], "acc1": [0.5], "worst_class": [0.1],
                         "worst_class_name": ["cat"]})
    comp = pd.DataFrame({"dataset": ["d"], "model": ["base"], "gain_acc1": [0.02], "alpha": [0.8]})
    ext = pd.DataFrame({"dataset": ["d"], "model": ["base"], "extended_acc1": [0.6], "extended_worst_class": [0.2]})
    head = pd.DataFrame({"dataset": ["d", "d"], "model": ["base", "any"], "classifier": ["oracle", "probe"],
                         "acc1": [0.7, 0.9], "subset_acc1": [0.6, 0.8]})
    variants = pd.DataFrame({"dataset": ["d", "d"], "model": ["base", "base"], "variant": ["paper", "scaled"],
                             "alpha": [0.8, 0.8], "scale": [1.0, 0.3], "gain_acc1": [0.02, 0.05]})
    rows = classification_rows(zero, comp, variants, ext, head, "test")
    by = rows.set_index(["task", "variant", "model", "metric"]).value
    assert by[("zero_shot", "", "base", "acc1")] == 0.5 and by[("comparative", "", "base", "gain_acc1")] == 0.02
    assert by[("comparative", "scaled", "base", "gain_acc1")] == 0.05 and by[("comparative", "scaled", "base",
                                                                              "scale")] == 0.3
    assert "variant" not in set(rows.metric) and not by.index.duplicated().any()
    assert by[("headroom", "probe", "any", "subset_acc1")] == 0.8
    assert "worst_class_name" not in set(rows.metric) and set(rows.split) == {"test"}


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
    fig = alpha_curves(curves, 0.8, title="diffworld_technical")
    assert fig.axes[1].lines[0].get_ydata().tolist() == [0.4, 0.5, 0.45]
    renderer = fig.canvas.get_renderer()
    assert fig._suptitle.get_text() == "diffworld_technical"
    title_bottom = fig._suptitle.get_window_extent(renderer).y0
    assert all(title_bottom >= ax.title.get_window_extent(renderer).y1 for ax in fig.axes)  # no overlap
    fig = confusion_before_after(np.array([[3, 1], [0, 4]]), np.array([[4, 0], [0, 4]]), ["a", "b"])
    change = fig.axes[2].images[0].get_array()
    assert np.allclose(change, [[0.25, -0.25], [0.0, 0.0]])
