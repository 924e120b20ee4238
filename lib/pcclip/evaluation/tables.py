"""Long result tables -> what notebooks show (mean ± se pivots) and record (metric rows with identity)."""
from __future__ import annotations

import math

import pandas as pd

from ..results import metric_rows
from .comparative import PAPER_VARIANTS


def mean_se_pivot(table: pd.DataFrame, index: str, columns: str, value: str) -> pd.DataFrame:
    """`value` as "0.612 ± 0.010" strings, `index` x `columns` in order of first appearance."""
    def cell(row: pd.Series) -> str:
        se = row[f"{value}_se"]
        return f"{row[value]:.3f}" + ("" if math.isnan(se) else f" ± {se:.3f}")

    shown = table.assign(_cell=table.apply(cell, axis=1))
    pivot = shown.pivot(index=index, columns=columns, values="_cell")
    return pivot.reindex(index=list(dict.fromkeys(table[index])), columns=list(dict.fromkeys(table[columns])))


def example_descriptions(sets: dict[tuple[str, str, str], list]) -> pd.DataFrame:
    """The first description of each evaluated (split, phrasing, attribute) set and its reversed twin ("" where
    the set has none, e.g. LLM-written descriptions)."""
    return pd.DataFrame([{"split": split, "phrasing": phrasing, "attribute": attribute, "description": draws[0].texts[0],
                          "twin": draws[0].reversed_texts[0] if draws[0].reversed_texts else ""}
                         for (split, phrasing, attribute), draws in sets.items()])


def accuracy_by_set(diff: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per attribute (rows) and (split/phrasing, model) (columns), in the order evaluated: DiffWorld
    puts held-out phrasings, training phrasings and the compositional holdout side by side."""
    wide = diff.assign(set=diff.split + "/" + diff.phrasing)
    return wide.pivot_table(index="attribute", columns=["set", "model"], values="accuracy", sort=False)


def difference_rows(diff: pd.DataFrame, places: dict[str, tuple[str, str]], task: str = "difference") -> pd.DataFrame:
    """Rows of `difference_table` (mean and se over the evaluation draws; the phrasing is the variant), each
    with the dataset and split its images come from (`places`: `tasks.difference_places`), so that a set
    scored here and in notebook 02's check carries the same identity. task "structures": the grammar's
    evaluation families (`tasks.structure_tasks`), one row per (attribute, model, family); task "frames": one per
    held-out frame instead."""
    missing = sorted(set(diff.split) - set(places))
    if missing:
        raise KeyError(f"difference table splits {missing} have no (dataset, split) in places {sorted(places)}")
    dataset, split = (diff.split.map(lambda key, i=i: places[key][i]) for i in (0, 1))
    return metric_rows(diff.assign(dataset=dataset, split=split), ["accuracy", "two_way"],
                       columns={"phrasing": "variant", "pairs": "n"}, task=task)


def structures_pivot(diff: pd.DataFrame, value: str = "accuracy", level: str = "family") -> pd.DataFrame:
    """`value` per (attribute, family) (rows, families in the grammar's order; `level` "frame": per held-out
    frame) and model (columns): every family or frame on its own row, so a weak one cannot hide in an average."""
    return diff.pivot_table(index=["attribute", "phrasing"], columns="model", values=value, sort=False
                            ).rename_axis(index=["attribute", level])


def structures_overview(sets: dict[tuple[str, str, str], list], struct: pd.DataFrame, level: str = "family") -> str:
    """What notebook 03 shows of the held-out structures (`tasks.structure_tasks`, scored by `difference_table`):
    one size description of each family (or held-out frame: `level` "frame") with its reversed twin, then accuracy
    and two-way accuracy per (attribute, family or frame) and model; for a profile without a grammar (no sets), a
    line that says so."""
    if not sets:
        return "no held-out structures: only DiffWorld's difference grammar has frames to hold out"
    examples = example_descriptions(sets).rename(columns={"phrasing": level})
    parts = [examples[examples.attribute == "size"][[level, "description", "twin"]].to_string(index=False)]
    parts += [f"{value}:\n{structures_pivot(struct, value, level).round(3).to_string()}"
              for value in ("accuracy", "two_way")]
    return "\n\n".join(parts)


def ranking_rows(ranking: pd.DataFrame) -> pd.DataFrame:
    """Rows of `ranking_table`: rank correlations per (dataset, split, attribute) and model."""
    return metric_rows(ranking, ["kendall_tau", "spearman_rho"], task="ranking")


def classification_rows(zero_shot: pd.DataFrame, comparative: pd.DataFrame, variants: pd.DataFrame,
                        extended: pd.DataFrame, headroom: pd.DataFrame, split: str) -> pd.DataFrame:
    """Rows of notebook 04's tables, each with a `dataset` column: zero-shot metrics, comparative
    prompting (fixed and tuned alpha; the variants beyond the paper's formula with their name as the variant:
    the paper's own rows of `variants` repeat the comparative columns and are not recorded twice), extended
    descriptions and the headroom classifiers (the variant)."""
    zero = [c for c in zero_shot.columns if c not in ("dataset", "model", "worst_class_name")]
    comp = [c for c in comparative.columns if c not in ("dataset", "model")]
    variant = [c for c in variants.columns if c not in ("dataset", "model", "variant")]
    variants = variants[~variants.variant.isin(PAPER_VARIANTS)]
    return pd.concat([
        metric_rows(zero_shot, zero, task="zero_shot", split=split),
        metric_rows(comparative, comp, task="comparative", split=split),
        metric_rows(variants, variant, task="comparative", split=split),
        metric_rows(extended, ["extended_acc1", "extended_worst_class"], task="extended", split=split),
        metric_rows(headroom, ["acc1", "subset_acc1"], columns={"classifier": "variant"}, task="headroom",
                    split=split)], ignore_index=True)
