"""Mean and 95% t-interval over finetune seeds, checked against hand-computed values with quantiles from printed t tables."""
from __future__ import annotations

import math

import pandas as pd
import pytest

import numpy as np

from pcclip.intervals import over_seeds, predicting, t_interval

# t(0.975, df) from printed tables: df 1, 2, 4, 9
T975 = {1: 12.7062, 2: 4.3027, 4: 2.7764, 9: 2.2622}


@pytest.mark.parametrize("values", [[0.9, 0.95, 1.0], [0.2, 0.4], [1.0, 2.0, 4.0, 8.0, 16.0],
                                    [0.5 + 0.01 * k for k in range(10)]])
def test_t_interval_is_mean_plus_minus_t_times_standard_error(values):
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    assert t_interval(values) == pytest.approx((mean - half, mean + half), rel=1e-4)


def test_three_seeds_use_4_303():
    lo, hi = t_interval([0.9, 0.95, 1.0])  # sd 0.05
    assert (lo, hi) == pytest.approx((0.95 - 4.3027 * 0.05 / math.sqrt(3), 0.95 + 4.3027 * 0.05 / math.sqrt(3)),
                                     abs=1e-5)
    assert hi - lo == pytest.approx(0.2484, abs=1e-4)


def test_prediction_widens_by_sqrt_of_one_plus_n_over_m():
    lo, hi = t_interval([0.9, 0.95, 1.0])  # half-width 0.1242
    assert predicting(lo, hi, 3, 1) == pytest.approx((0.95 - 2 * 0.1242, 0.95 + 2 * 0.1242), abs=1e-4)
    assert predicting(lo, hi, 3, 3) == pytest.approx((0.95 - math.sqrt(2) * 0.1242, 0.95 + math.sqrt(2) * 0.1242),
                                                     abs=1e-4)
    assert predicting(0.5, 0.5, 3, 1) == (0.5, 0.5)


@pytest.mark.parametrize("m, of_the_mean", [(1, 0.836), (3, 0.907)])
def test_a_new_mean_of_m_draws_lands_in_the_prediction_interval_95_percent_of_the_time(m, of_the_mean):
    """Simulated: the interval of a mean over 3 normal draws, and a new mean over m draws alike. The interval of
    the mean holds it only 2 P(|t_2| < 4.303 / sqrt(1 + 3/m)) - 1 of the time (0.836 for m = 1, 0.907 for 3)."""
    rng = np.random.default_rng(0)
    trials = 40_000
    old, new = rng.normal(size=(trials, 3)), rng.normal(size=(trials, m)).mean(axis=1)
    half = 4.3027 * old.std(axis=1, ddof=1) / math.sqrt(3)
    lo, hi = old.mean(axis=1) - half, old.mean(axis=1) + half
    plo, phi = predicting(lo, hi, 3, m)
    assert ((new >= plo) & (new <= phi)).mean() == pytest.approx(0.95, abs=0.005)
    assert ((new >= lo) & (new <= hi)).mean() == pytest.approx(of_the_mean, abs=0.005)


def test_one_seed_has_no_interval_and_equal_seeds_a_zero_one():
    assert all(math.isnan(v) for v in t_interval([0.7]))
    assert all(math.isnan(v) for v in t_interval([]))
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_over_seeds_groups_by_identity_in_first_seen_order():
    rows = pd.DataFrame([
        {"model": "pcclip", "attribute": "size", "seed": 0, "value": 0.9},
        {"model": "base", "attribute": "size", "seed": 0, "value": 0.5},
        {"model": "pcclip", "attribute": "size", "seed": 1, "value": 1.0},
        {"model": "base", "attribute": "size", "seed": 1, "value": 0.5},
        {"model": "pcclip", "attribute": "x", "seed": 0, "value": 0.7},
    ])
    out = over_seeds(rows, ["model", "attribute"])
    assert out[["model", "attribute"]].values.tolist() == [["pcclip", "size"], ["base", "size"], ["pcclip", "x"]]
    assert out["mean"].tolist() == pytest.approx([0.95, 0.5, 0.7])
    assert out.n_seeds.tolist() == [2, 2, 1]
    assert out.lo[0] == pytest.approx(0.95 - 12.7062 * 0.05, abs=1e-4) and math.isnan(out.lo[2])
    with pytest.raises(ValueError, match=r"repeat a \(group, seed\); group by more fields than \['model'\]"):
        over_seeds(rows, ["model"])
