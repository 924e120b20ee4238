"""Checking a rerun against the results a git revision holds (`make check-reproduce`): `make reproduce` writes over
the working tree's results/<profile>, so the committed run is read back from git."""
from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest

from pcclip.committed import committed_results
from pcclip.paths import RESULTS_ENV, repo_root
from pcclip.report import FINETUNE_SEEDS, main

ROOT = repo_root()


def _at_head(path: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, check=True).stdout


def test_the_committed_folders_are_written_as_head_holds_them_and_absent_optional_ones_skipped(tmp_path):
    commit = committed_results("HEAD", ["diffworld-base-seeds"], tmp_path, optional=["no-such-profile"])
    assert commit == subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout.strip()
    for name in ("over_base_models.csv", "summary.md", "pretrain1/diffworld/manifest.json"):
        path = f"diffworld-base-seeds/{name}"
        assert (tmp_path / path).read_bytes() == _at_head(f"results/{path}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diffworld-base-seeds"]


def test_a_revision_that_is_not_one_or_lacks_the_run_is_named_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"'no-such-rev' is not a git revision of .*name a commit, branch or tag"):
        committed_results("no-such-rev", ["diffworld"], tmp_path)
    with pytest.raises(ValueError, match=r"git revision 'HEAD' \(\w{12}\) holds no results/no-such-profile/: "
                                         r".*git log"):
        committed_results("HEAD", ["no-such-profile"], tmp_path)
    assert not any(tmp_path.iterdir())


def test_check_reproduce_reads_the_main_run_and_study_from_git(tmp_path, monkeypatch, capsys):
    """The committed EPYC fresh clone checked against the main run and study it was checked against (git revision
    d26ed78, the last with the Xeon's main run; the plain-caption main run after it was that clone's run again), with
    $PCCLIP_RESULTS pointing at an empty tree (no main run there to read by mistake): the committed check of that
    clone again, into <results>/diffworld-rerun-check/."""
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    clone = ROOT / "results" / "diffworld-fresh-clone-epyc"
    assert main(["diffworld", "--rerun", str(clone / "diffworld"), "--against", "d26ed78"]) == 0
    out = tmp_path / "diffworld-rerun-check"
    ours, committed = (pd.read_csv(f, keep_default_na=False) for f in (out / "summary.csv", clone / "summary.csv"))
    assert list(ours.columns) == list(committed.columns) and len(ours) == len(committed) > 500
    numbers = ["value", "lo", "hi", "rerun", "pred_lo", "pred_hi"]
    assert np.allclose(ours[numbers].astype(float), committed[numbers].astype(float), atol=1e-6)
    assert (ours.inside_pred == committed.inside_pred).all() and (ours.over == committed.over).all()
    md = (out / "summary.md").read_text()
    assert "`results/diffworld` as git revision `d26ed78 (" in md and "pretrain2/diffworld` as git revision" in md
    assert str(tmp_path) not in md.replace(str(out), "") and "pcclip-committed-" not in md
    assert f"-> {out / 'summary.md'}" in capsys.readouterr().out
    # against 952222c, the last commit whose main run was this clone's run again (README, "A fresh clone of the
    # plain-caption recipe"): every mean inside
    assert main(["diffworld", "--rerun", str(clone / "diffworld"), "--against", "952222c"]) == 0
    again = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert len(again) > 500 and again.inside_pred.all() and again[again.over == FINETUNE_SEEDS].inside.all()


def test_against_without_a_rerun_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["diffworld", "--against", "HEAD"])
    assert "--against REV needs --rerun RUN_FOLDER" in capsys.readouterr().err


def test_a_run_of_one_finetune_seed_has_nothing_to_check_against_and_says_so(tmp_path, monkeypatch):
    """The committed rehearsal ran one finetune seed and has no base-model study: no interval, so a clear error
    instead of an empty check."""
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=r"^`results/rehearsal` as git revision `HEAD \(\w{12}\)` holds it has no 95% "
                                         r"interval to check a rerun against: .*seeds \[0\] and it has no "
                                         r"base-model study.*finetune.seeds=0,1,2"):
        main(["rehearsal", "--rerun", str(ROOT / "results" / "rehearsal"), "--against", "HEAD"])
    assert not (tmp_path / "rehearsal-rerun-check").exists()
