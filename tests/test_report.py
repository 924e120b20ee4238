"""The results report on a real smoke run: headlines chosen by row identity, numbers equal to the
notebooks' own tables, the paper's claims at smoke size, and refusal of missing or stale metrics."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from pcclip.atomic import write_json
from pcclip.paths import PER_SEED_NOTEBOOKS, RunPaths
from pcclip.profiles import load_profile
from pcclip.report import (
    EXPECTED, HEADLINES, StaleResults, build_summary, headline_table, notebook_rows, run_rows, summary_markdown,
    write_summary,
)
from pcclip.results import COLUMNS, IDENTITY

SEEDS = load_profile("smoke").finetune.seeds  # (0, 1): the smoke pipeline runs notebooks 02-05 once per seed

pytestmark = pytest.mark.slow  # the smoke pipeline runs once per session (smoke_run)


@pytest.fixture
def run(smoke_run, tmp_path) -> RunPaths:
    """A private copy of the session's smoke run, safe to edit."""
    return RunPaths(shutil.copytree(smoke_run, tmp_path / "smoke"))


def _rows(paths: RunPaths, notebook: str, seed: int = 0) -> pd.DataFrame:
    rows = notebook_rows(paths, notebook)
    return rows[rows.seed == seed].reset_index(drop=True) if notebook in PER_SEED_NOTEBOOKS else rows


def _value(rows: pd.DataFrame, **identity) -> float:
    mask = pd.Series(True, index=rows.index)
    for key, value in identity.items():
        mask &= rows[key] == value
    assert mask.sum() == 1, f"{mask.sum()} rows match {identity}"
    return float(rows[mask].value.item())


def test_every_notebook_writes_rows_with_complete_unique_identity(smoke_run):
    paths = RunPaths(smoke_run)
    for notebook in EXPECTED:
        rows = notebook_rows(paths, notebook)
        assert list(rows.columns) == list(COLUMNS) and len(rows) > 0
        assert set(rows.notebook) == {notebook}
        assert set(rows.seed) == (set(SEEDS) if notebook in PER_SEED_NOTEBOOKS else {0})
        assert not rows.duplicated(list(IDENTITY)).any()
        assert rows.task.ne("").all() and rows.metric.ne("").all()


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_equal_the_notebooks_own_tables(smoke_run, seed):
    paths = RunPaths(smoke_run)
    diff = pd.read_csv(paths.metrics / f"03_difference.seed{seed}.csv", keep_default_na=False)
    rows = _rows(paths, "03_ranking_eval", seed)
    for r in diff.itertuples():
        got = _value(rows, task="difference", split=r.split, variant=r.phrasing, attribute=r.attribute,
                     model=r.model, metric="accuracy")
        assert got == pytest.approx(r.accuracy, abs=1e-6)
    comp = pd.read_csv(paths.metrics / f"04_comparative.seed{seed}.csv")
    rows = _rows(paths, "04_comparative_prompting", seed)
    for r in comp.itertuples():
        got = _value(rows, task="comparative", dataset=r.dataset, variant="", model=r.model, metric="gain_acc1")
        assert got == pytest.approx(r.gain_acc1, abs=1e-6)
    models = pd.read_csv(paths.metrics / f"02_models.seed{seed}.csv")
    rows = _rows(paths, "02_finetune", seed)
    for r in models.itertuples():
        assert _value(rows, task="difference", attribute="size", model=r.model) == pytest.approx(r.diff_size, abs=1e-6)
        assert _value(rows, task="zero_shot", model=r.model, metric="acc1") == pytest.approx(r.zero_shot_acc1,
                                                                                              abs=1e-6)


def test_headlines_hold_only_the_rows_their_identity_names(smoke_run):
    summary = build_summary(RunPaths(smoke_run))
    table = summary.table
    assert list(dict.fromkeys(table.headline)) == [h.title for h in HEADLINES]
    for h in HEADLINES:
        part = table[table.headline == h.title]
        assert set(part.task) == {h.task} and set(part.metric) <= set(h.metrics)
    gains = table[table.headline == "comparative prompting gain"]
    assert set(gains.notebook) == {"04_comparative_prompting"}  # not 02's size accuracy (a misfiled row before)
    zero = table[table.headline == "zero-shot accuracy"]
    assert set(zero.notebook) == {"00_base_model", "02_finetune", "04_comparative_prompting"}
    base00 = zero[(zero.notebook == "00_base_model") & (zero.split == "test") & (zero.attribute == "shape")]
    rows = _rows(RunPaths(smoke_run), "00_base_model")
    assert base00.base.item() == _value(rows, task="zero_shot", split="test", attribute="shape", metric="acc1")
    assert table.pcclip_minus_base.dropna().to_numpy() == pytest.approx((table.pcclip - table.base).dropna().to_numpy())
    assert summary.files.notebook.tolist() == [n for n in EXPECTED for _ in (SEEDS if n in PER_SEED_NOTEBOOKS else [0])]
    assert set(table.n_seeds[table.notebook.isin(PER_SEED_NOTEBOOKS)]) == {len(SEEDS)}


def test_headline_means_and_intervals_are_those_of_the_seeds(smoke_run):
    """Held-out size-difference accuracy of PC-CLIP: the mean of the two seeds' rows, the t-interval with
    t(0.975, 1) = 12.706, and both seeds' rows in summary.csv."""
    summary = build_summary(RunPaths(smoke_run))
    per_seed = [_value(_rows(RunPaths(smoke_run), "03_ranking_eval", s), task="difference", split="holdout",
                       variant="eval", attribute="size", model="pcclip", metric="accuracy") for s in SEEDS]
    t = summary.table
    row = t[(t.notebook == "03_ranking_eval") & (t.split == "holdout") & (t.variant == "eval")
            & (t.attribute == "size")]
    mean, sd = sum(per_seed) / 2, abs(per_seed[0] - per_seed[1]) / 2 ** 0.5
    assert row.pcclip.item() == pytest.approx(mean)
    assert (row.pcclip_lo.item(), row.pcclip_hi.item()) == pytest.approx((mean - 12.706 * sd / 2 ** 0.5,
                                                                          mean + 12.706 * sd / 2 ** 0.5), abs=1e-4)
    s = summary.seeds
    mine = s[(s.notebook == "03_ranking_eval") & (s.split == "holdout") & (s.variant == "eval")
             & (s.attribute == "size") & (s.model == "pcclip")]
    assert mine.seed.tolist() == [*SEEDS, "mean"] and mine.value.tolist()[:2] == pytest.approx(per_seed)


def test_summary_files_are_written(run):
    md, csv = write_summary(run, build_summary(run))
    text = md.read_text()
    assert md == run.root / "summary.md" and "| headline | notebook | task |" in text
    assert "metrics/04_comparative_prompting.seed1.json" in text
    assert " [" in text  # means with their intervals
    lines = csv.read_text().splitlines()
    assert lines[0] == "headline,notebook,task,dataset,split,variant,attribute,metric,model,seed,value,lo,hi,n_seeds"
    assert len(lines) == 1 + len(build_summary(run).seeds)


def _edit(paths, name, **changes):
    path = paths.metrics / f"{name}.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_missing_metrics_are_refused_by_name(run):
    (run.metrics / "03_ranking_eval.seed1.json").unlink()
    (run.metrics / "05_embedding_geometry.seed0.json").unlink()
    with pytest.raises(StaleResults) as err:
        build_summary(run)
    assert "03_ranking_eval.seed1.json is missing" in str(err.value)
    assert "05_embedding_geometry.seed0.json is missing" in str(err.value)
    assert "02_finetune" not in str(err.value) and "03_ranking_eval.seed0" not in str(err.value)


def test_a_metrics_file_of_the_old_flat_format_is_refused(run):
    data = json.loads((run.metrics / "02_finetune.seed0.json").read_text())
    del data["rows"]
    (run.metrics / "02_finetune.seed0.json").write_text(json.dumps({**data, "metrics": {"pcclip_diff_size": 0.9}}))
    with pytest.raises(StaleResults, match=r"02_finetune.seed0.json lacks \['rows'\].*rerun notebooks/02_finetune"):
        build_summary(run)


def test_a_metrics_file_from_another_commit_is_refused(run):
    _edit(run, "02_finetune.seed1", git_commit="0123abc")
    with pytest.raises(StaleResults, match=r"02_finetune.seed1.json is from commit 0123abc") as err:
        build_summary(run)
    assert "03_ranking_eval" not in str(err.value) and "02_finetune.seed0" not in str(err.value)


def test_a_per_seed_file_of_another_seed_is_refused(run):
    """A seed-1 file overwritten by seed 0's (a notebook run by hand without finetune.seed) is caught, although
    its config is otherwise the run's."""
    (run.metrics / "03_ranking_eval.seed1.json").write_text((run.metrics / "03_ranking_eval.seed0.json").read_text())
    with pytest.raises(StaleResults, match=r"03_ranking_eval.seed1.json holds finetune seed 0, not 1: rerun "
                                           r"notebooks/03_ranking_eval.ipynb with finetune.seed=1") as err:
        build_summary(run)
    assert "03_ranking_eval.seed0" not in str(err.value)


def test_a_manifest_from_another_commit_makes_every_file_stale(run):
    manifest = json.loads((run.root / "manifest.json").read_text())
    write_json(run.root / "manifest.json", {**manifest, "git_commit": "feedbee"})
    with pytest.raises(StaleResults) as err:
        build_summary(run)
    assert all(f"{name}.json is from commit" in str(err.value)
               for name in ("00_base_model", *[f"{n}.seed{s}" for n in PER_SEED_NOTEBOOKS for s in SEEDS]))


def test_without_a_manifest_the_odd_file_out_is_stale(run):
    commit = json.loads((run.metrics / "04_comparative_prompting.seed0.json").read_text())["git_commit"]
    (run.root / "manifest.json").unlink()
    _edit(run, "04_comparative_prompting.seed0", git_commit="0123abc")
    with pytest.raises(StaleResults, match="04_comparative_prompting.seed0.json is from commit 0123abc"):
        build_summary(run)
    _edit(run, "04_comparative_prompting.seed0", git_commit=commit)
    assert "no manifest.json" in summary_markdown(build_summary(run))


def test_other_profile_or_config_is_refused(run):
    _edit(run, "01_data_synthesis", profile="diffworld")
    data = json.loads((run.metrics / "05_embedding_geometry.seed1.json").read_text())
    data["config"]["geometry"]["n_objects"] = 99
    (run.metrics / "05_embedding_geometry.seed1.json").write_text(json.dumps(data))
    with pytest.raises(StaleResults) as err:
        build_summary(run)
    msg = str(err.value)
    assert "01_data_synthesis.json was written by profile 'diffworld'" in msg
    assert "05_embedding_geometry.seed1.json ran with another config than most files (sections ['geometry'])" in msg
    assert "seed0" not in msg  # finetune.seed is the one setting the seeds' files differ in


def test_a_manifest_of_another_profile_or_a_truncated_metrics_file_is_refused(run):
    """A manifest.json copied from another profile's folder is named; a metrics file cut short (a crash in an
    editor, a bad merge) names itself and the notebook to rerun, as a missing one does."""
    manifest = json.loads((run.root / "manifest.json").read_text())
    write_json(run.root / "manifest.json", {**manifest, "profile": "diffworld"})
    with pytest.raises(StaleResults, match=r"manifest.json is for profile 'diffworld', this folder is 'smoke'"):
        build_summary(run)
    write_json(run.root / "manifest.json", manifest)
    path = run.metrics / "00_base_model.json"
    path.write_text(path.read_text()[:40])
    with pytest.raises(StaleResults, match=r"00_base_model.json is not valid JSON .*rerun notebooks/00_base_model"):
        build_summary(run)
    path.unlink()
    with pytest.raises(StaleResults, match=r"00_base_model.json is missing: run notebooks/00_base_model.ipynb$"):
        build_summary(run)


def test_headline_table_of_no_rows_is_empty():
    assert headline_table(run_rows({"00_base_model": {"rows": []}})).empty


def test_the_summary_times_the_notebooks_it_reads_not_earlier_runs_of_the_report(run):
    """While notebook 06 runs, the manifest still holds its previous run's time and the previous total."""
    manifest = json.loads((run.root / "manifest.json").read_text())
    manifest["notebooks"] = {k: {**v, "seconds": 1000.0 if k.startswith("06_") else 10.0}
                             for k, v in manifest["notebooks"].items()}
    manifest["total_seconds"] = 99999.0
    write_json(run.root / "manifest.json", manifest)
    timed = [k for k in manifest["notebooks"] if not k.startswith("06_")]
    assert "06_report.ipynb" in manifest["notebooks"]
    assert len(timed) == len(EXPECTED) - len(PER_SEED_NOTEBOOKS) + len(PER_SEED_NOTEBOOKS) * len(SEEDS)
    assert f"{10 * len(timed)} s in notebooks 00-05" in summary_markdown(build_summary(run))
