"""The rehearsal's base model file: a bare open_clip state dict that `load_clip(name, path)` reads back."""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pcclip.models import load_clip
from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.rehearsal import base_model
from pcclip.world import render, sample_records

TINY = {"pretrain.steps": 2, "pretrain.batch_size": 32, "pretrain.warmup": 1, "world.n_train": 64,
        "world.n_val": 8, "world.n_test": 8, "world.n_holdout": 8}


def _embeddings(bundle) -> tuple[torch.Tensor, torch.Tensor]:
    images = render(sample_records(6, np.random.default_rng(0)), 32)
    with torch.no_grad():
        image = bundle.model.encode_image(bundle.images_to_tensor(images))
    return image, bundle.encode_text(["a large red circle", "a small blue ring on the left"])


def test_base_model_file_round_trip(tmp_path):
    path = tmp_path / "data" / "models" / "diffclip-tiny-diffworld.pt"
    written = base_model.write_base_model(path, "smoke", TINY)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert "format" not in state and set(state) == set(written.model.state_dict())  # bare, like a download
    pretrained = load_clip("diffclip-tiny", str(tmp_path / "data/models/pretrain/checkpoints/base.pt"))
    again = load_clip("diffclip-tiny", str(path))
    assert again.fingerprint == written.fingerprint == pretrained.fingerprint
    assert again.fingerprint != load_clip("diffclip-tiny", "").fingerprint
    for a, b in zip(_embeddings(again), _embeddings(pretrained)):
        assert torch.equal(a, b)


def test_base_model_reuses_the_profiles_checkpoint(tmp_path, monkeypatch):
    first = base_model.write_base_model(tmp_path / "a.pt", "smoke", TINY)
    ckpt = run_paths("smoke").checkpoints / "base.pt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(tmp_path / "pretrain/checkpoints/base.pt", ckpt)

    def no_training(*args):
        raise AssertionError("pretrained again although results/smoke/checkpoints/base.pt matches")

    monkeypatch.setattr(base_model, "build_base_model", no_training)
    assert base_model.write_base_model(tmp_path / "b.pt", "smoke", TINY).fingerprint == first.fingerprint
    with pytest.raises(AssertionError, match="pretrained again"):  # another recipe is not reused
        base_model.write_base_model(tmp_path / "c.pt", "smoke", {**TINY, "pretrain.steps": 3})
    with pytest.raises(ValueError, match="pretrained on DiffWorld"):
        base_model.write_base_model(tmp_path / "d.pt", "paper")


def test_write_rehearsal_completes_a_data_root_once(tmp_path):
    from pcclip.profiles import REHEARSAL_MODEL_FILE
    from pcclip.rehearsal import write_rehearsal

    root = tmp_path / "root"
    assert set(write_rehearsal(root, base_profile="smoke", overrides=TINY, model_file=None)) == {
        "coco", "cifar100", "flowers102", "eurosat", "awa2", "cub200"}
    assert set(write_rehearsal(root, base_profile="smoke", overrides=TINY)) == {"model"}  # only what is missing
    assert load_clip("diffclip-tiny", str(root / REHEARSAL_MODEL_FILE)).model_name == "diffclip-tiny"
    assert write_rehearsal(root, base_profile="smoke", overrides=TINY) == {}
    shutil.rmtree(root / "eurosat")
    with pytest.raises(FileExistsError, match=r"holds .* but not \['eurosat'\]: delete it"):
        write_rehearsal(root)


def test_notebook_00_writes_the_rehearsal_where_its_profile_reads_it(tmp_path, monkeypatch):
    """With its data root moved, the fixtures go there and the base model file where model.pretrained points: every
    input is then found (the model file used to land under the data root, where nothing reads it)."""
    from pcclip import base_overview
    from pcclip.rehearsal import write_rehearsal

    monkeypatch.setenv("PCCLIP_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(base_overview, "write_rehearsal",
                        functools.partial(write_rehearsal, base_profile="smoke", overrides=TINY))
    profile = load_profile("rehearsal", {"data_root": str(tmp_path / "mine")})
    checks = base_overview.prepare_inputs(profile)
    assert all(c.found for c in checks) and len(checks) == len(profile.eval.datasets) + 5  # weights, COCO x2, LLM, disk
    assert Path(profile.model.pretrained).is_file() and not (tmp_path / "mine" / "models").exists()
    assert all(c.where.startswith(str(tmp_path / "mine")) for c in checks if c.input.startswith(("dataset", "COCO")))
