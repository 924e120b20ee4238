"""The base CLIP of a profile: pretrained on DiffWorld (and cached as a checkpoint) or loaded by tag/file."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import open_clip
import torch

from .checkpoints import remove_states
from .fingerprint import fingerprint
from .models import ClipBundle, checkpoint_meta, load_clip, save_clip
from .paths import RunPaths
from .pretrain import pretrain
from .profiles import Profile
from .world import build_split
from .world.captions import vocabulary

RERUN_00 = "rerun notebooks/00_base_model.ipynb to rebuild it"


def base_checkpoint(paths: RunPaths) -> Path:
    return paths.checkpoints / "base.pt"


def _pretrain_recipe(profile: Profile) -> dict:
    """Everything that determines the pretrained weights; a change means retraining. The architecture
    config is included so editing the model JSON rebuilds the model instead of failing to load it, and
    the caption vocabulary so editing data/diffworld_captions.json retrains on the new captions."""
    return {"model": profile.model.model_name, "architecture": open_clip.get_model_config(profile.model.model_name),
            "world": asdict(profile.world), "pretrain": asdict(profile.pretrain), "captions": vocabulary()}


def base_meta(path: Path) -> dict:
    """The metadata saved with a pretrained base checkpoint (recipe, history, timing), checked on read."""
    return checkpoint_meta(path, RERUN_00)


def _load_base(profile: Profile, ckpt: Path) -> ClipBundle:
    return load_clip(profile.model.model_name, str(ckpt), profile.model.device, rebuild=RERUN_00)


def build_base_model(profile: Profile, paths: RunPaths) -> ClipBundle:
    """Load the profile's base model, pretraining it first when no matching checkpoint exists.

    Pretraining resumes from its last training state after a crash; the final
    checkpoint records the recipe, so changing the world or pretrain settings
    rebuilds the model instead of silently reusing the old one.
    """
    if profile.source == "paper" or profile.model.pretrained:
        return load_clip(profile.model.model_name, profile.model.pretrained, profile.model.device,
                         download=profile.model.download)
    ckpt, recipe_hash = base_checkpoint(paths), fingerprint(_pretrain_recipe(profile))
    if ckpt.exists() and base_meta(ckpt).get("recipe_hash") == recipe_hash:
        return _load_base(profile, ckpt)
    torch.manual_seed(profile.pretrain.seed)  # the random init is part of the recipe
    bundle = load_clip(profile.model.model_name, "", profile.model.device)
    state = paths.checkpoints / f"pretrain_state-{recipe_hash}.pt"
    result = pretrain(bundle, build_split(profile.world, "train"), profile.pretrain, state_path=state)
    save_clip(bundle, profile.model.model_name, ckpt,
              meta={"recipe": _pretrain_recipe(profile), "recipe_hash": recipe_hash, "history": result.history,
                    "seconds": result.seconds, "resumed_from": result.resumed_from})
    remove_states(paths.checkpoints, "pretrain_state-*.pt")
    return _load_base(profile, ckpt)


def load_base_model(profile: Profile, paths: RunPaths) -> ClipBundle:
    """The base model without training: fails clearly if notebook 00 has not built it yet."""
    if profile.source == "paper" or profile.model.pretrained:
        return load_clip(profile.model.model_name, profile.model.pretrained, profile.model.device,
                         download=profile.model.download)
    ckpt = base_checkpoint(paths)
    if not ckpt.exists():
        raise FileNotFoundError(f"no base model at {ckpt}: run notebooks/00_base_model.ipynb for profile "
                                f"{profile.name!r} first (make reproduce PROFILE={profile.name})")
    if base_meta(ckpt).get("recipe_hash") != fingerprint(_pretrain_recipe(profile)):
        raise ValueError(f"base model {ckpt} was pretrained with other world/pretrain settings than profile "
                         f"{profile.name!r} now has: {RERUN_00}")
    return _load_base(profile, ckpt)
