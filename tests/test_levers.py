"""The lever study: each lever's notebooks 02 and 03 in its own tree, on copies of the main run's base model and
data, and its table over seeds."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest

import pcclip.pipeline as pipeline
from pcclip.levers import LEVERS, family_seeds, lever_table, levers, overview
from pcclip.paths import lever_root, run_paths
from pcclip.profiles import load_profile


def test_every_lever_is_a_valid_set_of_overrides_of_both_profiles_that_run_it():
    for lever in LEVERS:
        for profile in ("diffworld", "smoke"):
            loaded = load_profile(profile, lever.overrides)
            for key, value in lever.overrides.items():
                section, name = key.split(".")
                assert str(getattr(getattr(loaded, section), name)).lower() == value.lower()
            assert loaded.finetune.hard_negatives == (lever.model == "pcclip_hn"), lever.name  # its rows exist
    assert LEVERS[0].name == "recipe" and not LEVERS[0].overrides  # the baseline comes first


def test_levers_are_chosen_by_name_in_the_order_given():
    assert [lever.name for lever in levers(["blocks", "recipe"])] == ["blocks", "recipe"]
    assert levers(None) == LEVERS
    for bad in (["recipe", "recipe"], ["nope"], []):
        with pytest.raises(ValueError, match=r"--levers .*: give distinct names among \['recipe', 'hard_negatives'"):
            levers(bad)


def _fake_notebook(src, dst, parameters, **kw):
    """A kernel that writes what the table reads: 03 held-out frames of size 0.5 + caption_weight / 10 + 0.01 *
    finetune seed for pcclip (0.9 for pcclip_hn), 02 a zero-shot accuracy; 00 a base model and data."""
    from pcclip.notebook import setup
    from pcclip.results import metric_rows, write_rows

    name = os.path.basename(src).removesuffix(".ipynb")
    profile, paths = setup(parameters["PROFILE"], parameters["OVERRIDES"], name)
    if name == "00_base_model":
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        (paths.checkpoints / "base.pt").write_bytes(b"weights")
        (paths.data / "store").mkdir(parents=True, exist_ok=True)
        (paths.data / "store" / "pairs.jsonl").write_text("{}\n")
        write_rows(paths, name, metric_rows({"model": "base", "acc1": 0.5}, ["acc1"], task="zero_shot"), profile,
                   info={"fingerprint": "f00d"})
        return
    if name not in ("02_finetune", "03_ranking_eval"):
        return
    assert (paths.checkpoints / "base.pt").read_bytes() == b"weights"  # every lever finetunes the main base
    value = 0.5 + profile.finetune.caption_weight / 10 + 0.01 * profile.finetune.seed
    if name == "02_finetune":
        table = pd.DataFrame([{"model": m, "attribute": "shape", "split": "test", "acc1": 0.3}
                              for m in ("pcclip", "pcclip_hn")])
        rows = metric_rows(table, ["acc1"], task="zero_shot")
    else:
        table = pd.DataFrame([{"model": m, "attribute": a, "split": "test", "variant": "heldout_frames",
                               "accuracy": 0.9 if m == "pcclip_hn" else value}
                              for m in ("pcclip", "pcclip_hn") for a in ("size", "brightness")])
        rows = metric_rows(table, ["accuracy"], task="structures")
    write_rows(paths, name, rows, profile)


def test_the_lever_study_retrains_each_lever_on_the_main_base_and_tabulates_its_seeds(fake_kernel):
    fake_kernel(_fake_notebook)
    with pytest.raises(FileNotFoundError, match=r"the lever study starts from the main run's base model and data"):
        pipeline.lever_study("smoke", {}, ["recipe"])
    assert lever_table("smoke").empty
    assert overview(lever_table("smoke")).empty and family_seeds(lever_table("smoke")).empty  # notebook 06 before
    pipeline.run("smoke", {}, only=["00"])
    assert pipeline.main(["--profile", "smoke", "--levers", "recipe,caption_weight,hard_negatives",
                          "--seeds", "0,1"]) == 0  # as `make levers` runs it
    tree = lever_root("smoke", "caption_weight") / "smoke"
    assert sorted(p.name for p in (tree / "metrics").iterdir()) == [
        "00_base_model.json", "02_finetune.seed0.json", "02_finetune.seed1.json", "03_ranking_eval.seed0.json",
        "03_ranking_eval.seed1.json"]
    manifest = json.loads((tree / "manifest.json").read_text())
    assert manifest["overrides"] == {"finetune.caption_weight": "1.0"}
    assert (tree / "data" / "store" / "pairs.jsonl").is_file() and not (run_paths("smoke").root / "recipe").exists()
    assert (tree / "metrics" / "00_base_model.json").read_bytes() == \
        (run_paths("smoke").metrics / "00_base_model.json").read_bytes()  # names the base model it holds

    table = lever_table("smoke")
    size = table[(table.attribute == "size") & (table.task == "structures")]
    assert size.groupby("lever", sort=False).model.first().to_dict() == {
        "recipe": "pcclip", "caption_weight": "pcclip", "hard_negatives": "pcclip_hn"}
    means = size[size.seed == "mean"].set_index("lever")
    # recipe: caption_weight 0.25 of smoke; seeds 0 and 1 add 0 and 0.01
    assert means.value.to_dict() == pytest.approx({"recipe": 0.53, "caption_weight": 0.605, "hard_negatives": 0.9})
    assert means.n_seeds.tolist() == [2, 2, 2]
    half = 12.7062 * 0.005  # t(0.975, 1) * sd / sqrt(2) of (0.525, 0.535)
    assert means.loc["recipe", ["lo", "hi"]].tolist() == pytest.approx([0.53 - half, 0.53 + half], abs=1e-4)
    lines = overview(table).set_index("lever")
    assert lines.loc["caption_weight", "held-out frames, size"] == "0.600 / 0.610"
    assert lines.loc["hard_negatives", "seeds"] == "0,1" and lines.loc["recipe", "zero-shot shape"] == 0.3
    drawn = family_seeds(table)  # notebook 06's figure: per lever, family, attribute and seed
    assert len(drawn) == 3 * 2 * 2 and set(drawn.variant) == {"heldout_frames"}
    assert drawn[(drawn.lever == "caption_weight") & (drawn.attribute == "size")].value.tolist() == \
        pytest.approx([0.6, 0.61])
    written = (lever_root("smoke", None) / "summary.md").read_text()
    assert "| caption_weight | pcclip | f00d | 0,1 | 0.600 / 0.610 |" in written
    assert pd.read_csv(lever_root("smoke", None) / "summary.csv").lever.unique().tolist() == [
        "recipe", "hard_negatives", "caption_weight"]  # LEVERS order


def test_a_lever_tree_keeps_its_base_model_and_is_named_only_by_the_main_runs_own(tmp_path):
    from pcclip.levers import seed_tree
    from pcclip.paths import RunPaths

    main, tree = RunPaths(tmp_path / "main"), RunPaths(tmp_path / "lever")
    main.checkpoints.mkdir(parents=True)
    main.data.mkdir()
    (main.checkpoints / "base.pt").write_bytes(b"weights")
    with pytest.raises(FileNotFoundError, match=r"main/metrics/00_base_model.json do not exist: run the main run"):
        seed_tree(main, tree)
    main.metrics.mkdir()
    (main.metrics / "00_base_model.json").write_text('{"info": {"fingerprint": "f00d"}}')
    main.finetuned(1).mkdir()
    (main.finetuned(1) / "pcclip.pt").write_bytes(b"finetuned")  # reused where the lever leaves its recipe
    (main.finetuned(1) / "pcclip_state-abc.pt").write_bytes(b"a crashed run's state")  # not a run: left behind
    seed_tree(main, tree)
    assert (tree.checkpoints / "base.pt").read_bytes() == b"weights" and not list(tree.root.rglob(".*.tmp"))
    assert [p.name for p in tree.finetuned(1).iterdir()] == ["pcclip.pt"]
    (main.checkpoints / "base.pt").write_bytes(b"a new base model")  # the main run was rerun: the tree keeps its own
    seed_tree(main, tree)
    assert (tree.checkpoints / "base.pt").read_bytes() == b"weights"
    (tree.metrics / "00_base_model.json").unlink()  # and can no longer be named by the main run's notebook 00
    with pytest.raises(ValueError, match=r"lever/checkpoints/base.pt is not the main run's base model"):
        seed_tree(main, tree)
    (main.checkpoints / "base.pt").write_bytes(b"weights")  # the same base model again: only its name is copied
    (main.data / "new.jsonl").write_text("{}\n")
    seed_tree(main, tree)
    assert json.loads((tree.metrics / "00_base_model.json").read_text())["info"]["fingerprint"] == "f00d"
    assert not (tree.data / "new.jsonl").exists()


@pytest.mark.parametrize("argv, names, seeds", [
    (["--levers"], None, None), (["--levers", "--seeds", "0,1"], None, [0, 1]),
    (["--levers", "blocks,recipe"], ["blocks", "recipe"], None)])
def test_make_levers_passes_its_names_and_seeds(monkeypatch, argv, names, seeds):
    """`make levers` with LEVERS empty gives a bare --levers: every lever."""
    called = []
    monkeypatch.setattr(pipeline, "lever_study", lambda *args: called.append(args))
    assert pipeline.main(["--profile", "smoke", *argv]) == 0
    assert called == [("smoke", {}, names, seeds)]
