"""The papermill runner: override parsing, validation before any kernel starts, order and manifest."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import papermill
import pytest

import pcclip.pipeline as pipeline
from pcclip.locking import RunLocked
from pcclip.profiles import parse_overrides


def test_parse_overrides():
    assert parse_overrides(["pretrain.steps=50", " finetune.lr = 1e-4 ", "model.pretrained=/a/b=c.pt"]) == {
        "pretrain.steps": "50", "finetune.lr": "1e-4", "model.pretrained": "/a/b=c.pt"}
    assert parse_overrides([]) == {}


@pytest.mark.parametrize("item", ["pretrain.steps", "=50", ""])
def test_malformed_override_is_refused(item):
    with pytest.raises(ValueError, match=f"override {item!r} must look like section.field=value"):
        parse_overrides([item])


@pytest.fixture
def executed(monkeypatch, tmp_path) -> list[dict]:
    """Replaces papermill with a recorder over two fake notebooks: nothing is executed."""
    calls: list[dict] = []
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("00_base_model.ipynb", "01_next.ipynb", "README.md"):
        (folder / name).write_text("{}")
    monkeypatch.setattr(pipeline, "notebooks", lambda: sorted(folder.glob("[0-9][0-9]_*.ipynb")))
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda src, dst, parameters, **kw: calls.append({"src": src, "dst": dst, **parameters}))
    return calls


@pytest.mark.parametrize("profile, overrides, match", [
    ("smoke", {"pretrain.stepz": "1"}, "unknown override 'pretrain.stepz'"),
    ("smoke", {"pretrain.steps": "many"}, "expected int"),
    ("smok", {}, "unknown profile 'smok'"),
])
def test_bad_profile_or_override_fails_before_any_kernel(executed, profile, overrides, match):
    with pytest.raises(ValueError, match=match):
        pipeline.run(profile, overrides)
    assert executed == []
    assert not pipeline.run_paths("smoke").root.exists()  # not even a results folder


def test_cli_with_malformed_set_fails_before_any_kernel(executed):
    with pytest.raises(ValueError, match="must look like section.field=value"):
        pipeline.main(["--profile", "smoke", "--set", "pretrain.steps"])
    assert executed == []


def test_runs_notebooks_in_order_with_profile_and_overrides(executed):
    root = pipeline.run("smoke", {"pretrain.steps": "5"})
    assert [c["src"].rsplit("/", 1)[1] for c in executed] == ["00_base_model.ipynb", "01_next.ipynb"]
    assert all(c["PROFILE"] == "smoke" and c["OVERRIDES"] == {"pretrain.steps": "5"} for c in executed)
    assert executed[0]["dst"] == str(root / "notebooks" / "00_base_model.ipynb")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["profile"] == "smoke" and manifest["overrides"] == {"pretrain.steps": "5"}
    assert sorted(manifest["notebooks"]) == ["00_base_model.ipynb", "01_next.ipynb"]
    assert manifest["seeds"]["pretrain"] == 0 and "torch" in manifest["packages"]


def test_progress_bar_names_the_notebook_unless_quiet(executed, monkeypatch):
    bars = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda src, dst, **kw: bars.append(kw["progress_bar"]))
    monkeypatch.delenv("PCCLIP_QUIET", raising=False)
    pipeline.run("smoke", {})
    assert [(b["desc"], b["unit"]) for b in bars] == [("00_base_model.ipynb", "cell"), ("01_next.ipynb", "cell")]
    monkeypatch.setenv("PCCLIP_QUIET", "1")
    pipeline.run("smoke", {}, only=["00"])
    assert bars[-1] is False


def test_only_selects_notebooks_by_number(executed):
    pipeline.run("smoke", {}, only=["01"])
    assert [c["src"].rsplit("/", 1)[1] for c in executed] == ["01_next.ipynb"]
    with pytest.raises(ValueError, match=r"--only \['07'\]: no such notebook; known numbers: \['00', '01'\]"):
        pipeline.run("smoke", {}, only=["07"])
    with pytest.raises(ValueError, match=r"--only \['99'\]: no such notebook"):  # was dropped silently
        pipeline.run("smoke", {}, only=["00", "99"])
    assert len(executed) == 1


def test_only_keeps_the_other_notebooks_manifest_entries(executed, monkeypatch):
    root = pipeline.run("smoke", {})
    first = json.loads((root / "manifest.json").read_text())["notebooks"]
    monkeypatch.setattr(pipeline, "git_commit", lambda: "abc123")
    pipeline.run("smoke", {"eval.seeds": "3"}, only=["01"])
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["notebooks"]["00_base_model.ipynb"] == first["00_base_model.ipynb"]  # kept as it was
    assert manifest["notebooks"]["01_next.ipynb"]["git_commit"] == "abc123"
    assert manifest["notebooks"]["01_next.ipynb"]["overrides"] == {"eval.seeds": "3"}
    assert manifest["total_seconds"] == round(sum(v["seconds"] for v in manifest["notebooks"].values()), 1)


def test_a_second_pipeline_on_the_profile_fails_before_any_kernel(executed, hold_lock):
    child = hold_lock(pipeline.run_paths("smoke").root)
    with pytest.raises(RunLocked, match=f"pid {child.pid}"):
        pipeline.run("smoke", {})
    assert executed == [] and not pipeline.run_paths("smoke").notebooks.exists()


def test_kernels_inherit_the_lock_and_the_secrets(executed, monkeypatch):
    """A kernel (a child process) takes the lock as the library does and loads the profile with the
    redacted overrides it was given: it must not deadlock and must see the real values."""
    kernel = ("import json, sys; from pcclip.locking import run_lock; from pcclip.paths import run_paths; "
              "from pcclip.profiles import load_profile\n"
              "with run_lock(run_paths('smoke').root):\n"
              "    p = load_profile('smoke', json.loads(sys.argv[1]))\n"
              "print(p.synthesis.base_url, p.synthesis.api_key_env)")
    seen = []

    def execute(src, dst, parameters, **kw):
        done = subprocess.run([sys.executable, "-c", kernel, json.dumps(parameters["OVERRIDES"])], timeout=60,
                              env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
        seen.append(done.stdout.strip())
        executed.append(parameters)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    secret = {"synthesis.base_url": "https://bob:hunter2@llm.example/v1", "synthesis.api_key_env": "sk-abcdef1234567890"}
    root = pipeline.run("smoke", secret | {"eval.seeds": "3"})
    assert seen == ["https://bob:hunter2@llm.example/v1 sk-abcdef1234567890"] * 2
    shown = {"synthesis.base_url": "https://<redacted>@llm.example/v1", "synthesis.api_key_env": "<redacted>",
             "eval.seeds": "3"}
    assert all(p["OVERRIDES"] == shown for p in executed)
    text = (root / "manifest.json").read_text()
    assert "hunter2" not in text and "sk-abcdef" not in text and json.loads(text)["overrides"] == shown


def test_no_notebooks_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no numbered notebooks"):
        pipeline.notebooks(tmp_path)
