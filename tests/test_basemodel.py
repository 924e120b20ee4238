"""The base model: built once per recipe, reused without training, refused clearly when missing or stale."""
from __future__ import annotations

import re

import pytest
import torch

import pcclip.basemodel as basemodel
from pcclip.basemodel import base_checkpoint, base_meta, build_base_model, load_base_model
from pcclip.models import save_clip
from pcclip.paths import run_paths
from pcclip.profiles import load_profile

MICRO = {"world.n_train": 64, "pretrain.steps": 3, "pretrain.batch_size": 16, "pretrain.warmup": 1,
         "pretrain.log_every": 1}


@pytest.fixture
def trainings(monkeypatch) -> list[int]:
    """Counts pretraining runs (each entry: the number of steps asked for)."""
    runs: list[int] = []
    real = basemodel.pretrain

    def counting(bundle, train, cfg, **kwargs):
        runs.append(cfg.steps)
        return real(bundle, train, cfg, **kwargs)

    monkeypatch.setattr(basemodel, "pretrain", counting)
    return runs


def test_build_then_reuse_without_training(trainings):
    profile = load_profile("smoke", MICRO)
    paths = run_paths(profile.name)
    built = build_base_model(profile, paths)
    assert trainings == [3]
    ckpt = base_checkpoint(paths)
    meta = base_meta(ckpt)
    assert [row["step"] for row in meta["history"]] == [0, 1, 2]
    assert meta["recipe"]["pretrain"]["steps"] == 3 and meta["recipe"]["world"]["n_train"] == 64
    assert [p.name for p in paths.checkpoints.iterdir()] == ["base.pt"]  # the training state is cleaned up
    again = build_base_model(profile, paths)
    assert trainings == [3]
    assert again.fingerprint == built.fingerprint == load_base_model(profile, paths).fingerprint
    assert not again.model.training


def test_changed_recipe_rebuilds_and_old_checkpoint_is_stale(trainings):
    profile = load_profile("smoke", MICRO)
    paths = run_paths(profile.name)
    old = build_base_model(profile, paths)
    longer = load_profile("smoke", MICRO | {"pretrain.steps": 4})
    with pytest.raises(ValueError, match="pretrained with other world/pretrain settings .* rerun "
                                         "notebooks/00_base_model.ipynb"):
        load_base_model(longer, paths)
    new = build_base_model(longer, paths)
    assert trainings == [3, 4] and new.fingerprint != old.fingerprint
    assert load_base_model(longer, paths).fingerprint == new.fingerprint
    with pytest.raises(ValueError, match="other world/pretrain settings"):
        load_base_model(profile, paths)


def _wider(real):
    def config(name):
        cfg = real(name)
        return cfg | {"text_cfg": cfg["text_cfg"] | {"width": 2 * cfg["text_cfg"]["width"]}}
    return config


@pytest.mark.parametrize("target,attribute,change", [
    (basemodel.open_clip, "get_model_config", _wider),  # an edited model JSON
    (basemodel, "vocabulary", lambda real: lambda: real() | {"thresholds": [0.2, 0.8]}),  # edited captions
])
def test_changed_architecture_or_captions_make_the_checkpoint_stale(trainings, monkeypatch, target, attribute, change):
    profile = load_profile("smoke", MICRO)
    paths = run_paths(profile.name)
    build_base_model(profile, paths)
    monkeypatch.setattr(target, attribute, change(getattr(target, attribute)))
    with pytest.raises(ValueError, match="other world/pretrain settings"):
        load_base_model(profile, paths)


def test_missing_base_model_names_the_notebook():
    profile = load_profile("smoke", MICRO)
    with pytest.raises(FileNotFoundError, match="no base model at .*base.pt: run notebooks/00_base_model.ipynb "
                                                "for profile 'smoke' first \\(make reproduce PROFILE=smoke\\)"):
        load_base_model(profile, run_paths(profile.name))


def test_corrupt_base_model_is_refused_clearly():
    profile = load_profile("smoke", MICRO)
    paths = run_paths(profile.name)
    ckpt = base_checkpoint(paths)
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(ValueError, match=f"checkpoint '{re.escape(str(ckpt))}' cannot be read .*delete it and rerun "
                                         "notebooks/00_base_model.ipynb"):
        load_base_model(profile, paths)


def test_given_checkpoint_file_is_loaded_not_trained(tiny_bundle, trainings, tmp_path):
    path = tmp_path / "given.pt"
    save_clip(tiny_bundle, "diffclip-tiny", path)
    profile = load_profile("smoke", MICRO | {"model.pretrained": str(path)})
    paths = run_paths(profile.name)
    assert build_base_model(profile, paths).fingerprint == tiny_bundle.fingerprint
    assert load_base_model(profile, paths).fingerprint == tiny_bundle.fingerprint
    assert trainings == [] and not base_checkpoint(paths).exists()


def test_same_profile_same_weights_whatever_the_global_rng(trainings, monkeypatch, tmp_path):
    """The random init is part of the recipe: two builds agree even if the global RNG was moved before."""
    profile = load_profile("smoke", MICRO)
    torch.manual_seed(1234)
    first = build_base_model(profile, run_paths(profile.name))
    monkeypatch.setenv("PCCLIP_RESULTS", str(tmp_path / "elsewhere"))
    torch.manual_seed(999)
    second = build_base_model(profile, run_paths(profile.name))
    assert trainings == [3, 3]
    assert second.fingerprint == first.fingerprint
