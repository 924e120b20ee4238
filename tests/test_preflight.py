"""Preflight: every input a profile needs, found or missing with its fix, offline and in seconds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub
import pytest
import torch
from PIL import Image

import pcclip.preflight as pf
from pcclip.dataset_layouts import LAYOUTS
from pcclip.datasets import DatasetNotFound, load_dataset
from pcclip.datasets.names import class_table
from pcclip.profiles import load_profile
from pcclip.rehearsal.fixtures import FixtureSizes, write_fixtures

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on the discard port: refused at once, never the internet


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty Hugging Face cache, an unreachable hub, no GPU and a roomy disk (the counts of missing
    inputs below must not depend on this machine's free space; the disk check has its own tests)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(pf, "_free_gb", lambda folder: 1e6)
    monkeypatch.setattr(pf, "_hub_server", lambda: UNREACHABLE)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name, layout in list(LAYOUTS.items()):
        if layout.server:
            monkeypatch.setitem(LAYOUTS, name, replace(layout, server=UNREACHABLE))


@pytest.fixture
def llm_server():
    """A local OpenAI-compatible /v1/models listing; `state` sets what it serves and its status."""
    state = {"status": 200, "models": ["served-llm"]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = json.dumps({"data": [{"id": m} for m in state["models"]]}).encode()
            self.send_response(state["status"] if self.path == "/v1/models" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", state
    server.shutdown()


def by_input(checks):
    return {c.input: c for c in checks}


def test_paper_profile_on_an_empty_machine_lists_everything_missing(offline, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    overrides = [f"data_root={data}", f"synthesis.base_url={UNREACHABLE}/v1"]
    t0 = time.perf_counter()
    rc = pf.main(["--profile", "paper", *[a for o in overrides for a in ("--set", o)]])
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert rc == 1 and seconds < 10
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert out.splitlines()[0].split() == ["input", "where", "it", "looked", "status", "how", "to", "fix"]
    for name in load_profile("paper").eval.datasets:
        assert "MISSING" in rows[f"dataset {name}"] and str(data) in rows[f"dataset {name}"]
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in rows["dataset cifar10"]
    assert f"no answer from {UNREACHABLE}" in rows["dataset cifar10"]  # data.download is on: it tried
    assert "https://cvml.ista.ac.at/AwA2/" in rows["dataset awa2"] and "no answer" not in rows["dataset awa2"]
    assert "Animals_with_Attributes2/{JPEGImages" in rows["dataset awa2"]
    weights = rows["weights ViT-L-14/datacomp_xl_s13b_b90k"]
    assert "MISSING" in weights and "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K" in weights
    assert f"no answer from {UNREACHABLE}" in weights
    assert "annotations_trainval2017.zip" in rows["COCO captions"] and "train2017.zip" in rows["COCO images"]
    assert "vllm serve meta-llama/Llama-2-13b-chat-hf" in rows["LLM meta-llama/Llama-2-13b-chat-hf"]
    assert "no CUDA device" in rows["GPU"]
    assert out.splitlines()[-1] == "15 of 16 inputs missing"  # only the disk is there
    cifar = pf.check_datasets(load_profile("paper", {"data_root": str(data), "data.download": False}))[0]
    assert not cifar.found and cifar.fix.endswith("(downloads are off: set data.download=true to fetch it)")


def test_unset_data_root_says_what_to_set(offline, monkeypatch):
    monkeypatch.delenv("PCCLIP_DATA", raising=False)
    checks = by_input(pf.preflight(load_profile("paper")))
    assert checks["dataset dtd"].where == "$PCCLIP_DATA (unset)" and not checks["dataset dtd"].found
    assert "set $PCCLIP_DATA" in checks["dataset dtd"].fix and "set $PCCLIP_DATA" in checks["COCO captions"].fix


def test_present_inputs_are_found(offline, tmp_path, llm_server):
    url, _ = llm_server
    for k, name in enumerate(class_table("eurosat")):  # EuroSAT in its real layout, one image per class
        path = tmp_path / "eurosat" / "2750" / name / f"{name}_1.jpg"
        path.parent.mkdir(parents=True)
        Image.new("RGB", (4, 4), (20 * k,) * 3).save(path)
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "captions_train2017.json").write_text("{}")
    (tmp_path / "coco" / "train2017").mkdir()
    (tmp_path / "coco" / "train2017" / "000000000009.jpg").write_bytes(b"")
    profile = load_profile("paper", {"data_root": str(tmp_path), "eval.datasets": "eurosat",
                                     "synthesis.base_url": url, "synthesis.llm": "served-llm"})
    checks = by_input(pf.preflight(profile))
    assert checks["dataset eurosat"].found and checks["dataset eurosat"].where == str(tmp_path / "eurosat")
    assert len(load_dataset("eurosat", tmp_path)) == 10  # what the preflight found, the loader reads
    assert checks["COCO captions"].found and checks["COCO images"].found
    assert checks["LLM served-llm"].found and checks["LLM served-llm"].where == f"{url}/models"
    assert not checks["GPU"].found  # the offline fixture hides any GPU


def test_llm_server_with_another_model_or_refused_key(offline, llm_server, monkeypatch):
    url, state = llm_server
    profile = load_profile("paper", {"synthesis.base_url": url, "synthesis.llm": "wanted-llm"})
    check = pf.check_llm(profile)[0]
    assert not check.found and "lists ['served-llm'], not synthesis.llm='wanted-llm'" in check.fix
    state["models"] = ["wanted-llm@main"]  # how `transformers serve` lists a hub model
    assert pf.check_llm(profile)[0].found
    state["status"] = 401
    assert "set $OPENAI_API_KEY" in pf.check_llm(profile)[0].fix
    assert pf.check_llm(load_profile("diffworld")) == []  # the template writer needs no model


def test_weights_found_in_the_cache_or_refused_for_the_wrong_activation(offline, tmp_path):
    hub = "timm/vit_base_patch32_clip_224.openai"
    snapshot = tmp_path / "hf" / f"models--{hub.replace('/', '--')}" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    found = pf.check_weights(load_profile("paper-b32"))
    assert found.found and found.where == str(snapshot / "open_clip_model.safetensors")
    wrong = pf.check_weights(load_profile("paper-b32", {"model.model_name": "ViT-B-32"}))
    assert not wrong.found and wrong.fix.endswith("set model.model_name=ViT-B-32-quickgelu")
    off = pf.check_weights(load_profile("paper", {"model.download": False}))
    assert not off.found and "downloads are off: set model.download=true" in off.fix
    exported = tmp_path / "exported"
    exported.mkdir()
    assert pf.check_weights(load_profile("paper", {"model.pretrained": str(exported)})).found


def test_hf_writer_llm_found_as_a_folder_or_in_the_cache_else_names_the_download(offline, tmp_path):
    """synthesis.writer=hf loads the LLM in-process: a local folder or a cached hub model passes, anything else
    names the download command and the settings that replace it."""
    def check(llm):
        return pf.check_llm(load_profile("paper", {"synthesis.writer": "hf", "synthesis.llm": llm}))

    folder = tmp_path / "my-llm"
    folder.mkdir()
    assert [(c.found, c.where) for c in check(str(folder))] == [(True, str(folder))]
    hub = "org/small-llm"
    snapshot = tmp_path / "hf" / f"models--{hub.replace('/', '--')}" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    assert [(c.found, c.where) for c in check(hub)] == [(True, str(snapshot))]
    (missing,) = check("org/not-cached")
    assert not missing.found and missing.fix.startswith("`huggingface-cli download org/not-cached`")
    assert "set synthesis.llm to a local folder" in missing.fix


def test_diffworld_needs_nothing_but_disk(tmp_path, capsys):
    checks = pf.preflight(load_profile("diffworld"))
    assert [c.input for c in checks] == ["weights diffclip-tiny/DiffWorld", "disk >= 3 GB"]
    assert pf.main(["--profile", "diffworld"]) == 0 and capsys.readouterr().out.endswith("all 2 inputs found\n")
    assert not pf.check_disk(load_profile("diffworld"), need_gb=1e9).found


def test_disk_need_scales_with_the_text_tower_and_the_seeds(monkeypatch):
    """The rehearsal writes ~220 MB: it must not ask for the 15 GB of a ViT-L-14 run (a CI machine with
    10 GB free stopped it there); each finetune seed keeps its own checkpoints."""
    needs = {name: pf.check_disk(load_profile(name)).input for name in ("paper", "paper-b32", "rehearsal",
                                                                         "diffworld", "smoke")}
    assert needs == {"paper": "disk >= 15 GB", "paper-b32": "disk >= 8 GB", "rehearsal": "disk >= 1 GB",
                     "diffworld": "disk >= 3 GB", "smoke": "disk >= 2 GB"}
    assert pf.disk_need_gb("ViT-L-14", seeds=5) == 74  # 5 x 14.7 GB, rounded once
    assert pf.disk_need_gb("no-such-architecture") == pf.UNKNOWN_ARCHITECTURE_GB
    monkeypatch.setattr(pf, "_free_gb", lambda folder: 10.0)
    assert pf.check_disk(load_profile("rehearsal")).found and not pf.check_disk(load_profile("paper")).found
    assert "$PCCLIP_RESULTS" in pf.check_disk(load_profile("paper")).fix


def test_require_inputs_raises_listing_every_missing_input(offline, tmp_path, capsys):
    profile = load_profile("paper", {"data_root": str(tmp_path), "eval.datasets": "dtd,awa2",
                                     "synthesis.base_url": f"{UNREACHABLE}/v1"})
    with pytest.raises(pf.MissingInputs, match=r"(?s)profile 'paper' is missing 7 input\(s\):\n- weights .*"
                                                r"- dataset dtd: .*- dataset awa2: .*- GPU: no CUDA device"):
        pf.require_inputs(profile)
    assert capsys.readouterr().out.splitlines()[-1] == "7 of 8 inputs missing"
    assert [c.input for c in pf.require_inputs(load_profile("smoke"))] == ["weights diffclip-tiny/DiffWorld",
                                                                           "disk >= 2 GB"]


def test_incomplete_dataset_names_the_missing_files_as_the_loader_fails(offline, tmp_path):
    """Found means the files the loaders read are there: CIFAR-100 without `meta` is missing for both."""
    write_fixtures(tmp_path, sizes=FixtureSizes(cifar_train=1, cifar_test=1, cifar_group_test=1),
                   datasets=("cifar100",))
    profile = load_profile("paper", {"data_root": str(tmp_path), "eval.datasets": "cifar100,awa2"})
    cifar, awa2 = pf.check_datasets(profile)
    assert cifar.found and cifar.where == str(tmp_path / "cifar-100-python") and not awa2.found
    (tmp_path / "cifar-100-python" / "meta").unlink()
    cifar = pf.check_datasets(profile)[0]
    assert not cifar.found and cifar.where == str(tmp_path)  # present but incomplete: no download offered
    assert f"is incomplete in {tmp_path / 'cifar-100-python'} (missing meta)" in cifar.fix
    assert "cifar-100-python/{train, test, meta}" in cifar.fix and "no answer" not in cifar.fix
    with pytest.raises(DatasetNotFound, match="CIFAR-100 .*incomplete"):
        load_dataset("cifar100", tmp_path)


HEAVY = ("open_clip", "torchvision", "transformers", "torch")


def _preflight_modules(tmp_path: Path, args: list[str]) -> tuple[list[str], list[str]]:
    """The table `main(args)` prints in a fresh interpreter, and which of HEAVY it imported."""
    code = ("import json, sys; from pcclip.preflight import main; "
            f"rc = main({args!r}); print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    env = {k: v for k, v in os.environ.items() if k != "PCCLIP_DATA"}
    env.update(PYTHONPATH=str(Path(pf.__file__).parents[1]), HF_HUB_CACHE=str(tmp_path / "hf"))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split()[:2] == ["input", "where"]
    return lines[:-1], json.loads(lines[-1])


def test_preflight_imports_no_model_code(tmp_path):
    """Without a data root the preflight only looks up tables, caches and servers: it never imports
    open_clip, torchvision or transformers (seconds of imports, the bulk of its old 12-25 s), and
    imports torch only to ask a loaded NVIDIA driver for its devices."""
    lines, imported = _preflight_modules(tmp_path, ["--profile", "paper", "--set",
                                                    f"synthesis.base_url={UNREACHABLE}/v1", "--set",
                                                    "model.download=false"])
    short_of_disk = not pf.check_disk(load_profile("paper")).found  # a subprocess: the disk is this machine's
    assert lines[-1] == f"{14 + short_of_disk} of 15 inputs missing"
    assert imported == (["torch"] if pf._nvidia_driver() else [])


def test_preflight_with_datasets_imports_no_torch(tmp_path):
    """With a data root holding the rehearsal datasets, each is found by looking at its files: neither
    torchvision nor torch is imported to read them (they took ~5 s of imports)."""
    write_fixtures(tmp_path / "data", sizes=FixtureSizes(coco_train=2, coco_val=1, cifar_train=1, cifar_test=1,
                                                         cifar_group_test=1, flowers_group_test=1, eurosat=1))
    args = ["--profile", "rehearsal", "--set", f"data_root={tmp_path / 'data'}", "--set",
            "model.device=cpu", "--set", "model.precision=fp32", "--set", "finetune.precision=fp32"]
    lines, imported = _preflight_modules(tmp_path, args)
    rows = {line.split("  ")[0]: line for line in lines}
    for name in load_profile("rehearsal").eval.datasets:
        assert f"{tmp_path / 'data'}/" in rows[f"dataset {name}"] and " found " in rows[f"dataset {name}"]
    assert imported == []


def test_rehearsal_before_its_first_run_says_pcclip_writes_its_inputs(offline, tmp_path, monkeypatch):
    """Its fixtures, base model file and LLM are pcclip's own: the table must not send the user to download them
    or to start a server."""
    monkeypatch.setenv("PCCLIP_RESULTS", str(tmp_path / "results"))
    profile = load_profile("rehearsal")
    checks = by_input(pf.preflight(profile))
    missing = [c for c in checks.values() if not c.found]
    assert {c.input.split()[0] for c in missing} == {"weights", "dataset", "COCO"}
    assert all(c.fix.endswith(f"python -m pcclip.rehearsal {profile.data_root}") for c in missing)
    assert checks["LLM rehearsal-llm"].found and "served by pcclip" in checks["LLM rehearsal-llm"].fix
    mine = tmp_path / "mine"  # notebook 00 writes the fixtures on any data root the rehearsal is given
    elsewhere = [c for c in pf.preflight(load_profile("rehearsal", {"data_root": str(mine)})) if not c.found]
    assert {c.input.split()[0] for c in elsewhere} == {"weights", "dataset", "COCO"}
    assert all(c.fix.endswith(f"python -m pcclip.rehearsal {mine}") for c in elsewhere)
    paper = [c for c in pf.preflight(load_profile("paper", {"data_root": str(mine)})) if not c.found]
    assert paper and all("pcclip.rehearsal" not in c.fix for c in paper)  # the paper's inputs are the user's
