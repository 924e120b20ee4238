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
from typing import Any, Callable

import numpy as np
import open_clip
import torch
from PIL import Image
from torchvision.transforms import Compose, Normalize, ToTensor

from .atomic import torch_save
from .clip_tables import (CONFIG_DIR, HUB_FILES, activation_mismatch, cached_weights, hub_repo,
                          missing_weights_message, pretrained_cfg)
from .fingerprint import fingerprint, transform_key
from .network import unreachable

open_clip.add_model_config(str(CONFIG_DIR))
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
    def resize_crop(self) -> Callable[[Image.Image], np.ndarray]:
        """`preprocess` up to its tensor conversion: PIL image -> uint8 (H, W, 3) at the model's input size.
        A batch of these through `images_to_tensor` equals `preprocess` image by image, bit for bit
        (tested), with the tensor work done once per batch instead of per image; DataLoader workers
        then also ship uint8 instead of float32 (`pcclip.cache.DatasetSource.to_tensor`)."""
        steps = list(getattr(self.preprocess, "transforms", [self.preprocess]))  # a Compose, or one step
        cut = next((i for i, step in enumerate(steps) if isinstance(step, ToTensor)), len(steps))
        tail = steps[cut:]
        cfg = self.model.visual.preprocess_cfg
        if not (len(tail) == 2 and isinstance(tail[1], Normalize) and tuple(tail[1].mean) == tuple(cfg["mean"])
                and tuple(tail[1].std) == tuple(cfg["std"])):
            raise ValueError(f"{self.model_name}: preprocess {self.preprocess} does not end in ToTensor and "
                             f"Normalize({cfg['mean']}, {cfg['std']}); embed with `preprocess` itself")
        return Compose([*steps[:cut], _uint8_array])

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


def _uint8_array(image: Image.Image) -> np.ndarray:
    return np.array(image, dtype=np.uint8)  # a writable copy: torch warns on read-only arrays


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
    """A pcclip checkpoint's contents, its metadata checked against the fingerprint stored with it.
    A .safetensors file (open_clip's hub format) names no architecture: only its header is checked."""
    try:
        if str(path).endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(str(path), framework="pt"):
                return {}
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise several types for truncated or garbled files
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


def _checkpoint_fingerprint(path: str, model_name: str, rebuild: str, name_option: str) -> str | None:
    """The weights' stored fingerprint (None for files not written by this version of `save_clip`);
    refuses unreadable files and checkpoints of another architecture with a clear message."""
    ckpt = _read_checkpoint(path, rebuild)
    _check_saved_name(path, ckpt.get("model_name") if isinstance(ckpt, dict) else None, model_name, name_option)
    return ckpt.get("fingerprint") if isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT else None


def _check_saved_name(path: str, saved: str | None, model_name: str, name_option: str) -> None:
    if saved is not None and saved != model_name:
        raise ValueError(f"checkpoint {path!r} holds a {saved!r} model, not {model_name!r}: set "
                         f"{name_option}={saved} or choose a checkpoint of {model_name!r}")


def folder_weights(folder: str, model_name: str, name_option: str) -> str:
    """The weights file of an open_clip folder (`pcclip.export`, a downloaded hub repo), checked."""
    found = [os.path.join(folder, n) for n in HUB_FILES if os.path.isfile(os.path.join(folder, n))]
    if not found:
        raise FileNotFoundError(f"folder {folder!r} holds no {HUB_FILES[0]} or {HUB_FILES[1]}: point "
                                "model.pretrained at an open_clip folder or a checkpoint file")
    config = os.path.join(folder, "open_clip_config.json")
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as fh:
            _check_saved_name(folder, json.load(fh).get("pcclip", {}).get("model_name"), model_name, name_option)
    return found[0]


def _download_weights(model_name: str, tag: str) -> None:
    """Fill the local cache through open_clip/huggingface_hub. Honours $HF_HUB_OFFLINE and $HF_ENDPOINT;
    one short probe first, so an offline machine fails in seconds (not after huggingface_hub's retries)."""
    from huggingface_hub import constants

    cfg = pretrained_cfg(model_name, tag)
    repo, _ = hub_repo(cfg)
    if repo and constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"{missing_weights_message(model_name, tag)} (HF_HUB_OFFLINE is set: unset it "
                                "to download)")
    server = f"{constants.ENDPOINT}/api/models/{repo}" if repo else cfg["url"]
    if reason := unreachable(server):
        raise FileNotFoundError(f"{missing_weights_message(model_name, tag)} (download failed: no answer from "
                                f"{server}: {reason})")
    try:
        open_clip.pretrained.download_pretrained(cfg)
    except Exception as exc:  # huggingface_hub and urllib raise many types; all mean "not fetched"
        raise FileNotFoundError(f"{missing_weights_message(model_name, tag)} (download failed: "
                                f"{type(exc).__name__}: {str(exc)[:300]})") from None


@contextlib.contextmanager
def _hub_offline():
    """Cached weights load without a network round trip (no HEAD requests that retry for ~40 s)."""
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = offline


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def load_clip(model_name: str, pretrained: str = "", device: str = "cpu", download: bool = False,
              rebuild: str = REBUILD, name_option: str = "model.model_name") -> ClipBundle:
    """Build (model_name, pretrained) through open_clip; same return type for tags, files and open_clip
    folders (an exported model, a downloaded hub repo).

    A tag is checked against its activation first, then loaded from the local cache without touching
    the network; `download=True` fetches it first when it is not cached. A checkpoint written by
    `save_clip` must hold the weights its stored fingerprint names (the fingerprint of the loaded model
    is computed anyway, so the check costs no extra pass); a damaged file is refused, naming it and
    `rebuild` (how to make it again). A file of another architecture is refused naming `name_option`,
    the setting that chooses the architecture where the caller takes it from."""
    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown model {model_name!r}; open_clip knows e.g. ViT-B-32, ViT-L-14, diffclip-tiny")
    stored, is_tag, weights = None, False, pretrained
    if pretrained and os.path.isdir(pretrained):
        weights = folder_weights(pretrained, model_name, name_option)
        stored = _checkpoint_fingerprint(weights, model_name, rebuild, name_option)
    elif pretrained and os.path.isfile(pretrained):
        stored = _checkpoint_fingerprint(pretrained, model_name, rebuild, name_option)
    elif pretrained and (os.sep in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))):
        raise FileNotFoundError(f"checkpoint file {pretrained!r} does not exist: check model.pretrained, or "
                                "run notebooks/00_base_model.ipynb (make reproduce) to build it")
    elif pretrained:
        is_tag = True
        if mismatch := activation_mismatch(model_name, pretrained):
            raise ValueError(mismatch)
        if cached_weights(model_name, pretrained) is None:
            if not download:
                raise FileNotFoundError(f"{missing_weights_message(model_name, pretrained)} (downloads are off)")
            _download_weights(model_name, pretrained)
    try:
        with _quiet_root_logger(), (_hub_offline() if is_tag else contextlib.nullcontext()):
            # open_clip warns about random init, which is what "" asks for
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=weights or None, device=resolve_device(device))
    except (RuntimeError, AssertionError) as exc:  # strict load_state_dict, open_clip's pos-embed shape asserts
        why = " ".join(str(exc).split())[:300]  # strict loading lists every missing key: keep the first few
        raise ValueError(f"checkpoint {pretrained!r} does not fit architecture {model_name!r} ({why}...): set "
                         f"{name_option} to the architecture it was saved from") from None
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
