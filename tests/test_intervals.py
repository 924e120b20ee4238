"""Mean and 95% t-interval over finetune seeds, checked against hand-computed values with quantiles from printed t tables."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from pcclip.intervals import over_seeds, t_interval

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
