"""The base CLIP of a profile: pretrained on DiffWorld (and cached as a checkpoint) or loaded by tag/file."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import open_clip
import torch

from .models import ClipBundle, load_clip, save_clip
from .paths import RunPaths
from .pretrain import pretrain
from .profiles import Profile
from .world import build_split
from .world.captions import vocabulary


def base_checkpoint(paths: RunPaths) -> Path:
    return paths.checkpoints / "base.pt"


def _recipe(profile: Profile) -> dict:
    """Everything that determines the pretrained weights; a change means retraining. The architecture
    config is included so editing the model JSON rebuilds the model instead of failing to load it, and
    the caption vocabulary so editing data/diffworld_captions.json retrains on the new captions."""
    return {"model": profile.model.model_name, "architecture": open_clip.get_model_config(profile.model.model_name),
            "world": asdict(profile.world), "pretrain": asdict(profile.pretrain), "captions": vocabulary()}


def _recipe_hash(profile: Profile) -> str:
    return hashlib.sha256(json.dumps(_recipe(profile), sort_keys=True).encode()).hexdigest()[:16]


def base_meta(path: Path) -> dict:
    """The metadata saved with a pretrained base checkpoint (recipe, history, timing)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True).get("meta", {})
    except Exception as exc:  # torch raises several types for corrupt files
        raise ValueError(f"base model checkpoint {path} cannot be read ({type(exc).__name__}); delete it and "
                         "rerun notebooks/00_base_model.ipynb to rebuild it") from None


def build_base_model(profile: Profile, paths: RunPaths) -> ClipBundle:
    """Load the profile's base model, pretraining it first when no matching checkpoint exists.

    Pretraining resumes from its last training state after a crash; the final
    checkpoint records the recipe, so changing the world or pretrain settings
    rebuilds the model instead of silently reusing the old one.
    """
    if profile.source == "paper":
        return load_clip(profile.model.model_name, profile.model.pretrained, profile.model.device)
    if profile.model.pretrained:
        return load_clip(profile.model.model_name, profile.model.pretrained, profile.model.device)
    ckpt = base_checkpoint(paths)
    if ckpt.exists() and base_meta(ckpt).get("recipe_hash") == _recipe_hash(profile):
        return load_clip(profile.model.model_name, str(ckpt), profile.model.device)
    torch.manual_seed(profile.pretrain.seed)  # the random init is part of the recipe
    bundle = load_clip(profile.model.model_name, "", profile.model.device)
    state = paths.checkpoints / f"pretrain_state-{_recipe_hash(profile)}.pt"
    result = pretrain(bundle, build_split(profile.world, "train"), profile.pretrain, state_path=state)
    save_clip(bundle, profile.model.model_name, ckpt,
              meta={"recipe": _recipe(profile), "recipe_hash": _recipe_hash(profile), "history": result.history,
                    "seconds": result.seconds, "resumed_from": result.resumed_from})
    state.unlink(missing_ok=True)
    return load_clip(profile.model.model_name, str(ckpt), profile.model.device)


def load_base_model(profile: Profile, paths: RunPaths) -> ClipBundle:
    """The base model without training: fails clearly if notebook 00 has not built it yet."""
    if profile.source == "paper" or profile.model.pretrained:
        return load_clip(profile.model.model_name, profile.model.pretrained, profile.model.device)
    ckpt = base_checkpoint(paths)
    if not ckpt.exists():
        raise FileNotFoundError(f"no base model at {ckpt}: run notebooks/00_base_model.ipynb for profile "
                                f"{profile.name!r} first (make reproduce PROFILE={profile.name})")
    if base_meta(ckpt).get("recipe_hash") != _recipe_hash(profile):
        raise ValueError(f"base model {ckpt} was pretrained with other world/pretrain settings than profile "
                         f"{profile.name!r} now has: rerun notebooks/00_base_model.ipynb to rebuild it")
    return load_clip(profile.model.model_name, str(ckpt), profile.model.device)
