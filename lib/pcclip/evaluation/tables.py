"""Long result tables -> what notebooks show (mean ± se pivots) and record (flat metric dicts)."""
from __future__ import annotations

import math

import pandas as pd


def mean_se_pivot(table: pd.DataFrame, index: str, columns: str, value: str) -> pd.DataFrame:
    """`value` as "0.612 ± 0.010" strings, `index` x `columns` in order of first appearance."""
    def cell(row: pd.Series) -> str:
        se = row[f"{value}_se"]
        return f"{row[value]:.3f}" + ("" if math.isnan(se) else f" ± {se:.3f}")

    shown = table.assign(_cell=table.apply(cell, axis=1))
    pivot = shown.pivot(index=index, columns=columns, values="_cell")
    return pivot.reindex(index=list(dict.fromkeys(table[index])), columns=list(dict.fromkeys(table[columns])))


def flatten(table: pd.DataFrame, keys: list[str], values: list[str], prefix: str) -> dict[str, float]:
    """{"prefix/key1/key2/value": number} for every row and value column (for write_metrics)."""
    missing = [c for c in keys + values if c not in table.columns]
    if missing:
        raise KeyError(f"table has no column(s) {missing}; it has {list(table.columns)}")
    out = {}
    for row in table.to_dict("records"):
        stem = "/".join([prefix, *(str(row[k]) for k in keys)])
        out.update({f"{stem}/{v}": float(row[v]) for v in values})
    return out
