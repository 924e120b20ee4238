"""Metric rows: identity from tables and constants, completed and checked when written."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from pcclip.paths import run_paths
from pcclip.results import COLUMNS, metric_rows, rows_frame, write_rows


def test_metric_rows_melt_a_wide_table_with_errors_and_counts():
    table = pd.DataFrame({"model": ["base", "pcclip"], "phrasing": ["eval", "eval"], "accuracy": [0.5, 0.9],
                          "accuracy_se": [0.01, 0.02], "pairs": [10, 12], "note": ["x", "y"]})
    rows = metric_rows(table, ["accuracy"], columns={"phrasing": "variant", "pairs": "n"}, task="difference")
    assert rows[["model", "variant", "metric", "value", "se", "n"]].values.tolist() == [
        ["base", "eval", "accuracy", 0.5, 0.01, 10.0], ["pcclip", "eval", "accuracy", 0.9, 0.02, 12.0]]
    assert set(rows.task) == {"difference"} and set(rows.attribute) == {""} and "note" not in rows
    one = metric_rows({"acc1": 0.7, "acc5": 0.9}, ["acc1", "acc5"], task="zero_shot", model="base", n=30)
    assert one.value.tolist() == [0.7, 0.9] and one.n.tolist() == [30.0, 30.0] and one.se.isna().all()


def test_metric_rows_name_what_is_wrong():
    with pytest.raises(KeyError, match=r"unknown identity fields \['datset'\]"):
        metric_rows({"acc1": 1.0}, ["acc1"], datset="x")
    with pytest.raises(KeyError, match=r"metrics missing from the table \['acc5'\]"):
        metric_rows({"acc1": 1.0}, ["acc5"])


def test_write_rows_completes_identity_and_refuses_duplicates(smoke):
    paths = run_paths("smoke")
    paths.metrics.mkdir(parents=True)
    rows = [metric_rows({"acc1": 0.7}, ["acc1"], task="zero_shot", model="base"),
            metric_rows(pd.DataFrame({"model": ["any"], "top1": [math.nan]}), ["top1"], task="analogy")]
    path = write_rows(paths, "00_base_model", rows, smoke, info={"fingerprint": "abc"})
    data = json.loads(path.read_text())
    assert data["info"] == {"fingerprint": "abc"} and data["profile"] == "smoke" and "finetune" in data["config"]
    frame = rows_frame(data["rows"])
    assert list(frame.columns) == list(COLUMNS) and set(frame.notebook) == {"00_base_model"}
    assert frame.seed.tolist() == [smoke.finetune.seed] * 2
    assert frame.model.tolist() == ["base", ""]  # image-only rows ("any") name no model
    assert math.isnan(frame.value[1])
    with pytest.raises(ValueError, match="2 rows share an identity"):
        write_rows(paths, "00_base_model", [rows[0], rows[0]], smoke)
