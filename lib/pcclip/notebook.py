"""The one setup call every notebook makes after its parameters cell."""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from .paths import PER_SEED_NOTEBOOKS, RunPaths, run_paths
from .profiles import Profile, load_profile

QUIET_ENV = "PCCLIP_QUIET"  # set by the tests: no progress bars in nbval output


def setup(profile_name: str, overrides: dict[str, Any] | None = None,
          notebook: str | None = None) -> tuple[Profile, RunPaths]:
    """Validate the profile and overrides, seed every RNG, fix plotting defaults, make output folders.

    A notebook of PER_SEED_NOTEBOOKS names itself (`notebook`): its paths then name every file it writes after
    finetune.seed (`RunPaths.named`), so the runs of each seed sit side by side."""
    profile = load_profile(profile_name, overrides)
    random.seed(profile.seed)
    np.random.seed(profile.seed)
    torch.manual_seed(profile.seed)
    if os.environ.get(QUIET_ENV):
        os.environ["TQDM_DISABLE"] = "1"
    import matplotlib

    matplotlib.rcParams.update({"figure.dpi": 90, "figure.figsize": (7, 4), "axes.grid": False})
    paths = run_paths(profile.name, profile.finetune.seed if notebook in PER_SEED_NOTEBOOKS else None)
    for folder in (paths.metrics, paths.figures, paths.checkpoints, paths.cache, paths.data):
        folder.mkdir(parents=True, exist_ok=True)
    return profile, paths


def describe(profile: Profile) -> str:
    """A short, stable summary of a profile for the top of a notebook."""
    return (f"profile={profile.name} source={profile.source} model={profile.model.model_name}"
            f"{'/' + profile.model.pretrained if profile.model.pretrained else ''} seed={profile.seed}")
