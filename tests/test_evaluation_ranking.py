"""Attribute ranking: projections and rank correlations against hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pcclip.evaluation.ranking import (RankingTask, projections, rank_correlations, ranking_table, scatter_inputs,
                                      text_direction)
from pcclip.evaluation.tables import ranking_rows


def test_perfect_and_reversed_orders():
    assert rank_correlations([1, 2, 3, 4], [10, 20, 30, 40]) == {"kendall_tau": 1.0, "spearman_rho": 1.0}
    out = rank_correlations([4, 3, 2, 1], [10, 20, 30, 40])
    assert out["kendall_tau"] == pytest.approx(-1.0) and out["spearman_rho"] == pytest.approx(-1.0)


def test_ties_use_tau_b_and_average_ranks():
    # pairs: (0,1) tied in scores, (0,2) and (1,2) concordant -> tau_b = 2 / sqrt(2 * 3)
    out = rank_correlations([1, 1, 2], [1, 2, 3])
    assert out["kendall_tau"] == pytest.approx(2 / math.sqrt(6))
    # ranks [1.5, 1.5, 3] vs [1, 2, 3]: cov 1.5, var 1.5 and 2 -> 1.5 / sqrt(3)
    assert out["spearman_rho"] == pytest.approx(1.5 / math.sqrt(3))


def test_degenerate_rankings():
    assert rank_correlations([5, 5, 5], [1, 2, 3]) == {"kendall_tau": 0.0, "spearman_rho": 0.0}
    with pytest.raises(ValueError, match="constant"):
        rank_correlations([1, 2, 3], [7, 7, 7])
    with pytest.raises(ValueError, match="at least 2"):
        rank_correlations([1], [1])
    with pytest.raises(ValueError, match="NaN"):
        rank_correlations([1, float("nan")], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        rank_correlations([1, 2], [1, 2, 3])


def test_projection_is_the_cosine_with_the_direction():
    proj = projections(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), torch.tensor([2.0, 0.0]))
    assert proj.tolist() == pytest.approx([1.0, 0.0, math.sqrt(0.5)])
    with pytest.raises(ValueError, match="NaN"):
        projections(torch.tensor([[float("nan"), 0.0]]), torch.tensor([1.0, 0.0]))


def test_text_direction_subtracts_the_reversed_phrasings(text_tower):
    bundle = text_tower({"more": [2, 0], "more too": [1, 0], "less": [0, 3]})
    d = text_direction(bundle, ["more", "more too"], ["less"])
    assert d.tolist() == pytest.approx([math.sqrt(0.5), -math.sqrt(0.5)])
    with pytest.raises(ValueError, match="zero"):
        text_direction(bundle, ["more"], ["more too"])


def test_ranking_table_recovers_a_planted_order(text_tower):
    truth = np.array([0.1, 0.5, 0.9, 0.3])
    angles = truth * np.pi / 2  # embedding rotates from [1,0] to [0,1] as the attribute grows
    images = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1), dtype=torch.float32)
    good = text_tower({"more": [0, 1], "less": [1, 0]})
    task = RankingTask("diffworld", "test", "size", images, truth, ["more"], ["less"])
    table, projected = ranking_table({"good": good}, [task])
    assert table.loc[0, "kendall_tau"] == pytest.approx(1.0)
    assert table.loc[0, "spearman_rho"] == pytest.approx(1.0)
    assert projected[("diffworld size", "good")].shape == (4,)


def test_ranking_rows_carry_dataset_split_and_attribute_and_match_hand_computed_tau(text_tower):
    # projections on the direction [1, 0] are the first coordinates: [0.2, 0.9, 0.5, 0.1] against truth 1..4.
    # Pairs (0,1) and (0,2) agree, the other four disagree: tau = (2 - 4) / 6; rank differences [1, 2, 0, -3]
    # give rho = 1 - 6 * 14 / (4 * 15)
    first = np.array([0.2, 0.9, 0.5, 0.1])
    images = torch.tensor(np.stack([first, np.sqrt(1 - first ** 2)], 1), dtype=torch.float32)
    tower = text_tower({"bigger": [1, 0], "smaller": [-1, 0], "redder": [0, 1], "bluer": [0, -1]})
    tasks = [RankingTask("awa2", "all", "size", images, np.array([1.0, 2, 3, 4]), ["bigger"], ["smaller"],
                         items=("a", "b", "c", "d")),
             RankingTask("awa2", "all", "colour", images, np.array([4.0, 3, 2, 1]), ["redder"], ["bluer"])]
    table, projected = ranking_table({"base": tower}, tasks)
    assert tower.calls == [["bigger", "smaller", "redder", "bluer"]]  # one encoding call per model
    size = table.iloc[0]
    assert (size.dataset, size.split, size.attribute, size.model) == ("awa2", "all", "size", "base")
    assert size.kendall_tau == pytest.approx(-1 / 3) and size.spearman_rho == pytest.approx(-0.4)
    assert projected[("awa2 size", "base")] == pytest.approx(first)
    truth, taus = scatter_inputs(tasks, table)
    assert list(truth) == ["awa2 size", "awa2 colour"] and truth["awa2 size"].tolist() == [1, 2, 3, 4]
    assert taus[("awa2 size", "base")] == pytest.approx(-1 / 3)
    assert set(taus) == set(projected)
    rows = ranking_rows(table)  # the recorded rows keep the identity of the table's rows
    tau = rows[(rows.metric == "kendall_tau") & (rows.attribute == "size")].iloc[0]
    assert (tau.task, tau.dataset, tau.split, tau.model, tau.value) == ("ranking", "awa2", "all", "base",
                                                                         pytest.approx(-1 / 3))


def test_no_tasks_give_an_empty_table_and_bad_tasks_fail():
    table, projected = ranking_table({"base": None}, [])
    assert table.empty and list(table.columns)[:3] == ["dataset", "split", "attribute"] and projected == {}
    with pytest.raises(ValueError, match="one value per item"):
        RankingTask("awa2", "all", "size", torch.zeros(3, 2), np.zeros(2), ["bigger"], ["smaller"])
    with pytest.raises(ValueError, match="no positive texts"):
        RankingTask("awa2", "all", "size", torch.zeros(3, 2), np.zeros(3), [], ["smaller"])
