"""CLIP models for every profile, built only through open_clip.

A model is named ``(model_name, pretrained)``: an open_clip tag, a local checkpoint
file, or "" for a fresh (randomly initialised) model that DiffWorld pretraining
fills in. Our small architectures are registered with ``open_clip.add_model_config``
on import, so ``create_model_and_transforms`` builds them like any other.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

import numpy as np
import open_clip
import torch
from PIL import Image

from .atomic import torch_save

_CONFIG_DIR = resources.files("pcclip") / "data" / "model_configs"
open_clip.add_model_config(str(_CONFIG_DIR))
CHECKPOINT_FORMAT = "pcclip-clip-v1"


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

    def takes_as_is(self, height: int, width: int) -> bool:
        """Whether images of this size are already the model's input size: then `preprocess`'s resize
        and centre crop leave them unchanged and only normalisation remains (bit-identical, tested)."""
        size = self.model.visual.preprocess_cfg["size"]
        return (height, width) == (tuple(size) if isinstance(size, (tuple, list)) else (size, size))

    def images_to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (n, H, W, 3) arrays of any size -> the model's input, exactly as `preprocess` makes it
        (resize, centre crop, normalise); images already at the input size skip PIL (DiffWorld's path)."""
        if not self.takes_as_is(*images.shape[1:3]):
            return torch.stack([self.preprocess(Image.fromarray(np.asarray(im, dtype=np.uint8))) for im in images])
        cfg = self.model.visual.preprocess_cfg
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        return (x - mean) / std

    @property
    def preprocess_key(self) -> str:
        """Names every step of `preprocess` and its sizes: part of an image cache's identity."""
        return transform_key(self.preprocess)

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch_size: int = 1024) -> torch.Tensor:
        """Unnormalised text embeddings (float32, CPU) for a list of strings."""
        self.model.eval()
        out = [self.model.encode_text(self.tokenizer(texts[i:i + batch_size]).to(self.device)).float().cpu()
               for i in range(0, len(texts), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.model.text_projection.shape[1])


def transform_key(transform: Callable) -> str:
    """repr of a transform (a Compose names every step and its sizes) without memory addresses."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transform))


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"model.device={device!r} but no CUDA device is visible; use model.device=cpu")
    return device


def state_fingerprint(model_name: str, state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 of the architecture name and every weight, in key order: identifies a model."""
    h = hashlib.sha256(model_name.encode())
    for key in sorted(state_dict):
        t = state_dict[key].detach().to("cpu").contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _check_checkpoint_file(path: str, model_name: str) -> None:
    """Refuse unreadable files and checkpoints of another architecture with a clear message."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ValueError(f"checkpoint {path!r} cannot be read ({type(exc).__name__}); it is corrupt or "
                         "not a torch checkpoint: delete it and rebuild it (make reproduce) or point "
                         "model.pretrained at a valid file") from None
    saved = ckpt.get("model_name") if isinstance(ckpt, dict) else None
    if saved is not None and saved != model_name:
        raise ValueError(f"checkpoint {path!r} holds a {saved!r} model, not {model_name!r}: set "
                         f"model.model_name={saved} or choose a checkpoint of {model_name!r}")


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


def load_clip(model_name: str, pretrained: str = "", device: str = "cpu", allow_download: bool = False) -> ClipBundle:
    """Build (model_name, pretrained) through open_clip; same return type for tags and files."""
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown model {model_name!r}; open_clip knows e.g. ViT-B-32, ViT-L-14, diffclip-tiny")
    if pretrained and os.path.isfile(pretrained):
        _check_checkpoint_file(pretrained, model_name)
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
    return ClipBundle(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(model_name),
                      model_name=model_name, pretrained=pretrained,
                      fingerprint=state_fingerprint(model_name, model.state_dict()))


def save_clip(bundle_or_model: Any, model_name: str, path: str | os.PathLike, meta: dict | None = None) -> str:
    """Write a checkpoint that `open_clip.create_model(model_name, pretrained=path)` loads back."""
    model = getattr(bundle_or_model, "model", bundle_or_model)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    fingerprint = state_fingerprint(model_name, state)
    torch_save({"format": CHECKPOINT_FORMAT, "model_name": model_name, "state_dict": state,
                "fingerprint": fingerprint, "meta": json.loads(json.dumps(meta or {}))}, path)
    return fingerprint
