"""The models the evaluation notebooks (03-05) compare, loaded from what notebooks 00 and 02 saved."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from .averaging import averaged_bundle
from .basemodel import load_base_model
from .external import add_external, image_tower_fingerprint
from .models import ClipBundle, checkpoint_meta, load_clip
from .paths import RunPaths
from .profiles import Profile
from .runs import RERUN_02, checkpoint_path, profile_runs, run_settings


def load_models(profile: Profile, paths: RunPaths, external: Iterable[str | Mapping[str, Any]] = (),
                require_trained: bool = True) -> dict[str, ClipBundle]:
    """base, pcclip, caption_ft (and rewritten_ft when switched on) and pcclip_wa (alpha = finetune.wa_alpha)
    for the evaluation notebooks, then the `external` checkpoints ("label=path" or {"label", "path", "model"},
    `pcclip.external`) under their labels.

    Every checkpoint of ours is checked against its stored fingerprint and against the profile's settings:
    a damaged or stale file is refused with the notebook that rebuilds it; a missing one too, unless
    `require_trained` is off (then it is left out, and pcclip_wa with pcclip). The notebooks embed images once,
    with the base model, so an external model must share its image tower (as a PC-CLIP finetune does)."""
    base = load_base_model(profile, paths)
    out = {"base": base}
    for run in profile_runs(profile, trained=True):
        ckpt = checkpoint_path(paths, run, profile.finetune.seed)
        if not ckpt.exists() and not require_trained:
            continue
        if not ckpt.exists():
            raise FileNotFoundError(f"no {run!r} model at {ckpt}: run notebooks/02_finetune.ipynb for profile "
                                    f"{profile.name!r} first (make reproduce PROFILE={profile.name})")
        saved, expected = checkpoint_meta(ckpt, RERUN_02).get("recipe", {}), run_settings(profile, run, base)
        stale = [k for k in expected if saved.get(k) != expected[k]]
        if stale:
            raise ValueError(f"{ckpt} was finetuned with other settings ({stale}) than profile {profile.name!r} "
                             "has now: rerun notebooks/02_finetune.ipynb")
        out[run] = load_clip(profile.model.model_name, str(ckpt), profile.model.device, rebuild=RERUN_02)
    if "pcclip" in out:
        out["pcclip_wa"] = averaged_bundle(base, out["pcclip"], profile.finetune.wa_alpha)
    with_external = add_external(out, external, profile.model.model_name, profile.model.device)
    added = [name for name in with_external if name not in out]  # hash the image towers only when there are any
    towers = image_tower_fingerprint(base) if added else ""
    other = [name for name in added if image_tower_fingerprint(with_external[name]) != towers]
    if other:
        raise ValueError(f"external checkpoints {other} have another image tower than profile {profile.name!r}'s "
                         "base model, whose image embeddings the notebooks share: score them with python -m "
                         "pcclip.evaluate, which embeds images with each model's own image tower")
    return with_external
