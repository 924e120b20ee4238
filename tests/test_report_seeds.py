"""The report over finetune seeds, on a synthetic run written through the real writers: per-seed file names,
means and 95% t-intervals in summary.md/summary.csv and the README table, refusal of a file of another seed."""
from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from pcclip.paths import PER_SEED_NOTEBOOKS, RESULTS_ENV, RunPaths
from pcclip.profiles import load_profile
from pcclip.report import (
    BASE_MODELS, EXPECTED, FINETUNE_SEEDS, StaleResults, build_summary, difference_for_report, over_base_models,
    main, per_seed, rerun_counts, rerun_table, summary_markdown, sync_readme, with_intervals, write_rerun,
    write_summary,
)
from pcclip.results import metric_rows, save_figure, write_rows, write_table

SEEDS = (0, 1, 2)
PCCLIP_SIZE = {0: 0.9, 1: 0.95, 2: 1.0}  # mean 0.95, sd 0.05: interval 0.95 -+ 4.3027 * 0.05 / sqrt(3)
HALF = 4.3027 * 0.05 / math.sqrt(3)


def _write(paths: RunPaths, name: str, seed: int | None, base: float = 0.5) -> None:
    profile = load_profile("smoke", {"finetune.seeds": "0,1,2", "finetune.seed": seed or 0})
    if name == "03_ranking_eval":
        table = pd.DataFrame([{"model": m, "attribute": a, "split": "holdout", "variant": "eval",
                               "accuracy": v - (a == "x") * 0.1}
                              for a in ("size", "x") for m, v in (("base", base), ("pcclip", PCCLIP_SIZE[seed]))])
        rows = metric_rows(table, ["accuracy"], task="difference")
    elif name == "00_base_model":
        rows = metric_rows({"acc1": 0.8}, ["acc1"], task="zero_shot", model="base", split="test")
    else:
        rows = metric_rows({"steps": 10.0}, ["steps"], task="training", model="pcclip")
    write_rows(RunPaths(paths.root, seed), name, rows, profile)


def _run(root, base: float = 0.5) -> RunPaths:
    """A synthetic run under root/smoke whose base model scores `base` on every difference task."""
    paths = RunPaths(root / "smoke")
    for name in EXPECTED:
        for seed in (SEEDS if name in PER_SEED_NOTEBOOKS else (None,)):
            _write(paths, name, seed, base)
    return paths


@pytest.fixture
def run(tmp_path) -> RunPaths:
    return _run(tmp_path)


def test_per_seed_paths_name_every_file_after_the_seed(tmp_path):
    profile, seeded = load_profile("smoke", {"finetune.seed": 2}), RunPaths(tmp_path / "smoke", 2)
    rows = metric_rows({"steps": 1.0}, ["steps"], task="training")
    assert write_rows(seeded, "02_finetune", rows, profile).name == "02_finetune.seed2.json"
    assert write_table(seeded, "02_runs", pd.DataFrame({"a": [1]})).name == "02_runs.seed2.csv"
    fig = plt.figure()
    assert save_figure(seeded, "02_loss_curves", fig).name == "02_loss_curves.seed2.png"
    plt.close(fig)
    assert write_rows(RunPaths(seeded.root), "00_base_model", rows, profile).name == "00_base_model.json"
    with pytest.raises(ValueError, match="paths for finetune seed 2, rows of finetune.seed=0"):
        write_rows(seeded, "02_finetune", rows, load_profile("smoke"))


def test_headlines_are_means_with_t_intervals_over_the_seeds(run):
    summary = build_summary(run)
    t = summary.table
    size = t[(t.notebook == "03_ranking_eval") & (t.attribute == "size")].iloc[0]
    assert (size.pcclip, size.pcclip_lo, size.pcclip_hi) == pytest.approx((0.95, 0.95 - HALF, 0.95 + HALF), abs=1e-4)
    assert (size.base, size.base_lo, size.base_hi) == pytest.approx((0.5, 0.5, 0.5))
    assert size.pcclip_minus_base == pytest.approx(0.45) and size.n_seeds == 3
    x = t[(t.notebook == "03_ranking_eval") & (t.attribute == "x")].iloc[0]
    assert x.pcclip == pytest.approx(0.85)
    zero = t[t.notebook == "00_base_model"].iloc[0]  # the base model's own notebook: one run, no interval
    assert zero.base == 0.8 and math.isnan(zero.base_lo) and zero.n_seeds == 1
    assert summary.files.seed.tolist() == ["", "", *[str(s) for _ in range(4) for s in SEEDS]]


def test_summary_shows_mean_and_interval_and_csv_keeps_every_seed(run, tmp_path):
    summary = build_summary(run)
    shown = with_intervals(summary.table)
    size = shown[(shown.notebook == "03_ranking_eval") & (shown.attribute == "size")].iloc[0]
    assert size.pcclip == f"0.950 [{0.95 - HALF:.3f}, {0.95 + HALF:.3f}]" == "0.950 [0.826, 1.074]"
    assert shown[shown.notebook == "00_base_model"].base.item() == "0.800"  # blank interval, not [0.800, 0.800]
    assert "_lo" not in " ".join(shown.columns) and size.n_seeds == "3"
    md, csv = write_summary(run, summary)
    table = pd.read_csv(csv, keep_default_na=False)
    mine = table[(table.notebook == "03_ranking_eval") & (table.attribute == "size") & (table.model == "pcclip")]
    assert mine.seed.tolist() == ["0", "1", "2", "mean"]
    assert mine.value.astype(float).tolist() == pytest.approx([0.9, 0.95, 1.0, 0.95])
    assert mine.lo.tolist()[:3] == ["", "", ""] and float(mine.lo.iloc[3]) == pytest.approx(0.95 - HALF, abs=1e-5)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nSTALE TABLE\n<!-- results:end -->\n")
    assert sync_readme(readme, md)
    assert "| 0.950 [0.826, 1.074] |" in readme.read_text() and "n_seeds" in readme.read_text()
    assert "mean over the finetune seeds" in summary_markdown(summary)


def test_per_seed_picks_the_rows_of_one_headline(run):
    rows = per_seed(build_summary(run).seeds, "difference accuracy", attribute="size", model="pcclip")
    assert rows.seed.tolist() == list(SEEDS) and rows.value.tolist() == pytest.approx([0.9, 0.95, 1.0])
    with pytest.raises(ValueError, match="no per-seed rows of headline 'ranking tau'"):
        per_seed(build_summary(run).seeds, "ranking tau")


def test_the_report_shows_held_out_phrasings_and_combinations_where_a_profile_has_them(run):
    """DiffWorld-shaped rows (phrasings "train" and "eval", splits "test" and "holdout") give the eval phrasings and,
    for the heatmap, their holdout split; paper-shaped rows (one description source per set) give every set."""
    seeds = build_summary(run).seeds
    rows = per_seed(seeds, "difference accuracy")  # the synthetic run's: variant "eval", split "holdout"
    train = rows.assign(variant="train", split="test", value=0.0)
    shown, held_out = difference_for_report(pd.concat([seeds, train, rows.assign(split="test")]))
    assert set(shown.variant) == {"eval"} and set(shown.split) == {"holdout", "test"}
    assert set(held_out.split) == {"holdout"} and held_out.value.tolist() == rows.value.tolist()
    paper = seeds.replace({"variant": {"eval": "ground_truth"}, "split": {"holdout": "test"}})
    shown, held_out = difference_for_report(paper)
    assert len(shown) == len(held_out) == 2 * 2 * len(SEEDS) and set(held_out.variant) == {"ground_truth"}


def test_a_file_of_another_seed_or_a_missing_seed_is_refused(run):
    (run.metrics / "03_ranking_eval.seed2.json").write_text((run.metrics / "03_ranking_eval.seed1.json").read_text())
    with pytest.raises(StaleResults) as err:
        build_summary(run)
    msg = str(err.value)
    assert "03_ranking_eval.seed2.json holds finetune seed 1, not 2: rerun notebooks/03_ranking_eval.ipynb" in msg
    assert "another config" not in msg and "seed1.json" not in msg  # seeds may differ in finetune.seed only
    (run.metrics / "04_comparative_prompting.seed0.json").unlink()
    with pytest.raises(StaleResults, match=r"04_comparative_prompting.seed0.json is missing: run notebooks/"
                                           r"04_comparative_prompting.ipynb with finetune.seed=0 \(python -m "
                                           r"pcclip.pipeline --only 04 --seeds 0\)"):
        build_summary(run)


def test_the_seeds_come_from_the_manifest_else_from_notebook_02s_files(run):
    """The pipeline's manifest lists the seeds; notebooks run by hand (nbval: each once, seed 0) are summarised
    over the seeds notebook 02 ran for, and a later notebook missing one of them is still refused."""
    (run.root / "manifest.json").write_text(json.dumps({"profile": "smoke", "finetune_seeds": [0, 1]}))
    assert build_summary(run).table.n_seeds.max() == 2  # seed 2's files are not part of this run
    assert build_summary(run, seeds=(1,)).table.n_seeds.max() == 1
    (run.root / "manifest.json").unlink()
    assert build_summary(run).table.n_seeds.max() == 3
    (run.metrics / "02_finetune.seed2.json").unlink()
    (run.metrics / "02_finetune.seed1.json").unlink()
    summary = build_summary(run)
    assert summary.table.n_seeds.max() == 1 and set(summary.files.seed) == {"", "0"}
    (run.metrics / "03_ranking_eval.seed0.json").unlink()
    with pytest.raises(StaleResults, match="03_ranking_eval.seed0.json is missing"):
        build_summary(run)
    for path in run.metrics.glob("02_finetune.*"):
        path.unlink()
    with pytest.raises(StaleResults, match=r"no metrics/02_finetune.seed<s>.json and no manifest.json"):
        build_summary(run)


def test_error_bars_are_the_t_intervals_of_the_table(run):
    from pcclip.plots.report import mean_heatmap, seed_errorbars

    rows = per_seed(build_summary(run).seeds, "difference accuracy", notebook="03_ranking_eval")
    fig = seed_errorbars(rows, x="attribute", col="split")
    ax = fig.axes[0]
    bars = [[v for v in line.get_ydata() if not math.isnan(v)] for line in ax.lines if len(line.get_ydata()) > 2]
    spans = {(round(min(ys), 4), round(max(ys), 4)) for ys in bars}  # each bar with its caps
    assert (round(0.95 - HALF, 4), round(0.95 + HALF, 4)) in spans  # pcclip, size
    assert (round(0.85 - HALF, 4), round(0.85 + HALF, 4)) in spans  # pcclip, x
    plt.close(fig)
    fig = mean_heatmap(rows)
    cells = sorted(float(t.get_text()) for t in fig.axes[0].texts)
    assert cells == pytest.approx([0.4, 0.5, 0.85, 0.95])  # base x, base size, pcclip x, pcclip size
    plt.close(fig)
    fig = seed_errorbars(rows.rename(columns={"model": "lever"}), x="split", col="attribute", hue="lever", target=0.9)
    assert [ax.get_title() for ax in fig.axes] == ["attribute size", "attribute x"]
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == ["base", "pcclip"]
    assert 0.9 in {line.get_ydata()[0] for line in fig.axes[0].lines if line.get_linestyle() == ":"}
    plt.close(fig)
    many = pd.concat([rows.assign(split=f"lever_number_{i}") for i in range(8)])  # eight long group names
    fig = seed_errorbars(many, x="split", col="attribute")
    assert fig.get_size_inches()[0] == pytest.approx(2 * 0.75 * 8)  # two panels, each with room for eight names
    assert {(t.get_rotation(), t.get_ha()) for t in fig.axes[0].get_xticklabels()} == {(40.0, "right")}
    plt.close(fig)
    fig = seed_errorbars(rows.iloc[:0], empty="no lever study yet")  # a study that has not run: says so
    assert [t.get_text() for t in fig.axes[0].texts] == ["no lever study yet"]
    plt.close(fig)


def test_a_rerun_is_checked_against_the_main_runs_intervals(run, tmp_path, monkeypatch):
    """The run against itself: every mean in its own interval. A rerun whose PC-CLIP reads no size: its pcclip
    (and pcclip - base) means fall outside, its base means (the same 0.5 on every seed, a zero-width interval)
    inside."""
    main = build_summary(run).seeds
    itself = rerun_table(main, main)
    assert len(itself) == main[main.seed == "mean"].lo.notna().sum() > 0 and itself.inside.all()
    for seed in SEEDS:
        monkeypatch.setitem(PCCLIP_SIZE, seed, 0.5)
    rerun = _run(tmp_path / "rerun")
    table = write_rerun(run, rerun)
    assert set(table.over) == {FINETUNE_SEEDS}  # no base-model study given
    difference = table[table.headline == "difference accuracy"].set_index(["attribute", "model"])
    assert difference.loc[("size", "pcclip"), "rerun"] == pytest.approx(0.5)
    interval = difference.loc[("size", "pcclip"), ["lo", "hi"]].tolist()
    assert interval == pytest.approx([0.95 - HALF, 0.95 + HALF], abs=1e-5)
    # predicting a mean over the rerun's 3 seeds: the half-width times sqrt(1 + 3/3)
    predicted = difference.loc[("size", "pcclip"), ["pred_lo", "pred_hi"]].tolist()
    assert predicted == pytest.approx([0.95 - math.sqrt(2) * HALF, 0.95 + math.sqrt(2) * HALF], abs=1e-5)
    assert not difference.loc[[("size", "pcclip"), ("x", "pcclip"), ("size", "pcclip_minus_base")], "inside"].any()
    assert not difference.loc[[("size", "pcclip"), ("size", "pcclip_minus_base")], "inside_pred"].any()
    assert difference.loc[[("size", "base"), ("x", "base")], ["inside", "inside_pred"]].all(axis=None)
    counts = rerun_counts(table).set_index("headline")
    assert counts.loc["all"].tolist() == [int(table.inside.sum()), int(table.inside_pred.sum()), len(table)]
    assert counts.loc["difference accuracy", ["inside", "intervals"]].tolist() == [2, 6]  # base in, pcclip out
    models = rerun_counts(table, "model").set_index("model")
    assert models.loc["pcclip", ["inside", "intervals"]].tolist() == [0, 2]
    assert models.loc["base"].tolist() == [2, 2, 2]
    written = (tmp_path / "rerun" / "summary.md").read_text()
    assert "## Outside" in written and written.count("| difference accuracy |") == 4 + 1  # 4 outside + count
    assert f"| pcclip | 0 | {models.loc['pcclip', 'inside_pred']} | 2 |" in written
    assert pd.read_csv(tmp_path / "rerun" / "summary.csv").inside.sum() == table.inside.sum()


def test_a_rerun_on_another_base_model_is_checked_against_the_spread_over_base_models(run, tmp_path):
    """Base CLIP reads size at 0.5 on the main run's base model and at 0.4 and 0.6 on the study's: over base
    models its interval is 0.5 -+ t(0.975, 2) * 0.1 / sqrt(3), and the prediction interval of one new base
    model twice as wide. A rerun whose base model reads 0.55 falls outside the main run's zero-width interval
    over finetune seeds and inside both over base models; one at 0.9 inside the prediction interval only; one
    at 1.0 outside all."""
    study = {1: _run(tmp_path / "p1", base=0.4), 2: _run(tmp_path / "p2", base=0.6)}
    pooled = over_base_models([run, *study.values()]).set_index(["notebook", "attribute", "model"])
    size = pooled.loc[("03_ranking_eval", "size", "base")]
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert (size.value, size.lo, size.hi, size.n_seeds) == pytest.approx((0.5, 0.5 - half, 0.5 + half, 3), abs=1e-4)
    assert pooled.loc[("03_ranking_eval", "size", "pcclip_minus_base")].value == pytest.approx(0.45)
    for base, inside, predicted in ((0.55, True, True), (0.9, False, True), (1.0, False, False)):
        rerun = _run(tmp_path / f"rerun{base}", base=base)
        table = write_rerun(run, rerun, study)
        assert list(dict.fromkeys(table.over)) == [FINETUNE_SEEDS, BASE_MODELS]
        cell = table[(table.notebook == "03_ranking_eval") & (table.attribute == "size") & (table.model == "base")]
        assert cell.set_index("over").inside.to_dict() == {FINETUNE_SEEDS: False, BASE_MODELS: inside}
        assert cell.set_index("over").inside_pred.to_dict() == {FINETUNE_SEEDS: False, BASE_MODELS: predicted}
        over_bases = cell.set_index("over").loc[BASE_MODELS]
        assert [over_bases.pred_lo, over_bases.pred_hi] == pytest.approx([0.5 - 2 * half, 0.5 + 2 * half], abs=1e-4)
        written = (rerun.root.parent / "summary.md").read_text()
        part = written[written.index(f"## Against the intervals over {BASE_MODELS}"):]
        counts = rerun_counts(table[table.over == BASE_MODELS], "model").set_index("model")
        assert "| base | {inside} | {inside_pred} | {intervals} |".format(**counts.loc["base"]) in part
        assert str(study[1].root) in part
        assert pd.read_csv(rerun.root.parent / "summary.csv").over.tolist() == table.over.tolist()


def test_the_report_command_refreshes_a_readme_and_checks_a_rerun(run, tmp_path, monkeypatch, capsys):
    """`python -m pcclip.report`, the last step of `make reproduce`: the README's results table from summary.md and
    its tagged numbers from the metrics, then nothing left to change; with --rerun, the rerun's check beside it."""
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    write_summary(run, build_summary(run))
    readme = tmp_path / "README.md"
    tag = ("<!-- row profile=smoke notebook=03_ranking_eval task=difference attribute=size model=pcclip "
           "metric=accuracy -->")
    readme.write_text(f"# R\n\nsize 0.10{tag}.\n\n<!-- results:start -->\nSTALE TABLE\n<!-- results:end -->\n")
    assert main(["smoke", "--readme", str(readme)]) == 0
    text, said = readme.read_text(), capsys.readouterr().out
    assert f"size 0.95{tag}." in text and "STALE TABLE" not in text and "| difference accuracy |" in text
    assert "README.md results table updated" in said and "README.md:3: 0.10 -> 0.95" in said
    assert main(["smoke", "--readme", str(readme)]) == 0 and readme.read_text() == text
    assert capsys.readouterr().out.strip().endswith("already up to date from results/smoke/summary.md")
    rerun = _run(tmp_path / "rerun")
    assert main(["smoke", "--rerun", str(rerun.root)]) == 0
    said = capsys.readouterr().out
    assert f"against the intervals over {FINETUNE_SEEDS}" in said and (rerun.root.parent / "summary.md").exists()
