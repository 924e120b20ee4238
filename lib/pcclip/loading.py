"""The models the evaluation notebooks (03-05) compare, loaded from what notebooks 00 and 02 saved."""
from __future__ import annotations

from .averaging import averaged_bundle
from .basemodel import load_base_model
from .models import ClipBundle, checkpoint_meta, load_clip
from .paths import RunPaths
from .profiles import Profile
from .runs import RERUN_02, checkpoint_path, profile_runs, run_settings


def load_models(profile: Profile, paths: RunPaths) -> dict[str, ClipBundle]:
    """base, pcclip, caption_ft (and rewritten_ft when switched on) and pcclip_wa (alpha = finetune.wa_alpha)
    for the evaluation notebooks.

    Every checkpoint is checked against its stored fingerprint and against the profile's settings:
    a damaged or stale file is refused with the notebook that rebuilds it."""
    base = load_base_model(profile, paths)
    out = {"base": base}
    for run in profile_runs(profile, trained=True):
        ckpt = checkpoint_path(paths, run)
        if not ckpt.exists():
            raise FileNotFoundError(f"no {run!r} model at {ckpt}: run notebooks/02_finetune.ipynb for profile "
                                    f"{profile.name!r} first (make reproduce PROFILE={profile.name})")
        saved, expected = checkpoint_meta(ckpt, RERUN_02).get("recipe", {}), run_settings(profile, run, base)
        stale = [k for k in expected if saved.get(k) != expected[k]]
        if stale:
            raise ValueError(f"{ckpt} was finetuned with other settings ({stale}) than profile {profile.name!r} "
                             "has now: rerun notebooks/02_finetune.ipynb")
        out[run] = load_clip(profile.model.model_name, str(ckpt), profile.model.device, rebuild=RERUN_02)
    out["pcclip_wa"] = averaged_bundle(base, out["pcclip"], profile.finetune.wa_alpha)
    return out
