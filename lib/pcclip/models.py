"""CLIP models for every profile, built only through open_clip.

A model is named ``(model_name, pretrained)``: an open_clip tag, a local checkpoint
file, or "" for a fresh (randomly initialised) model that DiffWorld pretraining
fills in. Our small architectures are registered with ``open_clip.add_model_config``
on import, so ``create_model_and_transforms`` builds them like any other.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

import numpy as np
import open_clip
import torch

from .atomic import torch_save
from .fingerprint import fingerprint

_CONFIG_DIR = resources.files("pcclip") / "data" / "model_configs"
open_clip.add_model_config(str(_CONFIG_DIR))
CHECKPOINT_FORMAT = "pcclip-clip-v2"  # v2: fingerprints from pcclip.fingerprint, checked on load
REBUILD = "rebuild it (make reproduce), or point model.pretrained at a valid file"


@dataclass
class ClipBundle:
    """A CLIP model with everything needed to feed it, and its fingerprint."""

    model: Any  # open_clip.CLIP
    preprocess: Callable  # PIL image -> tensor (eval transform)
    tokenizer: Callable  # list[str] -> LongTensor (n, context_length)
    model_name: str
    pretrained: str
    fingerprint: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def images_to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (n, H, W, 3) arrays -> normalised float tensor, as `preprocess` would do."""
        cfg = self.model.visual.preprocess_cfg
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch_size: int = 1024) -> torch.Tensor:
        """Unnormalised text embeddings (float32, CPU) for a list of strings."""
        self.model.eval()
        out = [self.model.encode_text(self.tokenizer(texts[i:i + batch_size]).to(self.device)).float().cpu()
               for i in range(0, len(texts), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.model.text_projection.shape[1])


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"model.device={device!r} but no CUDA device is visible; use model.device=cpu")
    return device


def state_fingerprint(model_name: str, state_dict: dict[str, torch.Tensor]) -> str:
    """The fingerprint of the architecture name and every weight: identifies a model."""
    return fingerprint({"model": model_name, "weights": dict(state_dict)})


def _read_checkpoint(path: str | os.PathLike, rebuild: str) -> dict:
    """A pcclip checkpoint's contents, its metadata checked against the fingerprint stored with it."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or garbled files
        raise ValueError(f"checkpoint {str(path)!r} cannot be read ({type(exc).__name__}): it is truncated, "
                         f"corrupt or not a torch checkpoint; delete it and {rebuild}") from None
    current = isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT
    if current and fingerprint(ckpt.get("meta")) != ckpt.get("meta_fingerprint"):
        raise ValueError(f"checkpoint {str(path)!r} is corrupt: its metadata do not match the fingerprint stored "
                         f"with them; delete it and {rebuild}")
    return ckpt


def checkpoint_meta(path: str | os.PathLike, rebuild: str = REBUILD) -> dict:
    """The metadata saved with a checkpoint by `save_clip` (recipe, history, timing), checked on read."""
    ckpt = _read_checkpoint(path, rebuild)
    return ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}


def _checkpoint_fingerprint(path: str, model_name: str, rebuild: str) -> str | None:
    """The weights' stored fingerprint (None for files not written by this version of `save_clip`);
    refuses unreadable files and checkpoints of another architecture with a clear message."""
    ckpt = _read_checkpoint(path, rebuild)
    saved = ckpt.get("model_name") if isinstance(ckpt, dict) else None
    if saved is not None and saved != model_name:
        raise ValueError(f"checkpoint {path!r} holds a {saved!r} model, not {model_name!r}: set "
                         f"model.model_name={saved} or choose a checkpoint of {model_name!r}")
    return ckpt.get("fingerprint") if isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT else None


def _require_local_weights(model_name: str, tag: str) -> None:
    """Fail at once, naming what to fetch, when a pretrained tag is not in the local HF cache."""
    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = [t for m, t in open_clip.list_pretrained() if m == model_name]
        raise ValueError(f"unknown pretrained tag {tag!r} for {model_name!r}; known tags: {tags}, "
                         "or pass a local checkpoint file path")
    hub = cfg.get("hf_hub", "").strip("/")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        if any(isinstance(try_to_load_from_cache(hub, n), str) for n in names):
            return
        where = f"the Hugging Face repo {hub} (file {names[0]} or {names[1]})"
    else:
        where = f"the URL {cfg.get('url', '?')}"
    raise FileNotFoundError(
        f"weights for {model_name}/{tag} are not on this machine and downloads are off. Fetch {where} on a "
        "machine with internet (e.g. `python -c \"import open_clip; open_clip.create_model("
        f"'{model_name}', pretrained='{tag}')\"` fills ~/.cache/huggingface), copy the cache here, or save "
        "the file anywhere and pass model.pretrained=/path/to/file"
    )


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def load_clip(model_name: str, pretrained: str = "", device: str = "cpu", allow_download: bool = False,
              rebuild: str = REBUILD) -> ClipBundle:
    """Build (model_name, pretrained) through open_clip; same return type for tags and files.

    A checkpoint written by `save_clip` must hold the weights its stored fingerprint names (the
    fingerprint of the loaded model is computed anyway, so the check costs no extra pass); a damaged
    file is refused, naming it and `rebuild` (how to make it again)."""
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown model {model_name!r}; open_clip knows e.g. ViT-B-32, ViT-L-14, diffclip-tiny")
    stored = None
    if pretrained and os.path.isfile(pretrained):
        stored = _checkpoint_fingerprint(pretrained, model_name, rebuild)
    elif pretrained and (os.sep in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))):
        raise FileNotFoundError(f"checkpoint file {pretrained!r} does not exist: check model.pretrained, or "
                                "run notebooks/00_base_model.ipynb (make reproduce) to build it")
    elif pretrained and not allow_download:
        _require_local_weights(model_name, pretrained)
    try:
        with _quiet_root_logger():  # open_clip warns about random init, which is what "" asks for
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained or None, device=resolve_device(device))
    except (RuntimeError, AssertionError) as exc:  # strict load_state_dict, open_clip's pos-embed shape asserts
        raise ValueError(f"checkpoint {pretrained!r} does not fit architecture {model_name!r}: {exc}") from None
    model.eval()
    loaded = state_fingerprint(model_name, model.state_dict())
    if stored is not None and loaded != stored:
        raise ValueError(f"checkpoint {pretrained!r} is corrupt: its weights do not match the fingerprint stored "
                         f"with them (stored {stored}, read {loaded}); delete it and {rebuild}")
    return ClipBundle(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(model_name),
                      model_name=model_name, pretrained=pretrained, fingerprint=loaded)


def save_clip(bundle_or_model: Any, model_name: str, path: str | os.PathLike, meta: dict | None = None) -> str:
    """Write a checkpoint that `open_clip.create_model(model_name, pretrained=path)` loads back."""
    model = getattr(bundle_or_model, "model", bundle_or_model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    weights = state_fingerprint(model_name, state)
    meta = json.loads(json.dumps(meta or {}))
    torch_save({"format": CHECKPOINT_FORMAT, "model_name": model_name, "state_dict": state,
                "fingerprint": weights, "meta": meta, "meta_fingerprint": fingerprint(meta)}, path)
    return weights
