"""Damaged files are refused, naming the file and how to rebuild it: a flipped byte in the weights of
base.pt or pcclip.pt, a truncated checkpoint, a damaged training state; finished runs leave no stale states."""
from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pcclip.basemodel import base_checkpoint, build_base_model, load_base_model
from pcclip.finetune import finetune
from pcclip.loading import load_models
from pcclip.models import checkpoint_meta, load_clip, save_clip
from pcclip.paths import run_paths
from pcclip.profiles import FinetuneConfig, load_profile
from pcclip.runs import checkpoint_path, train_run
from pcclip.traindata import TrainData

MICRO = {"world.n_train": 64, "pretrain.steps": 2, "pretrain.batch_size": 16, "pretrain.warmup": 1,
         "finetune.steps": 2, "finetune.batch_size": 8, "finetune.caption_steps": 2,
         "finetune.caption_batch_size": 8, "finetune.trainable": "blocks"}


def flip_weight_byte(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor stored in a torch zip file (not its metadata)."""
    with zipfile.ZipFile(path) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(raw[info.header_offset + k:info.header_offset + k + 2], "little")
                           for k in (26, 28))
    at = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _data(n_images: int = 16) -> TrainData:
    g = torch.Generator().manual_seed(0)
    idx1, idx2 = torch.arange(n_images), torch.arange(n_images).roll(1)
    texts = [f"the first object is {'larger' if i % 2 else 'smaller'} than the second" for i in range(n_images)]
    return TrainData(torch.randn(n_images, 128, generator=g), idx1, idx2, texts, torch.arange(n_images),
                     [f"a shape number {i}" for i in range(n_images)])


@pytest.fixture(scope="module")
def _built(tmp_path_factory) -> Path:
    """base.pt pretrained (2 steps) and both finetuned runs saved, once for the module."""
    root = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PCCLIP_RESULTS", str(root))
        profile = load_profile("smoke", MICRO)
        paths = run_paths(profile.name)
        base = build_base_model(profile, paths)
        for run in ("pcclip", "caption_ft"):
            train_run(profile, paths, run, base, _data(), progress=False)
    return paths.checkpoints


@pytest.fixture
def trained(_built):
    """A fresh copy of the built checkpoints in this test's results folder."""
    profile = load_profile("smoke", MICRO)
    paths = run_paths(profile.name)
    shutil.copytree(_built, paths.checkpoints)
    return profile, paths


def _named(path: Path) -> str:
    return re.escape(str(path))


def test_sound_files_load_and_verify(trained):
    profile, paths = trained
    models = load_models(profile, paths)
    assert models["base"].fingerprint == load_base_model(profile, paths).fingerprint
    assert checkpoint_meta(checkpoint_path(paths, "pcclip", 0))["steps"] == 2


def test_flipped_base_is_refused_naming_base_not_pcclip(trained):
    profile, paths = trained
    flip_weight_byte(base_checkpoint(paths))
    for load in (load_base_model, load_models):
        with pytest.raises(ValueError, match=f"checkpoint '{_named(base_checkpoint(paths))}' is corrupt: its weights "
                                             "do not match the fingerprint .*delete it and rerun "
                                             "notebooks/00_base_model.ipynb"):
            load(profile, paths)


def test_flipped_pcclip_is_refused_naming_it(trained):
    profile, paths = trained
    ckpt = checkpoint_path(paths, "pcclip", profile.finetune.seed)
    flip_weight_byte(ckpt)
    with pytest.raises(ValueError, match=f"checkpoint '{_named(ckpt)}' is corrupt: .*delete it and rerun "
                                         "notebooks/02_finetune.ipynb"):
        load_models(profile, paths)


@pytest.mark.parametrize("name, notebook", [("base.pt", "00_base_model"), ("seed0/pcclip.pt", "02_finetune"),
                                            ("seed0/caption_ft.pt", "02_finetune")])
def test_truncated_checkpoint_names_the_file(trained, name, notebook):
    profile, paths = trained
    ckpt = paths.checkpoints / name
    truncate(ckpt)
    with pytest.raises(ValueError, match=f"checkpoint '{_named(ckpt)}' cannot be read .*truncated.*delete it and "
                                         f"rerun notebooks/{notebook}.ipynb"):
        load_models(profile, paths)


def test_altered_metadata_is_refused(trained):
    _, paths = trained
    ckpt = checkpoint_path(paths, "pcclip", 0)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    saved["meta"]["steps"] = 2000  # what a flipped digit in the pickled metadata does
    torch.save(saved, ckpt)
    with pytest.raises(ValueError, match=f"checkpoint '{_named(ckpt)}' is corrupt: its metadata do not match"):
        checkpoint_meta(ckpt)


def test_a_given_checkpoint_file_is_verified_too(tiny_bundle, tmp_path):
    path = tmp_path / "given.pt"
    save_clip(tiny_bundle, "diffclip-tiny", path)
    assert load_clip("diffclip-tiny", str(path)).fingerprint == tiny_bundle.fingerprint
    flip_weight_byte(path)
    with pytest.raises(ValueError, match=f"checkpoint '{_named(path)}' is corrupt: .*point model.pretrained at a "
                                         "valid file"):
        load_clip("diffclip-tiny", str(path))


@pytest.mark.parametrize("damage, says", [(flip_weight_byte, "is corrupt: its contents do not match"),
                                          (truncate, "is unreadable .*truncated")])
def test_damaged_training_state_is_refused_naming_it(tiny_bundle, tmp_path, damage, says):
    cfg = FinetuneConfig(trainable="blocks", steps=4, batch_size=8, schedule="constant", warmup=0,
                         caption_weight=0.0, save_every=2)
    state = tmp_path / "pcclip_state-x.pt"
    finetune(tiny_bundle, _data(), cfg, state_path=state, until=2, progress=False)
    assert finetune(tiny_bundle, _data(), cfg, state_path=state, until=2, progress=False).resumed_from == 2
    damage(state)
    with pytest.raises(ValueError, match=f"training state {_named(state)} {says}.*delete it and rerun"):
        finetune(tiny_bundle, _data(), replace(cfg), state_path=state, progress=False)


def test_finished_runs_remove_stale_states(trained):
    profile, paths = trained
    stale = [paths.finetuned(0) / "pcclip_state-0123456789abcdef.pt", paths.checkpoints / "pretrain_state-old.pt"]
    for path in stale:
        path.write_bytes(b"a state of other settings")
    base = load_base_model(profile, paths)
    other = load_profile("smoke", MICRO | {"finetune.steps": 3})
    train_run(other, paths, "pcclip", base, _data(), progress=False)
    assert not stale[0].exists() and stale[1].exists()  # pcclip's states go once pcclip is saved
    build_base_model(load_profile("smoke", MICRO | {"pretrain.steps": 3}), paths)
    assert sorted(p.name for p in paths.checkpoints.iterdir()) == ["base.pt", "seed0"]
    assert sorted(p.name for p in paths.finetuned(0).iterdir()) == ["caption_ft.pt", "pcclip.pt"]
