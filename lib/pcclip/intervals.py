"""Mean and 95% t-interval of a metric over finetune seeds.

Each finetune seed is one draw of the training run (data order, nothing else); the interval is Student's t
over the seeds, mean +- t(0.975, n-1) * sd / sqrt(n) with the sample standard deviation (ddof 1). One seed
gives no interval (NaN, shown blank), never a zero-width one.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """(lo, hi) of the t-interval of the mean of `values`; (nan, nan) for fewer than two values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


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
