"""The results report: headline table from metrics files, and refusal of missing or stale metrics."""
from __future__ import annotations

import json

import pytest

from pcclip.atomic import write_json
from pcclip.paths import run_paths
from pcclip.report import (
    EXPECTED, StaleResults, build_summary, headline_table, split_model, summary_markdown, write_summary,
)
from pcclip.results import git_commit, write_metrics

METRICS = {
    "00_base_model": {"zs_shape_acc1": 0.8, "zs_shape_acc5": 0.99, "zs_shape_worst_class": 0.6,
                      "zs_shape_acc1_holdout": 0.7, "fingerprint": "f00d", "pretrain_seconds": 12.0},
    "01_data_synthesis": {"pairs": 1000, "accepted": 950, "accept_rate": 0.95, "mentions/size": 0.4},
    "02_finetune": {"pcclip/final_loss": 1.2, "caption_ft/final_loss": 2.0},
    "03_ranking_eval": {"difference/test/eval/size/base/accuracy": 0.5, "difference/test/eval/size/base/two_way": 0.5,
                        "difference/test/eval/size/pcclip/accuracy": 0.9, "difference/test/eval/size/base/accuracy_se":
                        0.02, "ranking/size/pcclip/kendall_tau": 0.7, "ranking/size/pcclip/spearman_rho": 0.8,
                        "seeds": 2},
    "04_comparative_prompting": {"zero_shot/shapes/base/acc1": 0.8, "zero_shot/shapes/pcclip/acc1": 0.78,
                                 "zero_shot/shapes/base/worst_class": 0.5,
                                 "comparative/shapes/pcclip/gain_acc1": 0.05,
                                 "comparative/shapes/base/gain_acc1": -0.01,
                                 "comparative/shapes/pcclip_wa/gain_acc1": 0.03,
                                 "comparative/shapes/pcclip/zero_shot_acc1": 0.78,
                                 "comparative/shapes/pcclip/comparative_acc1": 0.83,
                                 "extended/shapes/pcclip/extended_acc1": 0.79, "alpha": 0.85,
                                 "headroom/shapes/pcclip/oracle_comparative/subset_acc1": 0.7,
                                 "headroom/shapes/pcclip/oracle_comparative/acc1": 0.8,
                                 "headroom/shapes/any/linear_probe/subset_acc1": 0.9},
    "05_embedding_geometry": {"analogy/image/top1": 0.4, "base/analogy/text/top1": 0.3,
                              "pcclip/analogy/text/top1": 0.5, "pcclip/analogy/text/size/top1": 0.6,
                              "base/retrieval/recall@1": 0.1, "pcclip/retrieval/recall@1": 0.35,
                              "pcclip/retrieval/lambda": 1.0},
}


@pytest.fixture
def run(smoke):
    """A complete smoke results folder written with the real writers, plus a manifest."""
    paths = run_paths("smoke")
    for name, metrics in METRICS.items():
        write_metrics(paths, name, metrics, smoke)
    write_json(paths.root / "manifest.json", {
        "profile": "smoke", "git_commit": git_commit(), "overrides": {}, "device": "cpu (test)",
        "notebooks": {f"{n}.ipynb": {"seconds": 1.5} for n in EXPECTED}, "total_seconds": 9.0})
    return paths


def _edit(paths, name, **changes):
    path = paths.metrics / f"{name}.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_split_model():
    assert split_model("pcclip/analogy/text/top1", "value") == ("pcclip", "analogy/text/top1")
    assert split_model("test/pcclip_wa/acc1", "value") == ("pcclip_wa", "test/acc1")
    assert split_model("pcclip_wa_gain_acc1", "value") == ("pcclip_wa", "gain_acc1")
    assert split_model("pcclip_gain_acc1", "value") == ("pcclip", "gain_acc1")
    assert split_model("acc1", "base") == ("base", "acc1")


def test_summary_table_from_a_complete_run(run):
    summary = build_summary(run)
    t = summary.table.set_index(["headline", "notebook", "metric"])
    assert t.loc[("zero-shot accuracy", "00_base_model", "zs_shape_acc1"), "base"] == 0.8
    assert t.loc[("zero-shot accuracy", "00_base_model", "zs_shape_acc1_holdout"), "base"] == 0.7
    assert t.loc[("worst-class accuracy", "00_base_model", "zs_shape_worst_class"), "base"] == 0.6
    row = t.loc[("zero-shot accuracy", "04_comparative_prompting", "zero_shot/shapes/acc1")]
    assert (row["base"], row["pcclip"], row["pcclip_minus_base"]) == pytest.approx((0.8, 0.78, -0.02))
    assert t.loc[("difference pairs accepted", "01_data_synthesis", "accepted"), "value"] == 950
    row = t.loc[("difference accuracy", "03_ranking_eval", "difference/test/eval/size/accuracy")]
    assert (row["base"], row["pcclip"], row["pcclip_minus_base"]) == pytest.approx((0.5, 0.9, 0.4))
    assert t.loc[("comparative prompting gain", "04_comparative_prompting", "comparative/shapes/gain_acc1"),
                 "pcclip_wa"] == 0.03
    assert t.loc[("comparative subset accuracy", "04_comparative_prompting",
                  "headroom/shapes/oracle_comparative/subset_acc1"), "pcclip"] == 0.7
    assert t.loc[("comparative subset accuracy", "04_comparative_prompting",
                  "headroom/shapes/any/linear_probe/subset_acc1"), "value"] == 0.9
    assert t.loc[("analogy top-1", "05_embedding_geometry", "analogy/image/top1"), "value"] == 0.4
    assert t.loc[("retrieval recall@1", "05_embedding_geometry", "retrieval/recall@1"), "pcclip"] == 0.35
    assert t.loc[("ranking tau", "03_ranking_eval", "ranking/size/kendall_tau"), "pcclip"] == 0.7
    shown = set(summary.table["metric"])
    assert not shown & {"zs_shape_acc5", "fingerprint", "difference/test/eval/size/accuracy_se",
                        "difference/test/eval/size/two_way", "comparative/shapes/zero_shot_acc1",
                        "comparative/shapes/comparative_acc1", "extended/shapes/extended_acc1",
                        "analogy/text/size/top1", "retrieval/lambda", "pairs",
                        "headroom/shapes/oracle_comparative/acc1"}
    assert list(summary.table["headline"].drop_duplicates())[:4] == [
        "zero-shot accuracy", "worst-class accuracy", "difference pairs accepted", "difference accuracy"]
    assert summary.files["notebook"].tolist() == list(EXPECTED)
    assert summary.files["seconds"].tolist() == [1.5] * len(EXPECTED)


def test_summary_files_are_written(run):
    md, csv = write_summary(run, build_summary(run))
    text = md.read_text()
    assert md == run.root / "summary.md" and "| headline | notebook | metric |" in text
    assert "on cpu (test)" in text and "9 s of notebooks" in text
    assert "| retrieval recall@1 | 05_embedding_geometry | retrieval/recall@1 | 0.100 | 0.350 |" in text
    assert "metrics/04_comparative_prompting.json" in text
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("headline,notebook,metric,base,pcclip")
    assert len(lines) == 1 + len(build_summary(run).table)


def test_missing_metrics_are_refused_by_name(run):
    (run.metrics / "03_ranking_eval.json").unlink()
    (run.metrics / "05_embedding_geometry.json").unlink()
    with pytest.raises(StaleResults) as err:
        build_summary(run)
    assert "03_ranking_eval.json is missing" in str(err.value)
    assert "05_embedding_geometry.json is missing" in str(err.value)
    assert "02_finetune" not in str(err.value)


def test_a_metrics_file_from_another_commit_is_refused(run):
    _edit(run, "02_finetune", git_commit="0123abc")
    with pytest.raises(StaleResults, match=r"02_finetune.json is from commit 0123abc") as err:
        build_summary(run)
    assert "03_ranking_eval" not in str(err.value)


def test_a_manifest_from_another_commit_makes_every_file_stale(run):
    manifest = json.loads((run.root / "manifest.json").read_text())
    write_json(run.root / "manifest.json", {**manifest, "git_commit": "feedbee"})
    with pytest.raises(StaleResults) as err:
        build_summary(run)
    assert all(f"{name}.json is from commit" in str(err.value) for name in EXPECTED)


def test_without_a_manifest_the_odd_file_out_is_stale(run):
    (run.root / "manifest.json").unlink()
    _edit(run, "04_comparative_prompting", git_commit="0123abc")
    with pytest.raises(StaleResults, match="04_comparative_prompting.json is from commit 0123abc"):
        build_summary(run)
    _edit(run, "04_comparative_prompting", git_commit=git_commit())
    summary = build_summary(run)
    assert "no manifest.json" in summary_markdown(summary)


def test_other_profile_or_config_is_refused(run):
    _edit(run, "01_data_synthesis", profile="diffworld")
    data = json.loads((run.metrics / "05_embedding_geometry.json").read_text())
    data["config"]["geometry"]["n_objects"] = 99
    (run.metrics / "05_embedding_geometry.json").write_text(json.dumps(data))
    with pytest.raises(StaleResults) as err:
        build_summary(run)
    msg = str(err.value)
    assert "01_data_synthesis.json was written by profile 'diffworld'" in msg
    assert "05_embedding_geometry.json ran with another config than most files (sections ['geometry'])" in msg


def test_headline_table_ignores_non_numbers_and_empty_runs():
    assert headline_table({"00_base_model": {"metrics": {"note": "x", "flag": True}}}).empty
