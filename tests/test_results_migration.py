"""Every metric of the committed diffworld run from before metric rows (flat keys, commit fc78c25) has the
same value in the committed rows: the move to rows with identity changed no number.

The old keys are parsed here, in the test, once; the report itself never parses names.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from pcclip.paths import RunPaths, repo_root
from pcclip.report import notebook_rows

SNAPSHOT = Path(__file__).parent / "data" / "diffworld_flat_metrics_fc78c25.json"
MODELS = ("base", "pcclip", "pcclip_wa", "caption_ft")
SKIPPED = ("seconds", "fingerprint", "size_gain", "zs_shape_drop", "seeds", "n_images", "alpha")  # timing, info
                                                                                                    # or derived


def _ident(**kw) -> dict:
    return {"task": "", "dataset": "", "split": "", "variant": "", "attribute": "", "model": "", **kw}


def _model_first(key: str) -> tuple[str, str]:
    for m in sorted(MODELS, key=len, reverse=True):
        if key.startswith(m + "_"):
            return m, key[len(m) + 1:]
    raise KeyError(key)


def old_identity(notebook: str, key: str) -> dict | None:
    """Identity (with metric) of an old flat key; None for timings, info and derived values."""
    if any(key == s or key.endswith("_" + s) for s in SKIPPED):
        return None
    p = key.split("/")
    if notebook == "00_base_model":
        if key in ("n_params",) or key.startswith("pretrain_"):
            return _ident(task="pretrain", model="base", metric=key.removeprefix("pretrain_"))
        attribute, rest = key.removeprefix("zs_").split("_", 1)
        split = "holdout" if rest.endswith("_holdout") else "test"
        return _ident(task="zero_shot", dataset="diffworld", split=split, attribute=attribute, model="base",
                      metric=rest.removesuffix("_holdout"))
    if notebook == "01_data_synthesis":
        if p[0] == "rejected":
            return _ident(task="synthesis", variant=p[1], metric="rejected")
        if p[0] == "mentions":
            return _ident(task="synthesis", attribute=p[1], metric="mention_share")
        return _ident(task="synthesis", metric=key)
    if notebook == "02_finetune":
        model, rest = _model_first(key)
        if rest.startswith("diff_"):
            return _ident(task="difference", dataset="diffworld", split="test", variant="eval",
                          attribute=rest[5:], model=model, metric="accuracy")
        if rest == "zs_shape_acc1":
            return _ident(task="zero_shot", dataset="diffworld", split="test", attribute="shape", model=model,
                          metric="acc1")
        return _ident(task="training", model=model, metric=rest)
    if notebook == "03_ranking_eval":
        if p[0] == "difference":
            return _ident(task="difference", dataset="diffworld", split=p[1], variant=p[2], attribute=p[3],
                          model=p[4], metric=p[5])
        return _ident(task="ranking", dataset="diffworld", split="test", attribute=p[1], model=p[2], metric=p[3])
    if notebook == "04_comparative_prompting":
        if p[0] == "headroom":
            return _ident(task="headroom", dataset=p[1], split="test", model="" if p[2] == "any" else p[2],
                          variant=p[3], metric="/".join(p[4:]))
        return _ident(task=p[0], dataset=p[1], split="test", model=p[2], metric="/".join(p[3:]))
    model = p.pop(0) if p[0] in MODELS else ""
    task, metric, middle = p[0], p[-1], p[1:-1]
    variant = middle.pop(0) if task == "analogy" else ""
    attribute = middle[0] if middle else "all"
    if attribute == "nearest_neighbour":
        variant, attribute = attribute, "all"
    return _ident(task=task, variant=variant, attribute=attribute, model=model, metric=metric)


def test_every_old_metric_keeps_its_value_in_the_rows():
    old = json.loads(SNAPSHOT.read_text())["metrics"]
    run = RunPaths(repo_root() / "results" / "diffworld")
    compared = 0
    for notebook, metrics in old.items():
        rows = notebook_rows(run, notebook)
        rows = rows[rows.seed == 0]  # the snapshot is of finetune seed 0
        index = rows.set_index(["task", "dataset", "split", "variant", "attribute", "model", "metric"]).value
        for key, value in metrics.items():
            ident = old_identity(notebook, key)
            if ident is None or (notebook == "02_finetune" and ident["task"] == "training" and ident["model"] == "base"):
                continue  # the base model has no training run: its old zeros were placeholders
            where = tuple(ident[k] for k in ("task", "dataset", "split", "variant", "attribute", "model", "metric"))
            assert where in index.index, f"{notebook}: old key {key!r} has no row {where}"
            new = index[where]
            assert (math.isnan(new) and math.isnan(value)) or new == pytest.approx(value, abs=1e-9), \
                f"{notebook}: {key} was {value}, row {where} says {new}"
            compared += 1
    assert compared > 650
