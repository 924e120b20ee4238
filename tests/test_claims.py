"""The paper's claims, read from the committed diffworld and rehearsal runs' metric rows (with tolerances).

The smoke profile is too small to learn them: its base model is at chance on shapes (about 0.16 for 8
classes after 40 pretraining steps) and 150 finetuning steps lift size-difference accuracy only from 0.50 to
0.55 (measured on this machine). So the claims are checked on the committed run, which `make reproduce`
regenerates; a claim must hold on every finetune seed. The rehearsal in
`make test` uses the smoke base model for the same reason; the committed rehearsal uses DiffWorld's.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcclip.committed import committed_results
from pcclip.intervals import predicting
from pcclip.levers import base_fingerprint, lever_table, overview, seed_rows
from pcclip.paths import RESULTS_ENV, RunPaths, repo_root
from pcclip.profiles import load_profile
from pcclip.report import (
    BASE_MODELS, FINETUNE_SEEDS, base_models_table, base_study_table, markdown_table, notebook_rows, rerun_counts,
)

RESULTS = repo_root() / "results"


def _rows(notebook: str, profile: str = "diffworld") -> pd.DataFrame:
    return notebook_rows(RunPaths(RESULTS / profile), notebook)


def _by_model(rows: pd.DataFrame, **identity) -> pd.DataFrame:
    """The matching values, one row per finetune seed and one column per model: a claim must hold on every seed."""
    mask = pd.Series(True, index=rows.index)
    for key, value in identity.items():
        mask &= rows[key] == value
    return rows[mask].pivot(index="seed", columns="model", values="value")


def test_pcclip_reads_size_differences_that_base_clip_cannot():
    """On new sentences of the frames it trained on; base CLIP is at chance there."""
    size = _by_model(_rows("03_ranking_eval"), task="difference", split="test", variant="train", attribute="size",
                     metric="accuracy")
    assert ((size["base"] - 0.5).abs() < 0.05).all()
    assert (size["pcclip"] - size["base"] > 0.3).all()


@pytest.mark.parametrize("split", ["test", "holdout"])
def test_pcclip_beats_base_clip_on_held_out_frames(split):
    """Sentence structures that never train (and, in the holdout split, unseen shape:colour pairs): PC-CLIP is
    above base CLIP on every seed on x, y and brightness, and on size on seeds 0 and 2, though far from the training
    frames' accuracy; on size seed 1 sits under base CLIP (README, Results)."""
    rows = _rows("03_ranking_eval")
    for attribute in ("size", "x", "y", "brightness"):
        acc = _by_model(rows, task="difference", split=split, variant="eval", attribute=attribute, metric="accuracy")
        above = acc["pcclip"] > acc["base"]
        assert list(above[~above].index) == ([1] if attribute == "size" else []), (attribute, acc)
        assert (acc["pcclip"] < 0.9).any(), attribute
    said = _paragraph("- **Difference classification**")
    assert "seed 1 under base CLIP's" in said and "a test checks the seeds against base CLIP" in said


def test_finetuning_costs_little_zero_shot_accuracy():
    zero = _by_model(_rows("04_comparative_prompting"), task="zero_shot", dataset="diffworld", metric="acc1")
    assert (zero["base"] - zero["pcclip"] < 0.05).all()


def test_ranking_along_text_directions_improves():
    tau = _by_model(_rows("03_ranking_eval"), task="ranking", attribute="size", metric="kendall_tau")
    assert (tau["pcclip"] - tau["base"] > 0.25).all()  # 0.29-0.41 over the seeds of the committed run


@pytest.mark.parametrize("notebook", ["02_finetune", "03_ranking_eval"])
@pytest.mark.parametrize("attribute", ["cifar100_size", "awa2_size", "flowers102_colour"])
def test_rehearsal_pcclip_reads_the_sizes_and_colours_its_data_carries(notebook, attribute):
    """The rehearsal's fixtures draw CIFAR-100's and AwA2's larger animals large and Flowers-102's blue and yellow
    flowers in those colours; trained with the authors' loss on its COCO drawings, PC-CLIP must read them: well
    above the base model, or, where the base model already reads most of them (the colours: DiffWorld's captions
    name colours with several words; the main run's base model reads them all), at least 0.95 and no lower than the
    base model. Checked on the committed run (one base model, one finetune seed): on another machine's base model it
    held on some seeds only (README, "Rehearsal")."""
    acc = _by_model(_rows(notebook, "rehearsal"), task="difference", attribute=attribute, metric="accuracy")
    assert ((acc["pcclip"] - acc["base"] > 0.15) | ((acc["pcclip"] >= 0.95) & (acc["pcclip"] >= acc["base"]))).all()


def test_the_committed_rehearsal_finetunes_the_main_runs_base_model():
    """README, "Rehearsal": the committed rehearsal's claims are those of the committed main run's base model."""
    assert base_fingerprint(RunPaths(RESULTS / "rehearsal")) == base_fingerprint(RunPaths(RESULTS / "diffworld"))


# reruns of `make reproduce` from fresh clones on other machines, each with its README paragraph's first words
# folder: its paragraph's first words, and how it names the main run whose intervals it was checked against
FRESH_CLONES = {"diffworld-fresh-clone": ("**A fresh clone on another machine.**", "the earlier main run's"),
                "diffworld-fresh-clone-avx512": ("**A fresh clone on a faster machine.**", "the earlier main run's"),
                "diffworld-fresh-clone-epyc": ("**A fresh clone of the plain-caption recipe on another machine.**",
                                               "the main run's")}
EARLIER_RECIPE_CLONES = ("diffworld-fresh-clone", "diffworld-fresh-clone-avx512")


def _paragraph(start: str) -> str:
    """The README paragraph that begins with `start`, its source tags dropped and whitespace folded (prose wraps
    anywhere)."""
    text = (repo_root() / "README.md").read_text()
    assert start in text, f"README has no paragraph beginning {start!r}"
    return " ".join(re.sub(r"<!--.*?-->", "", text[text.index(start):].split("\n\n", 1)[0], flags=re.S).split())


def _said(paragraph: str, pattern: str) -> list[int]:
    found = re.search(pattern, paragraph)
    assert found, f"README paragraph {paragraph[:60]!r}... does not say {pattern!r}"
    return [int(g) for g in found.groups()]


def test_committed_base_study_tables_are_the_ones_its_runs_give_now(monkeypatch):
    """results/diffworld-base-seeds/: its tables per base model and over base models, as `write_base_study`
    computes them from the committed main run and study runs (a main run rerun without the study's tables
    rewritten fails here)."""
    monkeypatch.setenv(RESULTS_ENV, str(RESULTS))
    profile = load_profile("diffworld")
    tables = {"summary.csv": base_study_table(profile), "over_base_models.csv": base_models_table(profile)}
    for name, table in tables.items():
        committed = pd.read_csv(RESULTS / "diffworld-base-seeds" / name)
        numbers = table.select_dtypes("number").columns
        assert len(table) > 0 and list(committed.columns) == list(table.columns), name
        assert np.allclose(committed[numbers], table[numbers].astype(float), atol=1e-6, equal_nan=True), name


@pytest.mark.parametrize("folder", FRESH_CLONES)
def test_fresh_clone_rerun_is_summarised_as_the_readme_says(folder):
    """A committed rerun of a fresh clone on another machine: its check against the intervals of the main run and
    base-model study of its recipe (its committed summary.csv, written by `rerun_tables`; for the earlier recipe,
    1000 steps of 256, those runs are in git history, no longer in results/) is consistent and its README
    paragraph quotes its counts."""
    table = pd.read_csv(RESULTS / folder / "summary.csv", keep_default_na=False)
    assert set(table.over) == {FINETUNE_SEEDS, BASE_MODELS}
    assert (table.inside == ((table.lo <= table.rerun) & (table.rerun <= table.hi))).all()
    start, main_run = FRESH_CLONES[folder]
    said = _paragraph(start)
    labels = {"pcclip": "PC-CLIP", "base": "base CLIP", "caption_ft": "the caption baseline"}
    for over, words in ((FINETUNE_SEEDS, main_run), (BASE_MODELS, "the")):
        part = table[table.over == over]
        tail = said[said.index(f"intervals over {over}"):]
        assert _said(said, rf"inside (\d+) of {words} (\d+) intervals over {over}") == \
            rerun_counts(part).set_index("headline").loc["all", ["inside", "intervals"]].tolist(), over
        models = rerun_counts(part, "model").set_index("model")
        for model, label in labels.items():
            assert _said(tail, rf"{label}'s in (\d+) of (\d+)") == \
                models.loc[model, ["inside", "intervals"]].tolist(), (over, model)
    predicted = rerun_counts(table[table.over == BASE_MODELS]).set_index("headline").loc["all"]
    assert _said(said, rf"inside (\d+) of the (\d+) prediction intervals over {BASE_MODELS}") == \
        predicted[["inside_pred", "intervals"]].tolist()
    pcclip = rerun_counts(table[table.over == BASE_MODELS], "model").set_index("model").loc["pcclip"]
    assert _said(said, r"prediction intervals over base models, PC-CLIP's in (\d+) of (\d+)") == \
        pcclip[["inside_pred", "intervals"]].tolist()
    lo, hi = predicting(table.lo, table.hi, table.n_seeds, np.where(table.over == BASE_MODELS, 1, table.rerun_seeds))
    assert np.allclose([table.pred_lo, table.pred_hi], [lo, hi], atol=5e-6)  # summary.csv rounds to 1e-6
    assert (table.inside_pred == ((table.pred_lo <= table.rerun) & (table.rerun <= table.pred_hi))).all()
    if folder == "diffworld-fresh-clone":  # its paragraph says how wide the two kinds of interval are
        halves = ((table.hi - table.lo) / 2).groupby(table.over).median().round(3)
        widths = re.search(r"median half-width (\d\.\d+) against (\d\.\d+)", said)
        assert widths and [float(w) for w in widths.groups()] == [halves[BASE_MODELS], halves[FINETUNE_SEEDS]]


def _training_frames(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy on new sentences of the training frames (test pairs) of size, x, y and brightness, per seed: the
    rows of issue 15's 0.95 target (notebook 03's rows, or the lever study's)."""
    return seed_rows(rows, "difference", ("train",), ("size", "x", "y", "brightness"))


def _learns_the_training_frames(run: str) -> None:
    """Every finetune seed of `run` at least 0.95 (issue 15's target) on each attribute, new sentences of the
    training frames."""
    rows = _rows("03_ranking_eval", run)
    acc = _training_frames(rows[rows.model == "pcclip"]).pivot(index="seed", columns="attribute", values="value")
    assert acc.shape == (3, 4) and (acc >= 0.95).all().all(), (run, acc.min().to_dict())


@pytest.mark.parametrize("folder", EARLIER_RECIPE_CLONES)
def test_fresh_clone_learns_the_training_frames_on_every_seed(folder):
    """The README says so of each earlier-recipe rerun's base model (today's recipe on the EPYC clone's base model
    falls short on one seed, which the README quotes from its rows)."""
    _learns_the_training_frames(f"{folder}/diffworld")


# the main run and the base-model study: today's recipe on three base models pretrained on relational captions
BASE_MODEL_RUNS = ("diffworld", "diffworld-base-seeds/pretrain1/diffworld", "diffworld-base-seeds/pretrain2/diffworld")
THREADS1 = "diffworld-threads1"  # notebooks 02 and 03 of the main run again with 1 thread (README, Finetuning)
# the same runs with the recipe's 4000 steps of sessions 27-28 (README, Finetuning, "3000 steps")
RUNS_4000 = tuple(f"diffworld-4000/pretrain{seed}/diffworld" for seed in (0, 1, 2))
THREADS1_4000 = "diffworld-4000/threads1"
# the same recipe on the base models of the same pretrain seeds pretrained on plain captions: the main run and the
# base-model study until session 27, with their 1-thread check (README, Finetuning, "Relational pretraining")
PLAIN_RUNS = tuple(f"diffworld-plain/pretrain{seed}/diffworld" for seed in (0, 1, 2))
PLAIN_THREADS1 = "diffworld-fresh-clone-epyc/threads1"


def _shortfalls(runs: tuple[str, ...]) -> list[tuple[str, int]]:
    """(run, finetune seed) of each of the runs' `pcclip` seeds under issue 15's 0.95 on some training frame; each
    run must have three seeds and some held-out size or brightness frame under 0.90 ("on no base model's every
    seed")."""
    short = []
    for run in runs:
        rows = _rows("03_ranking_eval", run)
        lowest = _training_frames(rows[rows.model == "pcclip"]).groupby("seed").value.min()
        assert len(lowest) == 3, run
        short += [(run, seed) for seed, value in lowest.items() if value < 0.95]
        held = seed_rows(rows[rows.model == "pcclip"], "structures", ("heldout_frames",), ("size", "brightness"))
        assert len(held) == 6 and held.value.min() < 0.90, run
    return short


def test_every_run_on_relational_base_models_learns_the_training_frames_and_ten_of_twelve_plain_ones_did():
    """README, Finetuning and Two commands: the main run (2 threads), its base model with 1 thread and the base-model
    study reach 0.95 on every finetune seed, with 3000 steps and with 4000; of the same runs on plain-caption base
    models (4000 steps) only finetune seed 0 of pretrain seeds 0 and 1 (2 threads) missed it on an attribute."""
    assert _shortfalls((*BASE_MODEL_RUNS, THREADS1)) == [] == _shortfalls((*RUNS_4000, THREADS1_4000))
    plain = _shortfalls((*PLAIN_RUNS, PLAIN_THREADS1))
    assert plain == [(PLAIN_RUNS[0], 0), (PLAIN_RUNS[1], 0)], plain
    said = _paragraph("All twelve runs on relational base models learn the training frames")
    assert "with today's 3000 steps as with the 4000 of sessions 27-28" in said
    assert "With plain captions (4000 steps) ten of twelve did" in said
    assert "the two that did not are seed 0 of pretrain seed 0 with 2 threads, which learns them with 1 thread" in said
    assert "and seed 0 of pretrain seed 1" in said


def _notebooks_00_to_03(run: str, overrides: dict[str, str], pretrained: bool = True) -> None:
    """`run` executed notebooks 00-03 (every finetune seed; 01-03 where not `pretrained`, on a copy of a base model) at
    one commit, with these overrides, and nothing else."""
    manifest = json.loads((RESULTS / run / "manifest.json").read_text())
    assert manifest["overrides"] == overrides, run
    assert {entry["git_commit"] for entry in manifest["notebooks"].values()} == {manifest["git_commit"]}, run
    first = ("00_base_model", "01_data_synthesis") if pretrained else ("01_data_synthesis",)
    assert set(manifest["notebooks"]) == {f"{nb}.ipynb" for nb in first} | {
        f"{nb}.seed{seed}.ipynb" for nb in ("02_finetune", "03_ranking_eval") for seed in (0, 1, 2)}, run


# `short` (finetune.steps=3000) on the three base models: the lever study's tree, then the study's base models
SHORT_RUNS = ("diffworld-plain/pretrain0/diffworld-levers/short/diffworld",
              "diffworld-base-seeds-short/pretrain1/diffworld",
              "diffworld-base-seeds-short/pretrain2/diffworld")


def test_three_thousand_steps_hold_the_training_frames_on_seven_runs_of_nine_as_four_thousand_do():
    """README, Finetuning, after the lever study (plain-caption base models): 3000 steps miss seed 0 on both of the
    study's base models, 4000 steps seed 0 of pretrain seeds 0 and 1; each tree ran 3000 steps on its base model."""
    for run, recipe in zip(SHORT_RUNS[1:], PLAIN_RUNS[1:]):
        _notebooks_00_to_03(run, {"finetune.steps": "3000",
                                  "pretrain.seed": run.split("/")[1].removeprefix("pretrain")})
        assert base_fingerprint(RunPaths(RESULTS / run)) == base_fingerprint(RunPaths(RESULTS / recipe)), run
    assert _shortfalls(SHORT_RUNS) == [(SHORT_RUNS[1], 0), (SHORT_RUNS[2], 0)]
    assert _shortfalls(PLAIN_RUNS) == [(PLAIN_RUNS[0], 0), (PLAIN_RUNS[1], 0)]
    said = _paragraph("No lever reaches 0.90")
    assert "3000 steps hold the training frames on seven runs of nine, as 4000 steps do" in said
    assert "there 3000 steps miss on seed 0 of both" in said


def test_three_thousand_steps_leave_the_held_out_frames_where_four_thousand_left_them():
    """README, Finetuning, `short` of the relational lever study and "3000 steps": on each relational base model
    with 2 threads the mean of the held-out frames' own rows with 3000 steps (today's runs) stays within 0.025 of the
    4000 steps' on size and brightness; with 1 thread it is higher on both. Both step counts hold the training
    frames on every run (test_every_run_on_relational_base_models_...)."""
    for run, before in zip(BASE_MODEL_RUNS, RUNS_4000):  # 3000 minus 4000 steps
        assert (_frame_mean_gap(run, before).abs() < 0.025).all(), (run, _frame_mean_gap(run, before))
    assert (_frame_mean_gap(THREADS1, THREADS1_4000) > 0).all()
    said = _paragraph("- *`short`* (3000 steps, the paper's loss)")
    assert "So 3000 steps hold them on all nine relational runs, as 4000 steps do" in said
    assert "the mean of the frames stays within 0.025 of the 4000 steps'" in said
    said = _paragraph("**3000 steps, the recipe since session 29.**")
    assert "All twelve hold the training frames" in said
    assert "stay where 4000 steps left them with 2 threads (mean of the frames within 0.025 on each base model" in said
    assert "and are higher with 1 thread" in said


def _zero_shot(run: str) -> pd.DataFrame:
    return _by_model(_rows("02_finetune", run), task="zero_shot", split="test", attribute="shape", metric="acc1")


def _relational_share(run: str) -> float:
    """pretrain.relational_captions of the profile that pretrained `run`'s base model (notebook 00's provenance;
    runs written before the setting existed pretrained on plain captions)."""
    config = json.loads((RESULTS / run / "metrics/00_base_model.json").read_text())["config"]
    return config["pretrain"].get("relational_captions", 0.0)


def test_relational_pretraining_steadies_the_training_frames_but_does_not_lift_the_held_out_frames():
    """Each run of today's recipe beside the plain-caption run of its pretrain seed: another base model from the
    same data, which reads shapes better and loses at most 3 points to finetuning; the training frames hold on every
    run; held-out size and brightness stay under 0.90 somewhere on each base model, and their means over the
    finetune seeds fall under the plain run's on brightness on every base model and on size on two of three."""
    lower = {"size": 0, "brightness": 0}
    for run, plain in zip(RUNS_4000, PLAIN_RUNS):  # the same recipe, 4000 steps
        assert (_relational_share(run), _relational_share(plain)) == (0.5, 0.0), run
        assert base_fingerprint(RunPaths(RESULTS / run)) != base_fingerprint(RunPaths(RESULTS / plain)), run
        assert (RESULTS / run / "metrics/01_phrasings.csv").read_bytes() == (
            RESULTS / plain / "metrics/01_phrasings.csv").read_bytes(), run  # the same difference data
        zero, zero_plain = _zero_shot(run), _zero_shot(plain)
        assert (zero["base"] > zero_plain["base"]).all() and (zero["base"] - zero["pcclip"] <= 0.03).all(), run
        relational, plain_means = (
            seed_rows(_rows("03_ranking_eval", tree).query("model == 'pcclip'"), "structures", ("heldout_frames",),
                      ("size", "brightness")).groupby("attribute").value.mean() for tree in (run, plain))
        for attribute in lower:
            lower[attribute] += int(relational[attribute] < plain_means[attribute])
    assert _shortfalls(RUNS_4000) == []  # and under 0.90 on some held-out size or brightness of each run
    assert lower == {"size": 2, "brightness": 3}, lower
    said = _paragraph("The relational base models read shapes better")
    assert "the recipe learns the training frames on every finetune seed of all three" in said
    assert "lower than with plain captions on brightness on all three base models and on size on two" in said


@pytest.mark.parametrize("run", BASE_MODEL_RUNS + RUNS_4000 + PLAIN_RUNS)
def test_the_recipe_costs_at_most_three_points_of_zero_shot_shape_on_every_seed(run):
    """Issue 15's bound, on notebook 02's zero-shot check of every base model and finetune seed."""
    zero = _by_model(_rows("02_finetune", run), task="zero_shot", split="test", attribute="shape", metric="acc1")
    assert len(zero) == 3 and (zero["base"] - zero["pcclip"] <= 0.03).all()


def _cuda_rows() -> pd.DataFrame:
    """results/cuda-h200: benchmarks/cuda_check.py on one H200 (README, Benchmarks, "On a GPU")."""
    frame = notebook_rows(RunPaths(RESULTS / "cuda-h200"), "cuda_check")
    return frame.set_index(["task", "dataset", "model", "variant", "metric"])["value"].sort_index()


@pytest.mark.parametrize("dataset", ["templates", "templates_x3"])
def test_bf16_autocast_trains_the_paper_step_as_fp32_does_and_keeps_the_lr_1e8_update(dataset):
    """The first step's loss agrees across precisions, and the authors' lr 1e-8 still moves the fp32 weights."""
    rows = _cuda_rows().loc["paper_trainer", dataset, "ViT-L-14"]
    assert abs(rows["bf16", "first_loss"] / rows["fp32", "first_loss"] - 1) < 1e-4
    assert rows["bf16", "weights_fp32"] == 1 and rows["bf16", "weights_changed"] > 0.9
    assert rows["bf16", "peak_gib"] < rows["fp32", "peak_gib"]


def test_the_readme_paper_finetuning_minutes_follow_from_the_gpu_rows():
    """The "20 epochs of 100,000 pairs" column: the paper profile's steps at the measured bf16 step time."""
    paper = load_profile("paper")
    steps = int(np.ceil(paper.finetune.epochs * paper.synthesis.n_pairs / paper.finetune.batch_size))
    assert (paper.finetune.epochs, paper.synthesis.n_pairs, paper.finetune.batch_size) == (20, 100000, 512)
    text = (repo_root() / "README.md").read_text()
    rows = _cuda_rows().loc["paper_trainer"]
    for start, dataset in (("| DiffWorld templates", "templates"), ("| three joined", "templates_x3")):
        line = next(line.strip() for line in text.splitlines() if line.strip().startswith(start))
        minutes = int(re.search(r"\| (\d+) min \|$", line).group(1))
        assert minutes == round(steps * rows[dataset, "ViT-L-14", "bf16", "ms_per_step"] / 60000)


TODAYS_LEVERS = RESULTS / "diffworld-levers"  # today's main run's (3000 steps, relational captions)
LEVER_STUDY = RESULTS / "diffworld-4000/pretrain0/diffworld-levers"  # the 4000-step main run's (relational captions)
PLAIN_LEVERS = RESULTS / "diffworld-plain/pretrain0/diffworld-levers"  # the plain-caption main run's (until session 27)
EPYC = "diffworld-fresh-clone-epyc/diffworld"  # the run of the EPYC fresh clone, 2 threads


@pytest.mark.parametrize("study", [TODAYS_LEVERS, LEVER_STUDY, PLAIN_LEVERS], ids=["today", "relational", "plain"])
def test_committed_lever_study_is_the_table_its_runs_give_now(monkeypatch, study):
    """Each study's summary.csv and the overview in its summary.md, as `write_lever_study` computes them from the
    committed lever runs' rows (a lever rerun without the study's table rewritten fails here)."""
    monkeypatch.setenv(RESULTS_ENV, str(study.parent))
    table = lever_table("diffworld")
    committed = pd.read_csv(study / "summary.csv", keep_default_na=False)
    assert len(table) > 0 and list(committed.columns) == list(table.columns)
    assert committed.seed.astype(str).tolist() == table.seed.astype(str).tolist()
    assert np.allclose(committed.value, table.value.astype(float), atol=1e-6)
    assert markdown_table(overview(table)) in (study / "summary.md").read_text()


def _same_rows(ours_root: Path, theirs_root: Path, notebooks: tuple[str, ...], models: tuple[str, ...] = ()) -> None:
    """Every row of these notebooks in the two run folders (of these models; all for none) is the same, timings and
    checkpoint reuse apart: one base model (the same fingerprint) and the same numbers, as a rerun with the same seeds
    on the same kind of machine and thread count gives them."""
    assert base_fingerprint(RunPaths(ours_root)) == base_fingerprint(RunPaths(theirs_root))
    for notebook in notebooks:
        ours, theirs = (rows[~rows.metric.isin(["seconds", "samples_per_s", "reused"])
                             & (rows.model.isin(models) if models else True)]
                        for rows in (notebook_rows(RunPaths(root), notebook) for root in (ours_root, theirs_root)))
        key = [c for c in ours.columns if c not in ("value", "se", "n")]
        joined = ours.merge(theirs, on=key, how="outer", suffixes=("", "_theirs"), indicator=True)
        assert (joined._merge == "both").all() and len(joined) > 10, notebook
        assert joined.value.equals(joined.value_theirs), notebook  # NaN where both have NaN


@pytest.mark.parametrize("run, notebooks", [
    ("diffworld-plain/pretrain0/diffworld-levers/recipe/diffworld", ("02_finetune", "03_ranking_eval")),
    ("diffworld-plain/pretrain0/diffworld", ("00_base_model", "01_data_synthesis", "02_finetune", "03_ranking_eval",
                                             "04_comparative_prompting", "05_embedding_geometry")),
])
def test_reruns_on_the_epyc_give_the_epyc_fresh_clones_rows_exactly(run, notebooks):
    """Same base model, machine kind and thread count: every row of these notebooks equals the EPYC fresh clone's
    (committed from another checkout on another day), timings apart: the lever study's `recipe` (notebooks 02 and
    03 on a copy of its base model) and the plain-caption main run (`make reproduce` from a fresh clone of a later
    commit, the main run until session 27)."""
    _same_rows(RESULTS / run, RESULTS / EPYC, notebooks)


def test_the_relational_lever_studys_recipe_was_the_4000_step_main_run_and_its_short_is_todays():
    """The study on today's base model started from copies of the 4000-step main run's base model, data and
    finetuned runs, so its `recipe` re-scores that run's models, and its `short` (3000 steps) trained what today's
    recipe trains (another clone, commit and day): every row of notebooks 02 and 03 is that run's, and today's."""
    _same_rows(LEVER_STUDY / "recipe/diffworld", RESULTS / RUNS_4000[0], ("02_finetune", "03_ranking_eval"))
    _same_rows(LEVER_STUDY / "short/diffworld", RESULTS / "diffworld", ("02_finetune", "03_ranking_eval"))


def test_the_base_model_study_gives_the_rows_of_session_28s_3000_step_runs_again(tmp_path):
    """README, Finetuning, `short`: the study's notebooks 00-03 equal those of session 28's `--base-study 1,2 --set
    finetune.steps=3000` run (another clone, commit and day), read back from git history."""
    committed_results("8d0bb95", ["diffworld-base-seeds-short-relational"], tmp_path)
    for run in BASE_MODEL_RUNS[1:]:
        _same_rows(RESULTS / run, tmp_path / run.replace("base-seeds", "base-seeds-short-relational"),
                   ("00_base_model", "01_data_synthesis", "02_finetune", "03_ranking_eval"))


def test_the_main_run_gives_the_rows_of_session_25s_relational_run_again(tmp_path):
    """README, "Today's main run": notebooks 00 and 01 of the main run, which pretrains on relational captions by
    default, and 00-03 of the 4000-step main run before it, equal those of session 25's run with `--set
    pretrain.relational_captions=0.5` (4000 steps; another checkout, commit and day), read back from git history."""
    committed_results("952222c", ["diffworld-relational/pretrain0/diffworld"], tmp_path)
    session_25 = tmp_path / "diffworld-relational/pretrain0/diffworld"
    _same_rows(RESULTS / "diffworld", session_25, ("00_base_model", "01_data_synthesis"))
    _same_rows(RESULTS / RUNS_4000[0], session_25,
               ("00_base_model", "01_data_synthesis", "02_finetune", "03_ranking_eval"))


def test_no_lever_lifts_held_out_frames_to_the_target_on_every_seed():
    """The README's reading of the study: issue 15's held-out-frame target (0.90 on size and brightness on every
    seed) is met by no lever of it."""
    table = pd.read_csv(PLAIN_LEVERS / "summary.csv", keep_default_na=False)
    table = table[(table.metric == "accuracy") & (table.seed != "mean")]
    frames = table[(table.task == "structures") & (table.variant == "heldout_frames")
                   & table.attribute.isin(["size", "brightness"])]
    assert set(frames.lever) == set(table.lever) and (frames.groupby("lever").value.min() < 0.90).all()
    size = table[(table.task == "structures") & (table.attribute == "size")]
    change = size[size.variant == "change"].set_index(["lever", "seed"]).value
    assert list(change[change >= 0.30].index) == [("recipe", "1")]  # read backwards on every other seed
    negation = size[size.variant == "negation"].set_index(["lever", "seed"]).value
    assert list(negation[negation >= 0.90].index) == [("short", "0")]  # the README names the one seed


def test_the_levers_that_hold_the_training_frames_on_every_seed_are_the_ones_the_readme_names():
    """Lowest of size, x, y and brightness on new sentences of the training frames, per lever and seed: hard
    negatives, the role swaps alone, both at 3000 steps, `blocks` and `steps` reach 0.95 on every seed, the recipe and
    caption_weight do not."""
    table = pd.read_csv(PLAIN_LEVERS / "summary.csv", keep_default_na=False)  # each lever's rows: its own model
    lowest = _training_frames(table).groupby(["lever", "seed"]).value.min().groupby("lever").min()
    assert set(lowest[lowest >= 0.95].index) == {"hard_negatives", "role_swaps", "short", "role_swaps_short", "blocks",
                                                 "steps"}
    assert set(lowest.index) == {"recipe", "hard_negatives", "role_swaps", "short", "role_swaps_short",
                                 "caption_weight", "blocks", "steps"}
    said = _paragraph("No lever reaches 0.90")
    assert "Six levers hold the training frames on every seed" in said
    assert "the role swaps alone, both at 3000 steps (`short`, `role_swaps_short`), `blocks` and three times" in said
    assert "negation reaches 0.90 on one seed of one lever (`short`, seed 0)" in said


def _frame_lifts(study: Path) -> pd.DataFrame:
    """Per lever of a study: the mean of the held-out frames' own rows (each frame weighted equally, over the seeds)
    minus its recipe's, on size and brightness."""
    table = pd.read_csv(study / "summary.csv", keep_default_na=False)
    frames = table[(table.task == "frames") & (table.split == "test") & (table.metric == "accuracy")
                   & (table.seed != "mean") & table.attribute.isin(["size", "brightness"])]
    means = frames.groupby(["lever", "attribute"]).value.mean().unstack()
    return means - means.loc["recipe"]


def _hard_negatives_time_ratio(run: Path) -> pd.Series:
    """Per finetune seed of a run with hard negatives: a `pcclip_hn` run's seconds over the `pcclip` run's."""
    seconds = _by_model(_rows("02_finetune", str(run.relative_to(RESULTS))), task="training", metric="seconds")
    ratio = seconds["pcclip_hn"] / seconds["pcclip"]
    assert len(ratio) == 3
    return ratio


def test_the_relational_lever_study_reads_as_the_readme_says():
    """README, Finetuning, "The lever study on the relational base model": four levers on the main run's base
    model; none reaches 0.90 on held-out size and brightness on every seed; hard negatives lift the mean of the
    frames more over their recipe than any lever of either study, read negation right more often than not on every
    seed and lose the superlative family on seeds 1 and 2, at about 1.8 times the recipe's run; the role swap alone
    and 3000 steps leave the frames within 0.025 of the recipe; every lever holds the training frames."""
    table = pd.read_csv(LEVER_STUDY / "summary.csv", keep_default_na=False)
    assert set(table.lever) == {"recipe", "hard_negatives", "role_swaps", "short"}
    assert set(table.base) == {base_fingerprint(RunPaths(RESULTS / "diffworld"))}
    per_seed = table[(table.metric == "accuracy") & (table.seed != "mean") & (table.split == "test")]
    frames = seed_rows(per_seed, "structures", ("heldout_frames",), ("size", "brightness"))
    assert (frames.groupby("lever").value.min() < 0.90).all()
    assert (_training_frames(per_seed).groupby("lever").value.min() >= 0.95).all()
    lifts, plain = _frame_lifts(LEVER_STUDY), _frame_lifts(PLAIN_LEVERS)
    assert (lifts.loc["hard_negatives"] > pd.concat([lifts.drop("hard_negatives"), plain]).max()).all()
    assert (lifts.loc[["role_swaps", "short"]].abs() < 0.025).all().all()
    hn = per_seed[per_seed.lever == "hard_negatives"]
    negation = seed_rows(hn, "structures", ("negation",), ("size", "brightness"))
    assert len(negation) == 6 and (negation.value > 0.5).all()
    superlative = seed_rows(per_seed, "structures", ("superlative",), ("size",)).set_index(["lever", "seed"]).value
    assert all(superlative["hard_negatives", s] < superlative["recipe", s] for s in ("1", "2"))
    assert _hard_negatives_time_ratio(LEVER_STUDY / "hard_negatives/diffworld").between(1.6, 2.0).all()
    said = _paragraph("- *`hard_negatives` lifts the held-out frames more here")
    assert "the largest lift over its recipe in either study" in said and "about 1.8 times" in said
    assert "No lever of this study reaches 0.90 on size and brightness held-out frames on every seed" in said


TODAYS_LEVER_NAMES = ("recipe", "hard_negatives", "role_swaps", "caption_weight", "blocks", "relational_captions",
                      "relational_quarter", "caption_weight_relational", "caption_weight_blocks",
                      "hard_negatives_quarter")  # on today's recipe


def _committed_test_rows(stem: str) -> pd.DataFrame:
    """The rows of `metrics/<stem>.seed*.csv` (test pairs, finetuned models) of every committed tree, each with its
    tree and file."""
    rows = pd.concat([pd.read_csv(path).assign(tree=str(path.parent.parent.relative_to(RESULTS)), file=path.name)
                      for path in RESULTS.glob(f"**/metrics/{stem}.seed*.csv")], ignore_index=True)
    return rows.query("split == 'test' and model != 'base'")


def _committed_heldout_frames() -> pd.DataFrame:
    """The pooled held-out-frame rows of every committed tree."""
    return _committed_test_rows("03_structures").query("phrasing == 'heldout_frames'")


def _todays_size_families(rows: pd.DataFrame) -> pd.DataFrame:
    """Today's lever study's negation and change rows on size: one row per (family, seed), one column per lever."""
    size = seed_rows(rows, "structures", ("negation", "change"), ("size",))
    return size.pivot_table(index=["variant", "seed"], columns="lever", values="value")


def _todays_frame_means(rows: pd.DataFrame, frame: str) -> pd.DataFrame:
    """Today's lever study's rows of one held-out frame, mean over seeds: one row per lever, size and brightness."""
    frames = rows[(rows.task == "frames") & (rows.variant == frame) & rows.attribute.isin(["size", "brightness"])]
    return frames.groupby(["lever", "attribute"]).value.mean().unstack()


def _todays_lever_rows() -> pd.DataFrame:
    """Today's lever study, per-seed accuracy rows of the test pairs."""
    table = pd.read_csv(TODAYS_LEVERS / "summary.csv", keep_default_na=False)
    return table[(table.metric == "accuracy") & (table.seed != "mean") & (table.split == "test")]


def test_the_lever_study_of_todays_recipe_reads_as_the_readme_says():
    """README, Finetuning, "The lever study on today's recipe": its `recipe` is the main run's models scored again;
    hard negatives lift the mean of the frames by about 0.1 on size and brightness (with 4000 steps: more on size,
    about as much on brightness) and reach 0.90 on no attribute of every seed; the change frame read right on seeds
    1 and 2 (the recipe: seed 2), the first relational lever to do so on two seeds; negation above the recipe on every
    seed; marked roles below it on every seed; the training frames held; 1.7-2.1 times the recipe's run."""
    _same_rows(TODAYS_LEVERS / "recipe/diffworld", RESULTS / "diffworld", ("02_finetune", "03_ranking_eval"))
    table = pd.read_csv(TODAYS_LEVERS / "summary.csv", keep_default_na=False)
    assert set(table.lever) == set(TODAYS_LEVER_NAMES)
    assert set(table.base) == {base_fingerprint(RunPaths(RESULTS / "diffworld"))}
    per_seed = table[(table.metric == "accuracy") & (table.seed != "mean") & (table.split == "test")
                     & table.lever.isin(["recipe", "hard_negatives"])]
    frames = seed_rows(per_seed, "structures", ("heldout_frames",), ("size", "brightness"))
    assert (frames.groupby("lever").value.min() < 0.90).all()
    pooled = frames.set_index(["attribute", "lever", "seed"]).value
    assert [pooled["size", "hard_negatives", s] > pooled["size", "recipe", s] for s in "012"] == [True] * 3
    assert [pooled["brightness", "hard_negatives", s] > pooled["brightness", "recipe", s] for s in "012"] == [
        False, True, True]
    assert (_training_frames(per_seed).groupby("lever").value.min() >= 0.95).all()
    lift, lift_4000 = _frame_lifts(TODAYS_LEVERS).loc["hard_negatives"], _frame_lifts(LEVER_STUDY).loc["hard_negatives"]
    assert lift.between(0.08, 0.12).all()
    assert lift_4000["size"] > lift["size"] + 0.03 and abs(lift_4000["brightness"] - lift["brightness"]) < 0.01
    size = per_seed[(per_seed.task == "structures") & (per_seed.attribute == "size")]
    change = size[size.variant == "change"].set_index(["lever", "seed"]).value
    assert list(change[change > 0.5].index) == [("recipe", "2"), ("hard_negatives", "1"), ("hard_negatives", "2")]
    earlier = pd.read_csv(LEVER_STUDY / "summary.csv", keep_default_na=False)
    earlier = seed_rows(earlier, "structures", ("change",), ("size",))
    assert (earlier[earlier.value > 0.5].groupby("lever").size() < 2).all()
    for variant, higher in (("negation", True), ("marked_roles", False)):
        rows = size[size.variant == variant].pivot(index="seed", columns="lever", values="value")
        assert ((rows.hard_negatives > rows.recipe) == higher).all(), variant
    assert _hard_negatives_time_ratio(TODAYS_LEVERS / "hard_negatives/diffworld").between(1.7, 2.1).all()
    said = _paragraph("- *Hard negatives lift the held-out frames on today's recipe too")
    assert "a lift of about 0.1 on each" in said and "larger on size and about the same on brightness" in said
    assert "on brightness on seeds 1 and 2 only" in said and "more often than not on seeds 1 and 2* (size" in said
    assert "on size on every seed: hard negatives" in said and "1.7-2.1 times" in said


def test_the_role_swap_alone_does_not_lift_the_frames_on_todays_recipe():
    """README, Finetuning, "The lever study on today's recipe": `role_swaps`, whose tree trained every run again and
    gave the main run's rows, leaves the mean of the frames at or under the recipe's (hard negatives: +0.08 or more);
    the pooled row up on size and down on brightness on every seed; negation under the recipe's on every seed (both
    negatives: above), the change frame backwards on every seed; about 1.7 times a `pcclip` run on seeds 1 and 2."""
    _same_rows(TODAYS_LEVERS / "role_swaps/diffworld", RESULTS / "diffworld", ("02_finetune", "03_ranking_eval"),
               models=("base", "pcclip", "pcclip_wa", "caption_ft"))
    lifts = _frame_lifts(TODAYS_LEVERS)
    assert (lifts.loc["role_swaps"] <= 0).all() and (lifts.loc["hard_negatives"] >= 0.08).all()
    rows = _todays_lever_rows()
    pooled = seed_rows(rows, "structures", ("heldout_frames",), ("size", "brightness"))
    pooled = pooled.pivot_table(index=["attribute", "seed"], columns="lever", values="value")
    assert (pooled.loc["size"].role_swaps > pooled.loc["size"].recipe).all()
    assert (pooled.loc["brightness"].role_swaps < pooled.loc["brightness"].recipe).all()
    size = _todays_size_families(rows)
    negation = size.loc["negation"]
    assert (negation.role_swaps < negation.recipe).all() and (negation.hard_negatives > negation.recipe).all()
    assert len(size.loc["change"]) == 3 and (size.loc["change"].role_swaps < 0.5).all()
    ratio = _hard_negatives_time_ratio(TODAYS_LEVERS / "role_swaps/diffworld")
    assert ratio.iloc[1:].between(1.65, 1.75).all() and ratio.iloc[0] < 1.2  # seed 0's pcclip ran beside a test run
    said = _paragraph("- *Hard negatives lift the held-out frames on today's recipe too")
    assert "*The role swap alone (`role_swaps`) does not lift the frames" in said and "about 1.7 times" in said
    assert "ran with a test run beside it" in said


def test_keeping_the_pretrained_text_tower_lifts_the_frames_on_todays_recipe():
    """README, Finetuning, "The lever study on today's recipe": `caption_weight` lifts the mean of the frames more
    than hard negatives and `blocks` by 0.08 or more, where on the plain-caption base model each moved it by less
    than 0.02; `caption_weight` seed 0 is the one run of any committed study at 0.90 on held-out size and brightness
    (seeds 1 and 2 under 0.80), with negation above the recipe on every seed, the change frame right on seeds 0 and 1
    and the training frames held; both cost what the recipe's `pcclip` does on seeds 1 and 2."""
    lifts, plain = _frame_lifts(TODAYS_LEVERS), _frame_lifts(PLAIN_LEVERS)
    assert (lifts.loc["caption_weight"] > lifts.loc["hard_negatives"]).all() and (lifts.loc["blocks"] >= 0.08).all()
    assert (plain.loc[["caption_weight", "blocks"]].abs() < 0.02).all().all()
    rows = _todays_lever_rows()
    pooled = seed_rows(rows, "structures", ("heldout_frames",), ("size", "brightness"))
    pooled = pooled.pivot_table(index="seed", columns=["lever", "attribute"], values="value")
    lowest = pooled.T.groupby(level="lever").min().T  # per seed and lever: the lower of size and brightness
    assert (lowest.caption_weight >= 0.90).tolist() == [True, False, False] and (lowest.blocks < 0.90).all()
    assert (pooled.caption_weight.loc[["1", "2"]] < 0.80).all().all()
    held = _committed_heldout_frames()
    low = held[held.attribute.isin(["size", "brightness"])].groupby(["tree", "model", "file"]).accuracy.min()
    assert list(low[low >= 0.90].index) == [("diffworld-levers/caption_weight/diffworld", "pcclip",
                                             "03_structures.seed0.csv")]
    size = _todays_size_families(rows)
    assert (size.loc["negation"].caption_weight > size.loc["negation"].recipe).all()
    assert (size.loc["change"].caption_weight > 0.5).tolist() == [True, True, False]
    assert _training_frames(rows[rows.lever == "caption_weight"]).value.min() >= 0.95
    seconds = {lever: _by_model(_rows("02_finetune", f"diffworld-levers/{lever}/diffworld"), task="training",
                                metric="seconds").pcclip.iloc[1:]  # seeds 1 and 2: seed 0 ran beside test runs
               for lever in ("caption_weight", "blocks", "role_swaps")}
    for lever in ("caption_weight", "blocks"):
        assert (seconds[lever] / seconds["role_swaps"]).between(0.9, 1.05).all(), lever
    said = _paragraph("- *Hard negatives lift the held-out frames on today's recipe too")
    assert "lifts the frames most, at the recipe's cost, and meets issue 15's target on one seed" in said
    assert "the first run of any study at 0.90 on both; seeds 1 and 2 stay under 0.80 on both" in said
    assert "each moved the mean of the frames by less than 0.02" in said


def test_a_relational_caption_term_lifts_the_pooled_rows_on_every_seed_and_the_levers_do_not_add_up():
    """README, Finetuning, "The lever study on today's recipe": `relational_captions` lifts the pooled held-out rows
    above the recipe's on every seed, size and brightness, none to 0.90, the mean of the frames by 0.06 or more; its
    lift is frame negation:2 (the recipe's under 0.2, its own over 0.3 on both); the change frame stays backwards;
    the training frames under 0.95 on seed 2 alone (on x); each pair of levers lifts the mean of the frames less than
    either of its parts alone, on both attributes."""
    lifts = _frame_lifts(TODAYS_LEVERS)
    assert (lifts.loc["relational_captions"] >= 0.06).all()
    for pair, parts in (("caption_weight_relational", ["caption_weight", "relational_captions"]),
                        ("caption_weight_blocks", ["caption_weight", "blocks"])):
        assert (lifts.loc[pair] < lifts.loc[parts].min()).all(), pair
    rows = _todays_lever_rows()
    pooled = seed_rows(rows, "structures", ("heldout_frames",), ("size", "brightness"))
    pooled = pooled.pivot_table(index=["attribute", "seed"], columns="lever", values="value")
    assert (pooled.relational_captions > pooled.recipe).all() and len(pooled) == 6
    assert pooled.relational_captions.max() < 0.90
    negation = _todays_frame_means(rows, "negation:2")
    assert (negation.loc["recipe"] < 0.2).all() and (negation.loc["relational_captions"] > 0.3).all()
    assert (_todays_size_families(rows).loc["change"].relational_captions < 0.5).all()
    training = _training_frames(rows[rows.lever == "relational_captions"])
    assert (training.groupby("seed").value.min() >= 0.95).tolist() == [True, True, False]
    assert training[training.seed == "2"].set_index("attribute").value.idxmin() == "x"
    said = _paragraph("- *Hard negatives lift the held-out frames on today's recipe too")
    assert "lifts the pooled held-out rows on every seed, on size and brightness, and to 0.90 on none" in said
    assert "each under both of its parts alone, on both attributes" in said and "(lowest 0.927, on x)" in said


def test_a_quarter_relational_caption_term_keeps_the_training_frames_and_lifts_the_frames_more_than_half():
    """README, Finetuning, "The lever study on today's recipe": `relational_quarter` lifts the mean of the frames more
    than `relational_captions` on both attributes, with the training frames at 0.95 or more on every seed (half: not
    on seed 2); its pooled brightness falls under the recipe's on seed 0; negation:2 rises less than with half; its
    best pooled size, on seed 2, comes with brightness under 0.75; a run at about the recipe's cost."""
    lifts = _frame_lifts(TODAYS_LEVERS)
    assert (lifts.loc["relational_quarter"] > lifts.loc["relational_captions"]).all()
    rows = _todays_lever_rows()
    assert _training_frames(rows[rows.lever == "relational_quarter"]).value.min() >= 0.95
    pooled = seed_rows(rows, "structures", ("heldout_frames",), ("size", "brightness"))
    pooled = pooled.pivot_table(index=["attribute", "seed"], columns="lever", values="value")
    rises = pooled.relational_quarter > pooled.recipe
    assert rises["size"].all() and rises["brightness"].tolist() == [False, True, True]
    quarter = pooled.relational_quarter
    assert quarter.loc["size"].idxmax() == "2" and quarter.loc["brightness", "2"] < 0.75
    negation = _todays_frame_means(rows, "negation:2")
    assert (negation.loc["recipe"] < negation.loc["relational_quarter"]).all()
    assert (negation.loc["relational_quarter"] < negation.loc["relational_captions"]).all()
    seconds = _by_model(_rows("02_finetune", "diffworld-levers/relational_quarter/diffworld"), task="training",
                        metric="seconds").pcclip
    recipe = _by_model(_rows("02_finetune", "diffworld-levers/recipe/diffworld"), task="training", metric="seconds")
    assert (seconds / recipe.pcclip).between(0.9, 1.1).all()
    said = _paragraph("- *Hard negatives lift the held-out frames on today's recipe too")
    assert "*A quarter relational (`relational_quarter`: a quarter of the caption term relational) keeps" in said
    assert "(brightness falls on seed 0), negation:2 rises less than with half" in said


def test_hard_negatives_with_a_quarter_relational_caption_term_do_not_add_up():
    """README, Finetuning, "The lever study on today's recipe": alone, hard negatives lift frame negation:2 more than
    a quarter-relational caption term, and a quarter keeps marked_roles:2 (within 0.02 of the recipe or above it)
    where hard negatives lose it; together (`hard_negatives_quarter`) they lift the mean of the frames less than
    either alone, on both attributes, with the training frames under 0.95 on seed 2 alone; its `pcclip` gave every
    row of `relational_quarter`'s again."""
    rows = _todays_lever_rows()
    negation, roles = _todays_frame_means(rows, "negation:2"), _todays_frame_means(rows, "marked_roles:2")
    assert (negation.loc["hard_negatives"] > negation.loc["relational_quarter"]).all()
    assert (roles.loc["relational_quarter"] > roles.loc["recipe"] - 0.02).all()
    assert (roles.loc["hard_negatives"] < roles.loc["recipe"] - 0.2).all()
    lifts = _frame_lifts(TODAYS_LEVERS)
    assert (lifts.loc["hard_negatives_quarter"] < lifts.loc[["hard_negatives", "relational_quarter"]].min()).all()
    training = _training_frames(rows[rows.lever == "hard_negatives_quarter"])
    assert (training.groupby("seed").value.min() >= 0.95).tolist() == [True, True, False]
    _same_rows(TODAYS_LEVERS / "hard_negatives_quarter/diffworld", TODAYS_LEVERS / "relational_quarter/diffworld",
               ("02_finetune", "03_ranking_eval"), models=("pcclip", "pcclip_wa", "caption_ft"))
    said = _paragraph("- *Nor do hard negatives with a quarter-relational caption term*")
    assert "under both parts alone on both attributes, and the training frames slip on seed 2" in said
    assert "a quarter keeps marked_roles:2, which hard negatives lose" in said


# finetune.hard_negatives on the base-model study's pretrain seeds 1 and 2
HN_RUNS = {seed: f"diffworld-hard-negatives/pretrain{seed}/diffworld" for seed in (1, 2)}


@pytest.mark.parametrize("seed", sorted(HN_RUNS))
def test_hard_negatives_on_a_study_base_model_cost_about_twice_the_recipe(seed):
    """README, Finetuning, "Hard negatives on the other base models": a `pcclip_hn` run cost 1.7-2.1 times the
    `pcclip` run beside it."""
    assert _hard_negatives_time_ratio(RESULTS / HN_RUNS[seed]).between(1.7, 2.1).all()


def test_hard_negatives_lift_the_frames_on_another_base_model():
    """README, Finetuning, "Hard negatives on the other base models": on the study's pretrain seed 1 hard negatives
    lift the mean of the frames by at least 0.04 on size and brightness (as on the main run's base model), lift
    marked roles on every seed, hold the training frames above the recipe's lowest, and give the highest pooled
    held-out size of any committed run but relational_quarter seed 2, with brightness under 0.75."""
    run = HN_RUNS[1]
    lift = _frame_mean_gap(run, run, model="pcclip_hn")
    assert (lift >= 0.04).all() and (_frame_lifts(TODAYS_LEVERS).loc["hard_negatives"] >= 0.04).all()
    rows = _rows("03_ranking_eval", run)
    size = seed_rows(rows, "structures", ("marked_roles",), ("size",)).pivot(index="seed", columns="model",
                                                                           values="value")
    assert (size.pcclip_hn > size.pcclip).all()
    lowest = _training_frames(rows).groupby("model").value.min()
    assert lowest["pcclip_hn"] > lowest["pcclip"] >= 0.95
    held = seed_rows(rows.query("model == 'pcclip_hn'"), "structures", ("heldout_frames",), ("size", "brightness"))
    held = held.set_index(["attribute", "seed"]).value
    assert held["brightness"].max() < 0.75 and held["size"].idxmax() == 2
    everywhere = _committed_heldout_frames().query("attribute == 'size'")
    # hard_negatives_quarter's `pcclip` is relational_quarter's run again (a test checks it): one run, not two
    again = ((everywhere.tree == f"{TODAYS_LEVERS.name}/hard_negatives_quarter/diffworld")
             & (everywhere.model == "pcclip"))
    best = everywhere[~again].set_index(["tree", "file"]).accuracy.sort_values(ascending=False)
    assert best.index[0] == ("diffworld-levers/relational_quarter/diffworld", "03_structures.seed2.csv")
    assert best.iloc[1] == pytest.approx(held["size", 2], abs=1e-6)
    said = _paragraph("- *They lift the mean of the frames on pretrain seed 1 too*")
    assert "the marked-roles family rises on every seed on size" in said
    assert "the highest pooled held-out size of any committed run but `relational_quarter`'s seed 2" in said


# hard negatives beside the recipe on the three relational base models: the main run's (today's lever study), then
# the base-model study's pretrain seeds 1 and 2
HN_BASE_MODELS = ("diffworld-levers/hard_negatives/diffworld", HN_RUNS[1], HN_RUNS[2])


def test_hard_negatives_lift_the_frames_least_where_the_recipe_is_strongest():
    """README, Finetuning, "Hard negatives on the other base models": on pretrain seed 2 the mean of the frames moves
    by less than 0.02 (held-out brightness up on every seed, size down on seeds 1 and 2, the change frame backwards on
    every seed); over the three base models the recipe's mean rises as the lift falls, on size and brightness, the
    means with hard negatives lie within 0.06 and the recipe's more than 0.13 apart, and held-out brightness stays
    under 0.86 on every seed of every base model."""
    assert (_frame_mean_gap(HN_RUNS[2], HN_RUNS[2], model="pcclip_hn").abs() < 0.02).all()
    rows = _rows("03_ranking_eval", HN_RUNS[2])
    held = seed_rows(rows, "structures", ("heldout_frames",), ("size", "brightness"))
    rise = held.pivot_table(index=["attribute", "seed"], columns="model", values="value").eval("pcclip_hn > pcclip")
    assert rise["brightness"].all() and rise["size"].tolist() == [True, False, False]
    change = seed_rows(rows.query("model == 'pcclip_hn'"), "structures", ("change",), ("size", "brightness"))
    assert (change.value < 0.5).all() and len(change) == 6
    recipe = pd.DataFrame([_frame_means(run).mean() for run in HN_BASE_MODELS])[["size", "brightness"]]
    hard = pd.DataFrame([_frame_means(run, "pcclip_hn").mean() for run in HN_BASE_MODELS])[["size", "brightness"]]
    assert recipe.apply(lambda c: c.is_monotonic_increasing).all()
    assert (hard - recipe).apply(lambda c: c.is_monotonic_decreasing).all()
    assert ((hard.max() - hard.min()) < 0.06).all() and ((recipe.max() - recipe.min()) > 0.13).all()
    brightness = pd.concat([seed_rows(_rows("03_ranking_eval", run).query("model == 'pcclip_hn'"), "structures",
                                      ("heldout_frames",), ("brightness",)) for run in HN_BASE_MODELS])
    assert len(brightness) == 9 and brightness.value.max() < 0.86
    seconds = pd.concat([_by_model(_rows("02_finetune", run), task="training", metric="seconds")
                         for run in HN_RUNS.values()])
    said = _paragraph("- *They lift the mean of the frames on pretrain seed 1 too*")
    assert (f"took {seconds.pcclip_hn.min():.0f}-{seconds.pcclip_hn.max():.0f} s against "
            f"{seconds.pcclip.min():.0f}-{seconds.pcclip.max():.0f} s for `pcclip`") in said
    assert "less than 0.02" in said and "within 0.06" in said and "more than 0.13" in said
    assert "under 0.86 on every seed of every base model" in said


# finetune.caption_weight=1.0 (the lever study's `caption_weight`) on the base-model study's pretrain seeds 1 and 2
CW_RUNS = {seed: f"diffworld-caption-weight/pretrain{seed}/diffworld" for seed in (1, 2)}


def test_the_caption_terms_lift_belongs_to_the_main_runs_base_model():
    """README, Finetuning, "Four times the caption term on the other base models": on pretrain seeds 1 and 2 the mean
    of the frames moves by less than 0.01 on size and falls on brightness (by more than 0.05 on pretrain seed 1), where
    on the main run's base model it rose by more than 0.14 on both; only hard negatives lift the frames by 0.04 or more
    on more than one of the three base models, not the broad grammar (the one-seed 0.90 is checked with the lever
    study)."""
    today = _frame_lifts(TODAYS_LEVERS)
    assert (today.loc["caption_weight"] > 0.14).all()
    gap = {seed: _frame_mean_gap(run, BASE_MODEL_RUNS[seed]) for seed, run in CW_RUNS.items()}
    assert abs(gap[1]["size"]) < 0.01 and gap[1]["brightness"] < -0.05
    assert abs(gap[2]["size"]) < 0.01 and gap[2]["brightness"] < 0
    caption = [today.loc["caption_weight"], gap[1], gap[2]]
    hard = [today.loc["hard_negatives"],
            *(_frame_mean_gap(run, run, model="pcclip_hn") for run in HN_RUNS.values())]
    broad = [_frame_mean_gap(run, base) for run, base in zip(BROAD_RELATIONAL, BASE_MODEL_RUNS)]
    relational = [today.loc["relational_captions"],
                  *(_frame_mean_gap(run, BASE_MODEL_RUNS[seed]) for seed, run in RC_RUNS.items())]
    quarter = [today.loc["relational_quarter"],
               *(_frame_mean_gap(run, BASE_MODEL_RUNS[seed]) for seed, run in RQ_RUNS.items())]
    lifted = [sum((lift >= 0.04).all() for lift in lifts) for lifts in (caption, hard, broad, relational, quarter)]
    assert lifted == [1, 2, 1, 2, 1] and (quarter[0] >= 0.04).all()
    said = _paragraph("- *The lift does not carry over to pretrain seed 1 or 2.*")
    assert "less than 0.01 on size and falls on brightness (by more than 0.05 on pretrain seed 1)" in said
    assert ("hard negatives and a relational caption term at half (below) lift the frames on two, a quarter on one, "
            "none on all three") in said


# finetune.relational_captions=0.5 (the lever study's `relational_captions`) on the base-model study's pretrain seeds
# 1 and 2
RC_RUNS = {seed: f"diffworld-relational-captions/pretrain{seed}/diffworld" for seed in (1, 2)}
# finetune.relational_captions=0.25 (the lever study's `relational_quarter`) on the same two
RQ_RUNS = {seed: f"diffworld-relational-quarter/pretrain{seed}/diffworld" for seed in (1, 2)}


# A lever on the base-model study's pretrain seeds 1 and 2: its trees, its override, and the models it leaves as they
# were (hard negatives add `pcclip_hn`; caption_weight retrains `pcclip`; a relational caption term every finetuned run)
STUDY_LEVERS = {"hard_negatives": (HN_RUNS, {"finetune.hard_negatives": "true"},
                                   ("base", "pcclip", "pcclip_wa", "caption_ft")),
                "caption_weight": (CW_RUNS, {"finetune.caption_weight": "1.0"}, ("base", "caption_ft")),
                "relational_captions": (RC_RUNS, {"finetune.relational_captions": "0.5"}, ("base",)),
                "relational_quarter": (RQ_RUNS, {"finetune.relational_captions": "0.25"}, ("base",))}


@pytest.mark.parametrize("lever, seed", [(lever, seed) for lever, (runs, *_) in STUDY_LEVERS.items()
                                         for seed in runs])
def test_a_lever_on_a_study_base_model_ran_on_the_studys_base_model(lever, seed):
    """README, Finetuning, the paragraphs on each lever on the other base models: each tree ran notebooks 00-03 with
    the lever's override on the study's pretrain seed, and gave its base model and the rows of the runs the lever
    leaves alone again."""
    runs, overrides, models = STUDY_LEVERS[lever]
    _notebooks_00_to_03(runs[seed], {**overrides, "pretrain.seed": str(seed)})
    _same_rows(RESULTS / runs[seed], RESULTS / BASE_MODEL_RUNS[seed],
               ("00_base_model", "02_finetune", "03_ranking_eval"), models=models)


def _on_three_base_models(lever: str) -> dict[int, str]:
    """pretrain seed -> the tree of a lever of STUDY_LEVERS: today's lever study's (the main run's base model), then
    the base-model study's pretrain seeds 1 and 2."""
    return {0: f"{TODAYS_LEVERS.name}/{lever}/diffworld", **STUDY_LEVERS[lever][0]}


def test_a_relational_caption_term_lifts_where_the_recipe_is_weak_and_costs_training_frames():
    """README, Finetuning, "A relational caption term on the other base models": the mean of the frames rises by more
    than 0.09 on pretrain seed 1 and falls on pretrain seed 2 (size and brightness); frame negation:2 rises on every
    base model and attribute; the training frames fall under 0.95 on finetune seed 2 of the main run's base model and
    of pretrain seed 1 and nowhere else, where the recipe holds them on every seed of all three; no seed at 0.90 on
    both pooled rows; on pretrain seed 1 the highest mean of the frames of any committed tree on brightness, and the
    highest lower of size and brightness."""
    gap = {seed: _frame_mean_gap(run, BASE_MODEL_RUNS[seed]) for seed, run in RC_RUNS.items()}
    assert (gap[1] > 0.09).all() and (gap[2] < 0).all()
    for seed, run in _on_three_base_models("relational_captions").items():
        negation = _frame_means(run).loc["negation:2", ["size", "brightness"]]
        assert (negation > _frame_means(BASE_MODEL_RUNS[seed]).loc["negation:2", ["size", "brightness"]]).all(), seed
        rows = _rows("03_ranking_eval", run).query("model == 'pcclip'")
        lowest = _training_frames(rows).groupby("seed").value.min()
        assert (lowest >= 0.95).tolist() == ([True, True, False] if seed < 2 else [True] * 3), seed
        recipe = _training_frames(_rows("03_ranking_eval", BASE_MODEL_RUNS[seed]).query("model == 'pcclip'"))
        assert recipe.value.min() >= 0.95
        pooled = seed_rows(rows, "structures", ("heldout_frames",), ("size", "brightness"))
        assert (pooled.groupby("seed").value.min() < 0.90).all() and len(pooled) == 6, seed
    frames = _committed_test_rows("03_frames").query("attribute in ['size', 'brightness']")
    means = frames.groupby(["tree", "model", "attribute"]).accuracy.mean().unstack()
    best, later = (RC_RUNS[1], "pcclip"), {(BROAD_ORDER_RUNS[k], "pcclip") for k in (0, 2)}
    earlier = means.drop(index=list(later))
    assert earlier.brightness.idxmax() == best and earlier.min(axis=1).idxmax() == best
    assert set(means.index[means.brightness > means.brightness[best]]) == later
    assert set(means.index[means.min(axis=1) > means.min(axis=1)[best]]) == later
    said = _paragraph("- *It lifts the frames on pretrain seed 1 as on the main run's base model")
    assert "What rises on every base model and attribute is frame negation:2" in said
    assert "was the highest of any committed run on brightness, and its lower attribute the highest of" in said
    assert "until the broad and order grammars together passed it on two base models" in said
    said = _paragraph("- *It costs the training frames on one seed of two base models*")
    assert "(finetune seed 2 on both)" in said and "which the recipe holds on every seed of all three" in said


def test_a_quarter_relational_caption_term_keeps_the_training_frames_on_every_base_model_and_lifts_where_weak():
    """README, Finetuning, "A quarter relational caption term on the other base models": the training frames stay at
    0.95 or more on every seed of all three base models; the mean of the frames rises by more than 0.1 on the main
    run's base model, by more than 0.05 on size and less than 0.01 on brightness on pretrain seed 1, and falls by more
    than 0.03 on pretrain seed 2 (size and brightness); the three base models' means with a quarter lie within 0.04,
    the recipe's more than 0.13 apart; no seed of pretrain seeds 1 and 2 at 0.90 on both pooled rows; the quoted run
    times span both trees."""
    runs = _on_three_base_models("relational_quarter")
    for seed, run in runs.items():
        assert _training_frames(_rows("03_ranking_eval", run).query("model == 'pcclip'")).value.min() >= 0.95, seed
    gap = {seed: _frame_mean_gap(run, BASE_MODEL_RUNS[seed]) for seed, run in runs.items()}
    assert (gap[0] > 0.1).all() and (gap[2] < -0.03).all()
    assert gap[1]["size"] > 0.05 and 0 < gap[1]["brightness"] < 0.01
    quarter = pd.DataFrame([_frame_means(run).mean() for run in runs.values()])[["size", "brightness"]]
    recipe = pd.DataFrame([_frame_means(run).mean() for run in BASE_MODEL_RUNS])[["size", "brightness"]]
    assert ((quarter.max() - quarter.min()) < 0.04).all() and ((recipe.max() - recipe.min()) > 0.13).all()
    for run in RQ_RUNS.values():
        pooled = seed_rows(_rows("03_ranking_eval", run).query("model == 'pcclip'"), "structures",
                           ("heldout_frames",), ("size", "brightness"))
        assert (pooled.groupby("seed").value.min() < 0.90).all() and len(pooled) == 6, run
    seconds = {seed: _by_model(_rows("02_finetune", run), task="training", metric="seconds").pcclip
               for seed, run in RQ_RUNS.items()}
    assert seconds[1].min() <= seconds[2].min() and seconds[2].max() >= seconds[1].max()
    said = _paragraph("- *Its lift belongs to where the recipe is weakest*")
    assert "by more than 0.05 on size and less than 0.01 on brightness on pretrain seed 1" in said
    assert "falls by more than 0.03 on both" in said and "within 0.04 of each other" in said
    assert "more than 0.13 apart" in said
    said = _paragraph("- *A quarter relational (`relational_quarter`")
    assert "lifts the frames on neither by 0.04 on both attributes" in said
    said = _paragraph("- **Held-out structures**")
    assert "a quarter keeps the training frames on all three but lifts the frames by 0.04 on both attributes" in said


BROAD_RUN = "diffworld-broad/diffworld"  # synthesis.broad_frames on the plain pretrain seed 0 base model (README)


def _frame_means(run: str, model: str = "pcclip") -> pd.DataFrame:
    """A model's per-frame held-out accuracy (notebook 03's task=frames rows, test pairs), mean over the finetune
    seeds: one row per frame, one column per attribute."""
    rows = _rows("03_ranking_eval", run)
    rows = rows[(rows.task == "frames") & (rows.model == model) & (rows.split == "test")
                & (rows.metric == "accuracy")]
    assert rows.seed.nunique() == 3, run
    return rows.groupby(["variant", "attribute"]).value.mean().unstack()


def _frame_mean_gap(run: str, baseline: str, model: str = "pcclip") -> pd.Series:
    """The mean of `model`'s held-out frames' own rows in `run` minus `pcclip`'s in `baseline`, size and brightness."""
    return (_frame_means(run, model).mean() - _frame_means(baseline).mean())[["size", "brightness"]]


def test_the_broad_grammar_moves_which_held_out_frames_are_learned_not_how_many():
    """README, Finetuning, "Broad grammar": on the plain-caption base model of pretrain seed 0 (the main run's until
    session 27) with other difference data, comparative:6
    is learned on every seed and change:2 read backwards on every seed; three frames rise and two fall on every
    attribute; the mean of the frames stays within 0.02 on size and brightness while the pooled rows fall; the
    training frames reach 0.95 on one seed (the core grammar: two)."""
    _notebooks_00_to_03(BROAD_RUN, {"synthesis.broad_frames": "true"})
    core_run = PLAIN_RUNS[0]
    assert base_fingerprint(RunPaths(RESULTS / BROAD_RUN)) == base_fingerprint(RunPaths(RESULTS / core_run))
    assert (RESULTS / BROAD_RUN / "metrics/01_phrasings.csv").read_bytes() != (
        RESULTS / core_run / "metrics/01_phrasings.csv").read_bytes()
    rows = _rows("03_ranking_eval", BROAD_RUN)
    per_seed = rows[(rows.task == "frames") & (rows.model == "pcclip") & (rows.split == "test")
                    & (rows.metric == "accuracy")].set_index("variant")
    assert per_seed.loc["comparative:6"].value.min() > 0.99 and per_seed.loc["change:2"].value.max() < 0.05
    broad, core = _frame_means(BROAD_RUN), _frame_means(core_run)
    assert (broad.loc[["two_clause:2", "superlative:2", "negation:3"]] > core.loc[["two_clause:2", "superlative:2",
                                                                                 "negation:3"]]).all().all()
    assert (broad.loc[["marked_roles:2", "inverted:3"]] < core.loc[["marked_roles:2", "inverted:3"]]).all().all()
    pooled = {run: seed_rows(_rows("03_ranking_eval", run).query("model == 'pcclip'"), "structures",
                             ("heldout_frames",), ("size", "brightness")).groupby("attribute").value.mean()
              for run in (BROAD_RUN, core_run)}
    for attribute in ("size", "brightness"):
        assert abs(broad[attribute].mean() - core[attribute].mean()) < 0.02, attribute
        assert pooled[BROAD_RUN][attribute] < pooled[core_run][attribute], attribute
    assert _shortfalls((BROAD_RUN, core_run)) == [(BROAD_RUN, 0), (BROAD_RUN, 2), (core_run, 0)]
    said = _paragraph("It moves which frames are learned, not how many")
    assert "two_clause:2, superlative:2 and negation:3 rise on the mean" in said
    assert "marked_roles:2 and inverted:3 fall as well" in said
    assert "reach 0.95 on one seed of three (core: two)" in said


# synthesis.broad_frames with today's recipe on the three relational base models (README, "Broad grammar on the
# relational base models"): the main run's base model (with hard negatives beside it), then the study's two
BROAD_RELATIONAL = tuple(f"diffworld-broad-relational/pretrain{seed}/diffworld" for seed in (0, 1, 2))


def test_the_broad_grammar_on_the_relational_base_models_reads_as_the_readme_says():
    """README, Finetuning, "Broad grammar on the relational base models": on the base models of the main run and the
    base-model study, other difference data; the mean of the frames rises by at least 0.09 on the main run's base
    model and moves by under 0.025 on the other two; four frames rise and change:2 falls on every base model and
    attribute, read backwards on eight runs of nine; the pooled rows stay under 0.90 somewhere on each; the training
    frames miss on one run; with hard negatives beside it the frames fall under either lever alone."""
    _notebooks_00_to_03(BROAD_RELATIONAL[0], {"synthesis.broad_frames": "true", "finetune.hard_negatives": "true"},
                        pretrained=False)
    for seed, run in enumerate(BROAD_RELATIONAL[1:], 1):
        _notebooks_00_to_03(run, {"pretrain.seed": str(seed), "synthesis.broad_frames": "true"})
    lifts, change, pooled = [], [], {}
    for run, recipe in zip(BROAD_RELATIONAL, BASE_MODEL_RUNS):
        assert base_fingerprint(RunPaths(RESULTS / run)) == base_fingerprint(RunPaths(RESULTS / recipe)), run
        assert (RESULTS / run / "metrics/01_phrasings.csv").read_bytes() != (
            RESULTS / recipe / "metrics/01_phrasings.csv").read_bytes(), run
        broad, core = _frame_means(run), _frame_means(recipe)
        lifts.append(_frame_mean_gap(run, recipe))
        rising = ["marked_roles:2", "marked_roles:3", "negation:2", "two_clause:2"]
        assert (broad.loc[rising, ["size", "brightness"]] > core.loc[rising, ["size", "brightness"]]).all().all(), run
        assert (broad.loc["change:2", ["size", "brightness"]] < core.loc["change:2", ["size", "brightness"]]).all()
        rows = _rows("03_ranking_eval", run).query("model == 'pcclip'")
        change += seed_rows(rows, "structures", ("change",), ("size",)).value.tolist()
        pooled |= {(run, seed): value for seed, value in seed_rows(rows, "structures", ("heldout_frames",), (
            "size",)).set_index("seed").value.items()}
    assert (lifts[0] >= 0.09).all() and all((lift.abs() < 0.025).all() for lift in lifts[1:])
    assert len(change) == 9 and sum(value <= 0.001 for value in change) == 8 and max(change) > 0.5
    assert _shortfalls(BROAD_RELATIONAL) == [(BROAD_RELATIONAL[1], 0)]  # and each under 0.90 on some held-out row
    assert max(pooled, key=pooled.get) == (BROAD_RELATIONAL[0], 1)  # the best seed the README names
    with_hn = _frame_means(BROAD_RELATIONAL[0], "pcclip_hn").mean()
    alone = _frame_means(BROAD_RELATIONAL[0]).mean()
    hn_alone = _frame_means(str((TODAYS_LEVERS / "hard_negatives/diffworld").relative_to(RESULTS)), "pcclip_hn").mean()
    assert all(with_hn[a] < min(alone[a], hn_alone[a]) for a in ("size", "brightness"))
    said = _paragraph("- *It lifts the held-out frames on one base model of three")
    assert "four frames rise on every base model and attribute (marked_roles:2, marked_roles:3, negation:2," in said
    assert "read backwards (size at most 0.001) on eight runs of nine" in said
    assert "the two levers do not add up" in said and "(pretrain seed 1, finetune seed 0:" in said


# synthesis.order_frames with today's recipe on the three relational base models (README, Finetuning, "Order grammar")
ORDER_RUNS = tuple(f"diffworld-order/pretrain{seed}/diffworld" for seed in (0, 1, 2))


def test_the_order_grammar_mends_the_change_frame_and_costs_another_on_every_base_model():
    """README, Finetuning, "Order grammar": on the base models of the main run and the base-model study, other
    difference data; change:2 rises on every base model, size and brightness, and reads at least 0.44 on every seed;
    inverted:3 reads 1.00 (to two places) on every base model's mean and marked_roles:2 falls on every one; the mean
    of the frames rises on the first two base models and falls on the third; no pooled row reaches 0.90, and the
    training frames slip under 0.95 on one seed of each base model, where the recipe holds them on all nine."""
    for seed, run in enumerate(ORDER_RUNS):
        _notebooks_00_to_03(run, {"synthesis.order_frames": "true"} | ({"pretrain.seed": str(seed)} if seed else {}))
    gaps = []
    for run, recipe in zip(ORDER_RUNS, BASE_MODEL_RUNS):
        assert base_fingerprint(RunPaths(RESULTS / run)) == base_fingerprint(RunPaths(RESULTS / recipe)), run
        assert (RESULTS / run / "metrics/01_phrasings.csv").read_bytes() != (
            RESULTS / recipe / "metrics/01_phrasings.csv").read_bytes(), run
        order, core = (_frame_means(r)[["size", "brightness"]] for r in (run, recipe))
        assert (order.loc["change:2"] > core.loc["change:2"]).all() and (core.loc["change:2"] < 0.3).all(), run
        assert (order.loc["inverted:3"].round(2) == 1.0).all(), run
        assert (order.loc["marked_roles:2"] < 0.5).all() and (order.loc["marked_roles:2"] < core.loc[
            "marked_roles:2"]).all(), run
        gaps.append(_frame_mean_gap(run, recipe))
        frames = seed_rows(_rows("03_ranking_eval", run).query("model == 'pcclip'"), "frames", ("change:2",),
                           ("size", "brightness"))
        assert len(frames) == 6 and frames.value.min() > 0.44, run
        pooled = seed_rows(_rows("03_ranking_eval", run).query("model == 'pcclip'"), "structures",
                           ("heldout_frames",), ("size", "brightness"))
        assert len(pooled) == 6 and pooled.value.max() < 0.90, run
    assert (gaps[0] > 0.05).all() and (gaps[1] > 0.04).all() and ((-0.02 < gaps[2]) & (gaps[2] < 0)).all()
    assert _shortfalls(ORDER_RUNS) == [(ORDER_RUNS[0], 0), (ORDER_RUNS[1], 0), (ORDER_RUNS[2], 2)]
    assert _shortfalls(BASE_MODEL_RUNS) == []
    said = _paragraph("- *It lifts the mean of the frames where the recipe is weakest*")
    assert ("(pretrain seed 0, finetune seed 0; pretrain seed 1, finetune seed 0; pretrain seed 2, finetune seed 2)"
            in said)


# both further grammars together on the same three base models (README, Finetuning, "Broad and order grammars together")
BROAD_ORDER_RUNS = tuple(f"diffworld-broad-order/pretrain{seed}/diffworld" for seed in (0, 1, 2))


def test_the_broad_and_order_grammars_together_lift_every_base_model_but_miss_the_target():
    """README, Finetuning, "Broad and order grammars together": the mean of the frames rises on every base model, on
    pretrain seed 2 by more than 0.06 where no earlier change run on it raised it by more than 0.025; more than either
    grammar alone on pretrain seeds 0 and 2, less than the order grammar on size on seed 1; change:2 read backwards on
    two seeds of pretrain seed 1; no pooled row at 0.90; the training frames slip on two seeds of pretrain seed 1."""
    for seed, run in enumerate(BROAD_ORDER_RUNS):
        _notebooks_00_to_03(run, {"synthesis.broad_frames": "true", "synthesis.order_frames": "true"} | (
            {"pretrain.seed": str(seed)} if seed else {}))
        assert base_fingerprint(RunPaths(RESULTS / run)) == base_fingerprint(RunPaths(RESULTS / BASE_MODEL_RUNS[seed]))
    gaps = [_frame_mean_gap(run, recipe) for run, recipe in zip(BROAD_ORDER_RUNS, BASE_MODEL_RUNS)]
    assert all((gap > 0.06).all() for gap in gaps)
    earlier = [(STUDY_LEVERS[lever][0][2], "pcclip_hn" if lever == "hard_negatives" else "pcclip")
               for lever in STUDY_LEVERS] + [(BROAD_RELATIONAL[2], "pcclip"), (ORDER_RUNS[2], "pcclip")]
    assert len(earlier) == 6 and all((_frame_mean_gap(run, BASE_MODEL_RUNS[2], model) < 0.025).all()
                                     for run, model in earlier)
    for k in (0, 2):
        pair, alone = _frame_means(BROAD_ORDER_RUNS[k]).mean(), [_frame_means(r[k]).mean() for r in (
            BROAD_RELATIONAL, ORDER_RUNS)]
        assert all(pair[a] > max(x[a] for x in alone) for a in ("size", "brightness")), k
    assert _frame_means(BROAD_ORDER_RUNS[1]).mean()["size"] < _frame_means(ORDER_RUNS[1]).mean()["size"]
    change = seed_rows(_rows("03_ranking_eval", BROAD_ORDER_RUNS[1]).query("model == 'pcclip'"), "frames",
                       ("change:2",), ("size",)).set_index("seed").value
    assert [int(seed) for seed, value in change.items() if value < 0.5] == [0, 2]
    for run in BROAD_ORDER_RUNS:
        pooled = seed_rows(_rows("03_ranking_eval", run).query("model == 'pcclip'"), "structures",
                           ("heldout_frames",), ("size", "brightness"))
        assert len(pooled) == 6 and pooled.value.max() < 0.90, run
    assert _shortfalls(BROAD_ORDER_RUNS) == [(BROAD_ORDER_RUNS[1], 0), (BROAD_ORDER_RUNS[1], 2)]
    frames = _committed_test_rows("03_frames").query("attribute in ['size', 'brightness']")
    means = frames.groupby(["tree", "model", "attribute"]).accuracy.mean().unstack()
    top = (BROAD_ORDER_RUNS[2], "pcclip")
    assert means["size"].idxmax() == top and means["brightness"].idxmax() == top
    assert set(means.min(axis=1).astype(float).nlargest(2).index) == {top, (BROAD_ORDER_RUNS[0], "pcclip")}



def test_the_held_out_frames_row_weighs_its_frames_as_its_pool_fell():
    """README, Finetuning: the 16 sentences of the pooled held-out-frames row, by frame (`pool_frames`)."""
    from collections import Counter

    from pcclip.evaluation.diffworld_sets import pool_frames

    size, brightness = (Counter(pool_frames(a, "heldout_frames")) for a in ("size", "brightness"))
    assert size["marked_roles:2"] == 4 and size["comparative:6"] == 0 and brightness["negation:2"] == 4
    assert size["change:2"] == 2 and max(size.values()) == 4
    said = _paragraph("The held-out-frames row weighs its frames by chance")
    assert "marked_roles:2 writes 4 of the 16 sentences and comparative:6 none" in said
    assert "in the brightness row negation:2 writes 4 of the 16" in said
    assert "the size pool leans on marked_roles:2 and change:2 and holds no comparative:6" in _paragraph(
        "It moves which frames are learned")
