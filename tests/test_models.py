"""CLIP models: round trip through a local checkpoint, and clear, fast errors for bad weights."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import huggingface_hub
import open_clip
import pytest
import torch

import pcclip.models as models
from pcclip.profiles import PROFILES
from pcclip.models import load_clip, save_clip, state_fingerprint

TEXTS = ["a small red ring near the top left", "a big bright blue star", "square"]
OTHER_ARCH = "pcclip-test-other"  # a second, even smaller architecture registered only for these tests


@pytest.fixture(scope="module")
def other_arch(tmp_path_factory) -> str:
    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
           "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    path = tmp_path_factory.mktemp("configs") / f"{OTHER_ARCH}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return OTHER_ARCH


@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt to fetch weights fails the test instead of hanging in network retries."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args} {kwargs}")

    for target in (open_clip.pretrained, open_clip.factory):
        for name in ("download_pretrained", "download_pretrained_from_hf", "download_pretrained_from_url"):
            if hasattr(target, name):
                monkeypatch.setattr(target, name, refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)


def test_round_trip_through_a_local_checkpoint(tiny_bundle, tmp_path):
    path = tmp_path / "clip.pt"
    saved = save_clip(tiny_bundle, "diffclip-tiny", path, meta={"note": "test", "steps": 3})
    assert saved == tiny_bundle.fingerprint
    loaded = load_clip("diffclip-tiny", str(path))
    assert loaded.fingerprint == tiny_bundle.fingerprint and loaded.pretrained == str(path)
    assert torch.equal(loaded.encode_text(TEXTS), tiny_bundle.encode_text(TEXTS))
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model.encode_image(images), tiny_bundle.model.encode_image(images))
    assert torch.load(path, weights_only=True)["meta"] == {"note": "test", "steps": 3}


def test_checkpoint_loads_in_plain_open_clip(tiny_bundle, tmp_path):
    path = tmp_path / "clip.pt"
    save_clip(tiny_bundle.model, "diffclip-tiny", path)  # a bare model is accepted too
    model, _, _ = open_clip.create_model_and_transforms("diffclip-tiny", pretrained=str(path))
    assert state_fingerprint("diffclip-tiny", model.state_dict()) == tiny_bundle.fingerprint


def test_fingerprint_tracks_weights_and_architecture(tiny_bundle):
    state = {k: v.clone() for k, v in tiny_bundle.model.state_dict().items()}
    assert state_fingerprint("diffclip-tiny", state) == tiny_bundle.fingerprint
    assert state_fingerprint("other-name", state) != tiny_bundle.fingerprint
    state["logit_scale"] = state["logit_scale"] + 1e-3
    assert state_fingerprint("diffclip-tiny", state) != tiny_bundle.fingerprint


def test_encode_text_of_nothing_is_empty(tiny_bundle):
    assert tuple(tiny_bundle.encode_text([]).shape) == (0, tiny_bundle.encode_text(TEXTS).shape[1])


@pytest.mark.parametrize("content", [b"not a checkpoint at all", "truncated"])
def test_corrupt_checkpoint_is_refused(tiny_bundle, tmp_path, content):
    path = tmp_path / "clip.pt"
    if content == "truncated":
        save_clip(tiny_bundle, "diffclip-tiny", path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"checkpoint '{path}' cannot be read .* corrupt"):
        load_clip("diffclip-tiny", str(path))


def test_checkpoint_of_another_architecture_is_refused(other_arch, tmp_path):
    torch.manual_seed(0)
    other = open_clip.create_model(other_arch)
    ours = tmp_path / "other.pt"
    save_clip(other, other_arch, ours)
    with pytest.raises(ValueError, match=f"holds a '{other_arch}' model, not 'diffclip-tiny': set model.model_name"):
        load_clip("diffclip-tiny", str(ours))
    assert load_clip(other_arch, str(ours)).fingerprint == state_fingerprint(other_arch, other.state_dict())
    plain = tmp_path / "plain_state_dict.pt"  # someone else's file: no name inside, only mismatching tensors
    torch.save(other.state_dict(), plain)
    with pytest.raises(ValueError, match=f"checkpoint '{plain}' does not fit architecture 'diffclip-tiny'"):
        load_clip("diffclip-tiny", str(plain))


def test_missing_local_file_is_refused(tmp_path):
    missing = tmp_path / "nowhere" / "base.pt"
    with pytest.raises(FileNotFoundError, match=f"checkpoint file '{missing}' does not exist.*00_base_model"):
        load_clip("diffclip-tiny", str(missing))


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="unknown model 'ViT-Q-99'"):
        load_clip("ViT-Q-99")


def test_unknown_pretrained_tag_fails_without_download(no_downloads):
    with pytest.raises(ValueError, match=r"unknown pretrained tag 'nope' for 'ViT-B-32'; known tags: \[.*'openai'"):
        load_clip("ViT-B-32", "nope")
    with pytest.raises(ValueError, match=r"unknown pretrained tag 'openai' for 'diffclip-tiny'; known tags: \[\]"):
        load_clip("diffclip-tiny", "openai")


@pytest.mark.parametrize("model_name, tag", [("ViT-L-14", "datacomp_xl_s13b_b90k"), ("ViT-B-32-quickgelu", "openai")])
def test_uncached_weights_fail_without_download(no_downloads, monkeypatch, tmp_path, model_name, tag):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    hub = open_clip.get_pretrained_cfg(model_name, tag)["hf_hub"].strip("/")
    with pytest.raises(FileNotFoundError, match=f"weights for {model_name}/{tag} are not on this machine.*"
                                                f"Hugging Face repo {hub} .*model.pretrained=/path/to/file.*downloads are off"):
        load_clip(model_name, tag)


def test_cached_weights_are_found_in_the_hf_cache_layout(monkeypatch, tmp_path):
    """The check looks where huggingface_hub puts files: models--org--name/snapshots/<rev>/<file>."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    hub = open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")["hf_hub"].strip("/")
    repo = tmp_path / f"models--{hub.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "open_clip_model.safetensors").write_bytes(b"")
    found = models.cached_weights("ViT-B-32", "laion2b_s34b_b79k")  # open_clip may load it
    assert found == str(repo / "snapshots" / "abc123" / "open_clip_model.safetensors")


def test_cuda_device_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="model.device='cuda' but no CUDA device.*model.device=cpu"):
        models.resolve_device("cuda")


# profiles that load published weights by tag (the rehearsal reads a local file: no tag, no activation table)
PAPER_PROFILES = [name for name, build in PROFILES.items()
                  if build().source == "paper" and not build().model.pretrained.endswith(".pt")]


@pytest.mark.parametrize("profile_name", PAPER_PROFILES)
def test_paper_profile_architecture_matches_its_tags_activation(profile_name):
    """Read from open_clip's own tables, no download: a tag marked quick_gelu needs a QuickGELU model."""
    profile = PROFILES[profile_name]()  # as defined, whatever profile the test-suite forces
    model = profile.model
    tag_cfg = open_clip.get_pretrained_cfg(model.model_name, model.pretrained)
    assert tag_cfg, f"{model.model_name}/{model.pretrained} is not in open_clip's pretrained table"
    model_quick = open_clip.get_model_config(model.model_name).get("quick_gelu", False)
    assert tag_cfg.get("quick_gelu", False) == model_quick
    assert models.activation_mismatch(model.model_name, model.pretrained) is None
    assert profile.model.download and profile.data.download


def test_activation_mismatch_names_the_fix():
    assert models.activation_mismatch("ViT-B-32", "openai") == (
        "pretrained tag 'openai' was trained with QuickGELU but 'ViT-B-32' uses GELU: "
        "set model.model_name=ViT-B-32-quickgelu")
    assert models.activation_mismatch("ViT-B-32-quickgelu", "openai") is None
    assert models.activation_mismatch("ViT-B-32", "laion2b_s34b_b79k") is None
    with pytest.raises(ValueError, match="was trained with QuickGELU.*model.model_name=ViT-B-32-quickgelu"):
        load_clip("ViT-B-32", "openai")


TINY_GELU = {"embed_dim": 16,
             "vision_cfg": {"image_size": 16, "layers": 1, "width": 16, "head_width": 8, "patch_size": 8},
             "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}


@pytest.fixture
def quickgelu_tag(tmp_path, monkeypatch):
    """A tiny architecture with and without QuickGELU, and a tag trained with QuickGELU whose 'download'
    is a local state dict saved from the QuickGELU model: open_clip's tag path, no network."""
    for name, extra in (("pcclip-test-act", {}), ("pcclip-test-act-quickgelu", {"quick_gelu": True})):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**TINY_GELU, **extra}))
        open_clip.add_model_config(path)
    weights = tmp_path / "weights.pt"
    torch.save(open_clip.create_model("pcclip-test-act-quickgelu").state_dict(), weights)
    entry = {"url": "", "hf_hub": "pcclip-test/act/", "mean": (0.5,) * 3, "std": (0.5,) * 3, "quick_gelu": True}
    for name in ("pcclip-test-act", "pcclip-test-act-quickgelu"):
        monkeypatch.setitem(open_clip.pretrained._PRETRAINED, name, {"qg": dict(entry)})
    monkeypatch.setattr(open_clip.factory, "download_pretrained", lambda cfg, **kw: str(weights))
    monkeypatch.setattr(models, "cached_weights", lambda model_name, tag: str(weights))
    return "qg"


def test_quickgelu_tag_loads_into_the_quickgelu_architecture_without_warning(quickgelu_tag):
    with pytest.warns(UserWarning, match="QuickGELU mismatch"):  # what open_clip alone does with the plain model
        open_clip.create_model("pcclip-test-act", pretrained=quickgelu_tag)
    with pytest.raises(ValueError, match="set model.model_name=pcclip-test-act-quickgelu"):
        load_clip("pcclip-test-act", quickgelu_tag)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any QuickGELU (or other) warning fails the test
        bundle = load_clip("pcclip-test-act-quickgelu", quickgelu_tag)
    assert bundle.model.visual.transformer.resblocks[0].mlp.gelu.__class__.__name__ == "QuickGELU"
    assert bundle.model.visual.preprocess_cfg["mean"] == (0.5,) * 3  # the tag's preprocessing was applied


def test_download_on_an_offline_machine_fails_in_seconds_naming_the_file(tmp_path):
    """model.download with no network: an unreachable endpoint (never the real internet) and an empty cache."""
    code = ("import time, pcclip.models as m\nt0 = time.perf_counter()\n"
            "try:\n    m.load_clip('ViT-B-32-quickgelu', 'openai', download=True)\n"
            "except FileNotFoundError as e:\n    print(f'{time.perf_counter() - t0:.2f}', 'ERROR', e)\n")
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HUB_OFFLINE": "0"}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    seconds, _, message = out.stdout.partition(" ERROR ")
    assert message.startswith("weights for ViT-B-32-quickgelu/openai are not on this machine"), out.stderr
    assert "Hugging Face repo timm/vit_base_patch32_clip_224.openai" in out.stdout
    assert "download failed" in out.stdout and "model.pretrained=/path/to/file" in out.stdout
    assert float(seconds) < 10, message


def test_cached_tag_loads_with_the_hub_offline(quickgelu_tag, monkeypatch):
    """No HEAD requests for weights already on disk: huggingface_hub runs offline while open_clip loads."""
    seen, before = [], huggingface_hub.constants.HF_HUB_OFFLINE
    fetch = open_clip.factory.download_pretrained
    monkeypatch.setattr(open_clip.factory, "download_pretrained",
                        lambda cfg, **kw: seen.append(huggingface_hub.constants.HF_HUB_OFFLINE) or fetch(cfg, **kw))
    load_clip("pcclip-test-act-quickgelu", quickgelu_tag)
    assert seen == [True] and huggingface_hub.constants.HF_HUB_OFFLINE == before  # restored


def test_hf_hub_offline_forbids_downloads_without_a_request(no_downloads, monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(models, "unreachable", lambda url: pytest.fail(f"probed {url} although offline"))
    with pytest.raises(FileNotFoundError, match="weights for ViT-B-32-quickgelu/openai .*HF_HUB_OFFLINE is set"):
        load_clip("ViT-B-32-quickgelu", "openai", download=True)
