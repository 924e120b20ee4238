"""The papermill runner: override parsing, validation before any kernel starts, order and manifest."""
from __future__ import annotations

import ast
import json
import math
import os
import re
import statistics
import subprocess
import sys

import pandas as pd
import papermill
import pytest
import torch
from papermill.translators import PythonTranslator

import pcclip.pipeline as pipeline
from pcclip.locking import RunLocked
from pcclip.profiles import FORCE_ENV, parse_overrides


def test_parse_overrides():
    assert parse_overrides(["pretrain.steps=50", " finetune.lr = 1e-4 ", "model.pretrained=/a/b=c.pt"]) == {
        "pretrain.steps": "50", "finetune.lr": "1e-4", "model.pretrained": "/a/b=c.pt"}
    assert parse_overrides([]) == {}


@pytest.mark.parametrize("item", ["pretrain.steps", "=50", ""])
def test_malformed_override_is_refused(item):
    with pytest.raises(ValueError, match=f"override {item!r} must look like section.field=value"):
        parse_overrides([item])


SOURCE_BRANCH = re.compile(r"\.source\b|[=!]=\s*[\"'](diffworld|paper)")


def test_no_notebook_branches_on_the_profiles_source():
    """One code path: the notebooks leave what differs between DiffWorld and the paper to the library."""
    found, branching = pipeline.notebooks(), {}
    for nb in found:
        cells = json.loads(nb.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        hits = [line for cell in code for line in cell.splitlines() if SOURCE_BRANCH.search(line)]
        if hits:
            branching[nb.name] = hits
    assert len(found) == 7 and not branching


def test_papermill_lists_every_parameter_each_notebook_assigns():
    """`papermill --help-notebook` shows what a user may pass with -p, and papermill warns of an unknown -p name;
    its parser skips a line holding two '=' (an '=' in a comment too), so no parameter may be lost that way."""
    lost = {}
    for nb in pipeline.notebooks():
        cell = next(c for c in json.loads(nb.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
        source = "".join(cell["source"])
        assigned = {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets}
        listed = {p.name for p in PythonTranslator.inspect({"source": source})}
        if assigned - listed or not assigned:
            lost[nb.name] = sorted(assigned - listed) or "no parameters"
    assert not lost


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


def test_runs_notebooks_in_order_with_profile_and_overrides(executed, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = pipeline.run("smoke", {"pretrain.steps": "5"})
    assert [c["src"].rsplit("/", 1)[1] for c in executed] == ["00_base_model.ipynb", "01_next.ipynb"]
    assert all(c["PROFILE"] == "smoke" and c["OVERRIDES"] == {"pretrain.steps": "5"} for c in executed)
    assert executed[0]["dst"] == str(root / "notebooks" / "00_base_model.ipynb")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["profile"] == "smoke" and manifest["overrides"] == {"pretrain.steps": "5"}
    assert sorted(manifest["notebooks"]) == ["00_base_model.ipynb", "01_next.ipynb"]
    assert manifest["seeds"]["pretrain"] == 0 and "torch" in manifest["packages"]
    # what float order depends on: the CPU, the kernels torch chose for it, the threads
    assert f"{torch.backends.cpu.get_cpu_capability()} kernels" in manifest["device"]
    assert manifest["device"].startswith(f"cpu ({pipeline._cpu_name()}, ")
    assert manifest["device"].endswith(f"{torch.get_num_threads()} threads)")


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


def test_only_keeps_the_other_notebooks_manifest_entries(executed, monkeypatch, capsys):
    root = pipeline.run("smoke", {})
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["notebooks"]["00_base_model.ipynb"]["seconds"] = 1000.0  # as a real notebook 00 would take
    (root / "manifest.json").write_text(json.dumps(manifest))
    first = manifest["notebooks"]
    monkeypatch.setattr(pipeline, "git_commit", lambda: "abc123")
    capsys.readouterr()
    pipeline.run("smoke", {"eval.seeds": "3"}, only=["01"])
    # the closing line times this call, and names the run's total apart
    took, total = map(float, re.search(r"done in ([\d.]+) s \(the run's notebooks: ([\d.]+) s\)",
                                       capsys.readouterr().out).groups())
    assert took < 100 and total >= 1000
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["notebooks"]["00_base_model.ipynb"] == first["00_base_model.ipynb"]  # kept as it was
    assert manifest["notebooks"]["01_next.ipynb"]["git_commit"] == "abc123"
    assert manifest["notebooks"]["01_next.ipynb"]["overrides"] == {"eval.seeds": "3"}
    assert manifest["total_seconds"] == round(sum(v["seconds"] for v in manifest["notebooks"].values()), 1)


def test_rerunning_the_report_alone_keeps_the_header_of_the_run_its_metrics_come_from(executed, monkeypatch, tmp_path):
    """The report checks every metrics file against the header's commit: a report rerun at a later commit must not
    move it (that made every file of the run stale), and its own entry says where and when it ran."""
    (tmp_path / "notebooks" / "06_report.ipynb").write_text("{}")
    root = pipeline.run("smoke", {})
    first = json.loads((root / "manifest.json").read_text())
    monkeypatch.setattr(pipeline, "git_commit", lambda: "abc123")
    monkeypatch.setattr(pipeline, "_device", lambda: "cpu (elsewhere)")
    pipeline.run("smoke", {}, only=["06"])
    again = json.loads((root / "manifest.json").read_text())
    header = [k for k in first if k not in ("notebooks", "total_seconds")]
    assert {k: again[k] for k in header} == {k: first[k] for k in header}
    assert again["notebooks"]["06_report.ipynb"]["git_commit"] == "abc123"
    assert again["notebooks"]["06_report.ipynb"]["device"] == "cpu (elsewhere)"
    assert again["notebooks"]["00_base_model.ipynb"] == first["notebooks"]["00_base_model.ipynb"]
    pipeline.run("smoke", {}, only=["00"])  # a notebook that writes metrics: the header is this run's
    third = json.loads((root / "manifest.json").read_text())
    assert (third["git_commit"], third["device"]) == ("abc123", "cpu (elsewhere)")


def test_refreshing_references_keeps_only_the_checked_outputs_of_the_forced_profile(monkeypatch, tmp_path):
    """--refresh-references executes each notebook as nbval does (profile forced) and stores only the outputs of
    NBVAL_CHECK_OUTPUT cells, the references nbval compares; the other cells keep no output and no count."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# n"),
        nbformat.v4.new_code_cell(f"# {pipeline.CHECK_MARK}\nimport os\nprint(os.environ['{FORCE_ENV}'])"),
        nbformat.v4.new_code_cell("print('not a reference')")])
    path = tmp_path / "00_tiny.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setattr(pipeline, "notebooks", lambda: [path])
    monkeypatch.setenv(FORCE_ENV, "paper")  # the call forces smoke for its kernels; restored after the test
    assert pipeline.main(["--refresh-references"]) == 0
    checked, other = nbformat.read(path, as_version=4).cells[1:]
    assert [o["text"] for o in checked.outputs] == ["smoke\n"] and checked.execution_count == 1
    assert other.outputs == [] and other.execution_count is None


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


@pytest.fixture
def seeded_run(monkeypatch, tmp_path) -> list[dict]:
    """Fake notebooks 00, 02, 03 and 06 (02 and 03 per seed); papermill replaced by a recorder."""
    calls: list[dict] = []
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("00_base_model", "02_finetune", "03_ranking_eval", "06_report"):
        (folder / f"{name}.ipynb").write_text("{}")
    monkeypatch.setattr(pipeline, "notebooks", lambda: sorted(folder.glob("[0-9][0-9]_*.ipynb")))
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda src, dst, parameters, **kw: calls.append({"src": src, "dst": dst, **parameters}))
    return calls


def _ran(calls: list[dict]) -> list[tuple[str, str | None]]:
    """(executed notebook file, finetune.seed override) of each call."""
    return [(c["dst"].rsplit("/", 1)[1], c["OVERRIDES"].get("finetune.seed")) for c in calls]


def test_per_seed_notebooks_run_once_per_finetune_seed_under_their_own_names(seeded_run):
    root = pipeline.run("smoke", {"finetune.seeds": "0,2,5", "pretrain.steps": "5"})
    assert _ran(seeded_run) == [("00_base_model.ipynb", None),
                                ("02_finetune.seed0.ipynb", "0"), ("02_finetune.seed2.ipynb", "2"),
                                ("02_finetune.seed5.ipynb", "5"), ("03_ranking_eval.seed0.ipynb", "0"),
                                ("03_ranking_eval.seed2.ipynb", "2"), ("03_ranking_eval.seed5.ipynb", "5"),
                                ("06_report.ipynb", None)]
    assert all(c["OVERRIDES"]["pretrain.steps"] == "5" for c in seeded_run)  # the user's overrides go to every run
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["finetune_seeds"] == [0, 2, 5]
    assert manifest["notebooks"]["02_finetune.seed2.ipynb"]["finetune_seed"] == 2
    assert "finetune_seed" not in manifest["notebooks"]["00_base_model.ipynb"]
    assert len(manifest["notebooks"]) == 8


def test_only_and_seeds_rerun_one_notebook_for_one_seed_keeping_the_others(seeded_run, monkeypatch):
    root = pipeline.run("smoke", {})  # smoke: seeds 0 and 1
    first = json.loads((root / "manifest.json").read_text())["notebooks"]
    seeded_run.clear()
    monkeypatch.setattr(pipeline, "git_commit", lambda: "abc123")
    pipeline.main(["--profile", "smoke", "--only", "03", "--seeds", "1"])
    assert _ran(seeded_run) == [("03_ranking_eval.seed1.ipynb", "1")]
    manifest = json.loads((root / "manifest.json").read_text())["notebooks"]
    assert manifest["03_ranking_eval.seed1.ipynb"]["git_commit"] == "abc123"
    assert manifest["03_ranking_eval.seed0.ipynb"] == first["03_ranking_eval.seed0.ipynb"]
    with pytest.raises(ValueError, match=r"--seeds \[7\]: choose among finetune.seeds=\[0, 1\]"):
        pipeline.run("smoke", {}, seeds=[7])
    pipeline.run("smoke", {"finetune.seeds": "1"}, only=["00"])  # seed 0 dropped: its entries go
    assert sorted(json.loads((root / "manifest.json").read_text())["notebooks"]) == [
        "00_base_model.ipynb", "02_finetune.seed1.ipynb", "03_ranking_eval.seed1.ipynb", "06_report.ipynb"]


def test_a_notebook_declares_itself_per_seed_in_one_place(tmp_path, monkeypatch):
    """setup() names a per-seed notebook's files after finetune.seed; a shared notebook's stay unsuffixed."""
    from pcclip.notebook import setup
    from pcclip.paths import PER_SEED_NOTEBOOKS

    assert set(PER_SEED_NOTEBOOKS) == {"02_finetune", "03_ranking_eval", "04_comparative_prompting",
                                       "05_embedding_geometry"}
    _, paths = setup("smoke", {"finetune.seed": 1}, "03_ranking_eval")
    _, shared = setup("smoke", {"finetune.seed": 1}, "00_base_model")
    assert (paths.named("03_difference"), shared.named("00_zero_shot_per_class")) == (
        "03_difference.seed1", "00_zero_shot_per_class")
    assert paths.finetuned(1) == shared.checkpoints / "seed1" and paths.checkpoints == shared.checkpoints


def _fake_notebook(src, dst, parameters, **kw):
    """A kernel that writes metric rows as the real notebooks do, in the results tree it is given: 03 a held-out
    size accuracy of 0.5 + 0.1 * pretrain seed + 0.01 * finetune seed, 06 the summary."""
    import pandas as pd

    from pcclip.notebook import setup
    from pcclip.report import build_summary, write_summary
    from pcclip.results import metric_rows, write_rows

    name = os.path.basename(src).removesuffix(".ipynb")
    profile, paths = setup(parameters["PROFILE"], parameters["OVERRIDES"], name)
    if name == "06_report":
        write_summary(paths, build_summary(paths))
        return
    value = 0.5 + 0.1 * profile.pretrain.seed + 0.01 * profile.finetune.seed
    table = pd.DataFrame([{"model": "pcclip", "attribute": "size", "split": "holdout", "accuracy": value}])
    write_rows(paths, name, metric_rows(table, ["accuracy"], task="difference" if name == "03_ranking_eval" else "x"),
               profile)


def test_base_study_runs_each_pretrain_seed_into_its_own_tree_and_tabulates_them(fake_kernel):
    from pcclip.paths import base_study_root, run_paths
    from pcclip.profiles import load_profile
    from pcclip.report import base_models_table, base_study_table

    fake_kernel(_fake_notebook)
    assert base_study_table(load_profile("smoke")).empty  # no study yet
    pipeline.run("smoke", {})
    assert pipeline.main(["--profile", "smoke", "--base-study", "3,1"]) == 0  # as `make base-study` runs it
    roots = [base_study_root("smoke", 3) / "smoke", base_study_root("smoke", 1) / "smoke"]
    assert (roots[0] / "metrics" / "03_ranking_eval.seed1.json").is_file() and (roots[0] / "summary.md").is_file()
    assert json.loads((roots[0] / "manifest.json").read_text())["seeds"]["pretrain"] == 3
    assert not (run_paths("smoke").root / "pretrain3").exists()
    table = base_study_table(load_profile("smoke"))
    assert table.pretrain_seed.tolist() == [0, 1, 3]
    assert table.pcclip.tolist() == pytest.approx([0.505, 0.605, 0.805])  # mean over finetune seeds 0 and 1
    assert table.n_seeds.tolist() == [2, 2, 2]
    written = (base_study_root("smoke", None) / "summary.md").read_text()
    assert "| 0.805 [0.741, 0.869] |" in written
    pooled = base_models_table(load_profile("smoke"))  # over the three base models' means
    half = 4.3027 * statistics.stdev([0.505, 0.605, 0.805]) / math.sqrt(3)
    mean = (0.505 + 0.605 + 0.805) / 3
    expected = [mean, mean - half, mean + half]
    assert pooled[["pcclip", "pcclip_lo", "pcclip_hi"]].iloc[0].tolist() == pytest.approx(expected, abs=1e-4)
    assert pooled.n_seeds.tolist() == [3]
    assert f"| {mean:.3f} [{mean - half:.3f}, {mean + half:.3f}] |" in written.split("## Over base models")[1]
    assert pd.read_csv(base_study_root("smoke", None) / "over_base_models.csv").pcclip.round(6).tolist() == \
        [round(mean, 6)]
    with pytest.raises(ValueError, match=r"--base-study \[0\]: give distinct pretrain seeds other than"):
        pipeline.base_study("smoke", {}, [0])


def test_a_base_study_of_some_notebooks_runs_them_and_says_why_it_writes_no_table(fake_kernel, capsys, monkeypatch):
    """--base-study with --only: the chosen notebooks run in the study's tree; the table, which needs every notebook's
    metrics, is not written, and the run says so (naming what is missing) and succeeds; a whole study whose table
    cannot be written still fails."""
    import pcclip.report
    from pcclip.paths import base_study_root
    from pcclip.report import StaleResults

    fake_kernel(_fake_notebook)
    pipeline.run("smoke", {})
    assert pipeline.main(["--profile", "smoke", "--base-study", "2", "--only", "00", "03"]) == 0
    assert (base_study_root("smoke", 2) / "smoke" / "metrics" / "03_ranking_eval.seed1.json").is_file()
    assert not (base_study_root("smoke", None) / "summary.md").exists()
    said = capsys.readouterr().out
    assert "base-model study: ran notebooks 00 03 only, so its table is not written" in said
    assert "02_finetune.seed0.json is missing" in said
    def stale(profile):
        raise StaleResults("a stale tree")

    monkeypatch.setattr(pcclip.report, "write_base_study", stale)
    with pytest.raises(StaleResults, match="a stale tree"):
        pipeline.base_study("smoke", {}, [2])
