"""Export: a model round-trips through a plain open_clip folder, loaded by open_clip alone."""
from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from pcclip.export import CONFIG, export_open_clip, main
from pcclip.models import load_clip, save_clip, state_fingerprint

TEXTS = ["a small red ring near the top left", "a big bright blue star"]


def test_export_loads_in_two_lines_of_open_clip(tiny_bundle, tmp_path):
    folder = export_open_clip(tiny_bundle, tmp_path / "export")
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    assert state_fingerprint("diffclip-tiny", model.state_dict()) == tiny_bundle.fingerprint
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.encode_text(tokenizer(TEXTS)), tiny_bundle.encode_text(TEXTS))
    assert tokenizer(TEXTS).shape == (2, 24)  # diffclip-tiny's context, read from the exported config
    assert tuple(model.visual.preprocess_cfg["mean"]) == tiny_bundle.model.visual.preprocess_cfg["mean"]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    assert torch.equal(preprocess(image), tiny_bundle.preprocess(image))
    meta = json.loads((folder / CONFIG).read_text())["pcclip"]
    assert meta == {"model_name": "diffclip-tiny", "pretrained": "", "fingerprint": tiny_bundle.fingerprint}


def test_cli_exports_a_pcclip_checkpoint(tiny_bundle, tmp_path, capsys):
    ckpt = tmp_path / "finetuned.pt"
    save_clip(tiny_bundle, "diffclip-tiny", ckpt)
    assert main([str(ckpt), "--model", "diffclip-tiny", "--out", str(tmp_path / "out")]) == 0
    assert f"local-dir:{tmp_path / 'out'}" in capsys.readouterr().out
    model = open_clip.create_model(f"local-dir:{tmp_path / 'out'}")
    assert state_fingerprint("diffclip-tiny", model.state_dict()) == tiny_bundle.fingerprint


def test_unknown_architecture_is_refused(tiny_bundle, tmp_path):
    from dataclasses import replace

    with pytest.raises(ValueError, match="no config for 'nowhere-net'"):
        export_open_clip(replace(tiny_bundle, model_name="nowhere-net"), tmp_path)


def test_exported_folder_and_its_safetensors_load_through_pcclip(tiny_bundle, tmp_path):
    folder = export_open_clip(tiny_bundle, tmp_path / "export")
    assert load_clip("diffclip-tiny", str(folder)).fingerprint == tiny_bundle.fingerprint
    weights = folder / "open_clip_model.safetensors"
    assert load_clip("diffclip-tiny", str(weights)).fingerprint == tiny_bundle.fingerprint
    with pytest.raises(ValueError, match="holds a 'diffclip-tiny' model, not 'ViT-B-32'"):  # refused before building
        load_clip("ViT-B-32", str(folder))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot be read .* corrupt"):
        load_clip("diffclip-tiny", str(weights))
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="holds no open_clip_model.safetensors"):
        load_clip("diffclip-tiny", str(folder))
