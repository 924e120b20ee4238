"""The rehearsal's base model: DiffWorld's pretrained diffclip-tiny, saved as a plain open_clip
state-dict file and read back with `model.pretrained=/path`, exactly as a user's downloaded
checkpoint (open_clip_pytorch_model.bin) is read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import torch_save
from ..basemodel import build_base_model, load_base_model
from ..models import ClipBundle, load_clip
from ..paths import RunPaths, run_paths
from ..profiles import load_profile


def _base_bundle(profile_name: str, overrides: dict[str, Any] | None, scratch: Path) -> ClipBundle:
    """The profile's DiffWorld base model: results/<profile>/checkpoints/base.pt when it matches the
    profile's recipe, else pretrained into `scratch` (results/<profile> is never written)."""
    profile = load_profile(profile_name, overrides)
    if profile.source != "diffworld" or profile.model.pretrained:
        raise ValueError(f"the rehearsal base model is pretrained on DiffWorld: profile {profile.name!r} loads "
                         f"{profile.model.pretrained or profile.source!r} instead; use 'diffworld' or 'smoke'")
    try:
        return load_base_model(profile, run_paths(profile.name))
    except (FileNotFoundError, ValueError):  # not built yet, or built with other settings
        return build_base_model(profile, RunPaths(scratch))


def write_base_model(path: str | Path, profile_name: str = "diffworld",
                     overrides: dict[str, Any] | None = None) -> ClipBundle:
    """Write the DiffWorld base model of `profile_name` (with `overrides`) to `path` as a bare state dict
    (no pcclip metadata) and return it as `load_clip` reads that file back."""
    path = Path(path)
    bundle = _base_bundle(profile_name, overrides, path.parent / "pretrain")
    torch_save({k: v.detach().cpu() for k, v in bundle.model.state_dict().items()}, path)
    return load_clip(bundle.model_name, str(path), "cpu")
