"""Mean and 95% t-interval of a metric over finetune seeds.

Each finetune seed is one draw of the training run (data order, nothing else); the interval is Student's t
over the seeds, mean +- t(0.975, n-1) * sd / sqrt(n) with the sample standard deviation (ddof 1). One seed
gives no interval (NaN, shown blank), never a zero-width one. `predicting` widens such an interval to where a
rerun's own mean should land.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

LEVEL = 0.95


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """(lo, hi) of the t-interval of the mean of `values`; (nan, nan) for fewer than two values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def predicting(lo: ArrayLike, hi: ArrayLike, n: ArrayLike, m: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The t-interval (lo, hi) of a mean over n draws widened to the 95% prediction interval of the mean of m new
    draws of the same kind (a rerun's mean over m seeds; m = 1 for one new base model). Why: the interval of the
    mean is not meant to hold a new run, even one drawn alike; the two means differ with variance
    s^2 (1/n + 1/m) where the interval used s^2 / n, so its half-width grows by sqrt(1 + n/m) (same t quantile,
    n - 1 degrees of freedom). Element-wise over arrays; a zero-width interval stays zero-width."""
    lo, hi, n, m = (np.asarray(v, dtype=float) for v in (lo, hi, n, m))
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * np.sqrt(1 + n / m)
    return centre - half, centre + half


def over_seeds(rows: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """One row per group of `by` (every identity but the seed): mean, lo, hi (95% t-interval) and n_seeds of
    `value` over the group's rows, one per seed; groups keep their first-seen order."""
    def one(group: pd.DataFrame) -> pd.Series:
        lo, hi = t_interval(group["value"].to_numpy())
        return pd.Series({"mean": group["value"].mean(), "lo": lo, "hi": hi, "n_seeds": group["seed"].nunique()})

    repeated = rows.duplicated([*by, "seed"])
    if repeated.any():
        raise ValueError(f"over_seeds: {int(repeated.sum())} rows repeat a (group, seed); group by more fields "
                         f"than {list(by)}")
    if rows.empty:
        return pd.DataFrame(columns=[*by, "mean", "lo", "hi", "n_seeds"])
    out = rows.groupby(list(by), sort=False, dropna=False)[["value", "seed"]].apply(one).reset_index()
    return out.astype({"n_seeds": int})
