"""External checkpoints: scored through notebooks 03/04's evaluations beside the profile's models, identified
by their sha256, refused clearly when missing, of another architecture or of another model."""
from __future__ import annotations

import copy
import hashlib
import json

import pytest
import torch

from pcclip.evaluate import default_label, main
from pcclip.export import export_open_clip
from pcclip.external import ExternalCheckpoint, load_external, parse_external
from pcclip.loading import load_models
from pcclip.models import load_clip, save_clip
from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.results import IDENTITY, rows_frame

KEY = [c for c in IDENTITY if c not in ("model", "notebook")]
TASKS = {"difference", "ranking", "structures", "frames", "zero_shot", "comparative", "extended", "headroom"}


@pytest.fixture
def base_file(tiny_bundle, tmp_path):
    path = tmp_path / "base.pt"
    save_clip(tiny_bundle, "diffclip-tiny", path)
    return path


def _evaluate(checkpoint, base_file, label, *extra) -> tuple[dict, "pd.DataFrame"]:
    assert main(["--checkpoint", str(checkpoint), "--profile", "smoke", "--label", label,
                 "--set", f"model.pretrained={base_file}", "--set", "world.n_train=512", *extra]) == 0
    data = json.loads((run_paths("smoke").metrics / f"external_{label}.json").read_text())
    return data, rows_frame(data["rows"])


def _by_model(rows, model):
    return rows[rows.model == model].set_index(KEY).value.sort_index()


def test_base_weights_as_external_score_exactly_as_base(tiny_bundle, base_file, tmp_path, capsys):
    folder = export_open_clip(tiny_bundle, tmp_path / "export")
    data, rows = _evaluate(folder, base_file, "mine")
    assert set(rows.model) == {"base", "mine", ""}  # no finetuned checkpoints here; "" = image-only rows
    assert set(rows.task) == TASKS and set(rows.notebook) == {"external_mine"}
    mine, base = _by_model(rows, "mine"), _by_model(rows, "base")
    assert len(mine) > 100 and mine.index.equals(base.index)
    assert mine.equals(base)  # exactly: same weights, same embeddings, same code
    weights = (folder / "open_clip_model.safetensors").read_bytes()
    assert data["info"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert data["info"]["image_tower"] == "the base model's" and data["info"]["models"] == ["base", "mine"]
    assert data["info"]["model_name"] == "diffclip-tiny" and "skipped" in data["info"]["recipe_check"]
    out = capsys.readouterr().out
    assert "mine" in out.splitlines()[0] and f"{len(rows)} metric rows written" in out


def test_other_weights_score_differently_and_own_image_tower_as_its_base(tiny_bundle, base_file, tmp_path):
    torch.manual_seed(1)
    other = load_clip("diffclip-tiny")  # another image tower and another text tower
    state = tmp_path / "other_state.pt"
    torch.save(other.model.state_dict(), state)  # a plain open_clip state dict, no pcclip metadata
    data, rows = _evaluate(state, base_file, "other")
    assert data["info"]["image_tower"] == "its own"
    mine = _by_model(rows, "other")
    assert not mine.equals(_by_model(rows, "base"))
    # its image-only rows carry its label; scored as a profile's own base model it gets the same values
    _, as_base = _evaluate(base_file, state, "self")
    theirs = as_base[as_base.model.isin(["base", ""])].set_index(KEY).value.sort_index()
    assert mine.sort_index().equals(theirs)


def test_text_tower_finetune_shares_the_base_image_embeddings(tiny_bundle, base_file, tmp_path):
    model = copy.deepcopy(tiny_bundle.model)
    with torch.no_grad():
        model.text_projection.mul_(-1.0)  # every text embedding flips: difference accuracy a -> 1 - a
    path = tmp_path / "flipped.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    _, rows = _evaluate(path, base_file, "flipped")
    accuracy = rows[(rows.task == "difference") & (rows.metric == "accuracy")]
    base, flipped = (accuracy[accuracy.model == m].set_index(KEY).value for m in ("base", "flipped"))
    assert (flipped + base).sub(1.0).abs().max() < 1e-6


def test_missing_file_wrong_architecture_and_other_model_are_refused(tiny_bundle, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'mine': '.*nowhere.pt' does not exist; pass .*torch.save"):
        load_external(ExternalCheckpoint("mine", str(tmp_path / "nowhere.pt"), "diffclip-tiny"))
    with pytest.raises(FileNotFoundError, match="nowhere.pt' does not exist"):  # before the absent base model
        main(["--checkpoint", str(tmp_path / "nowhere.pt"), "--profile", "smoke"])
    state = {f"renamed.{k}": v for k, v in tiny_bundle.model.state_dict().items()}
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(ValueError, match=r"'mine': checkpoint '.*renamed.pt' does not fit architecture "
                                         r"'diffclip-tiny' .*set --model to the architecture it was saved from"):
        load_external(ExternalCheckpoint("mine", str(tmp_path / "renamed.pt"), "diffclip-tiny"))
    save_clip(tiny_bundle, "diffclip-tiny", tmp_path / "tiny.pt")
    with pytest.raises(ValueError, match=r"holds a 'diffclip-tiny' model, not 'ViT-B-32': set --model=diffclip-tiny"):
        main(["--checkpoint", str(tmp_path / "tiny.pt"), "--model", "ViT-B-32", "--profile", "smoke",
              "--set", f"model.pretrained={tmp_path / 'tiny.pt'}"])
    with pytest.raises(ValueError, match="label 'base' is taken"):
        main(["--checkpoint", str(tmp_path / "tiny.pt"), "--label", "base", "--profile", "smoke",
              "--set", f"model.pretrained={tmp_path / 'tiny.pt'}"])


def test_specs_and_labels():
    assert parse_external("authors=/ckpt/pc_clip.pt", "ViT-L-14") == ExternalCheckpoint("authors", "/ckpt/pc_clip.pt",
                                                                                         "ViT-L-14")
    assert parse_external({"label": "a", "path": "p", "model": "ViT-B-32"}, "ViT-L-14").model_name == "ViT-B-32"
    for bad in ("/ckpt/pc_clip.pt", {"label": "a"}, {"label": "a", "path": "p", "arch": "x"}):
        with pytest.raises(ValueError, match="must be 'label=path' or a dict"):
            parse_external(bad, "ViT-L-14")
    with pytest.raises(ValueError, match="label '../x' must start with a letter"):
        parse_external("../x=/p.pt", "ViT-L-14")
    assert default_label("/ckpt/pc clip.v1.pt") == "pc-clip.v1" and default_label("/out/export/") == "export"


def test_notebook_parameter_adds_models_sharing_the_base_image_tower(tiny_bundle, base_file, tmp_path):
    profile = load_profile("smoke", {"model.pretrained": str(base_file)})
    paths = run_paths("smoke")
    folder = export_open_clip(tiny_bundle, tmp_path / "export")
    models = load_models(profile, paths, [f"same={folder}"], require_trained=False)
    assert list(models) == ["base", "same"] and models["same"].fingerprint == models["base"].fingerprint
    with pytest.raises(ValueError, match="label 'base' is taken"):
        load_models(profile, paths, [f"base={folder}"], require_trained=False)
    torch.manual_seed(2)
    save_clip(load_clip("diffclip-tiny"), "diffclip-tiny", tmp_path / "random.pt")
    with pytest.raises(ValueError, match=r"\['random'\] have another image tower .* python -m pcclip.evaluate"):
        load_models(profile, paths, [{"label": "random", "path": str(tmp_path / "random.pt")}], require_trained=False)
    with pytest.raises(FileNotFoundError, match="02_finetune"):  # the notebooks still need our finetuned models
        load_models(profile, paths, [f"same={folder}"])
