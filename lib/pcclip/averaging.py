"""Weight averaging (WiSE-FT): blend finetuned and base weights entry by entry.

Finetuning only changes the text tower, so a sweep over alpha only reloads the
entries that differ and re-encodes text: cached image embeddings serve every alpha.
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import torch

from .models import ClipBundle, state_fingerprint


def interpolate_state_dicts(base: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor],
                            alpha: float) -> dict[str, torch.Tensor]:
    """alpha * finetuned + (1 - alpha) * base for floating entries; other entries (counters, ids) must agree."""
    if set(base) != set(finetuned):
        diff = sorted(set(base) ^ set(finetuned))
        raise ValueError(f"state dicts hold different entries ({diff[:5]}...): they are not the same "
                         "architecture; average a finetuned model only with its own base")
    out = {}
    for key, b in base.items():
        f = finetuned[key]
        if b.shape != f.shape:
            raise ValueError(f"entry {key!r} has shape {tuple(b.shape)} in base and {tuple(f.shape)} finetuned")
        if b.is_floating_point():
            out[key] = torch.lerp(b, f.to(b.dtype), alpha) if alpha not in (0, 1) else (f if alpha else b).clone()
        elif torch.equal(b, f):
            out[key] = b.clone()
        else:
            raise ValueError(f"non-float entry {key!r} differs between base and finetuned: cannot average it")
    return out


def changed_entries(base: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor]) -> list[str]:
    """Entries that finetuning changed (for PC-CLIP: text-tower entries only)."""
    return [k for k in base if not torch.equal(base[k], finetuned[k])]


def averaged_bundle(base: ClipBundle, finetuned: ClipBundle, alpha: float) -> ClipBundle:
    """A new bundle with weights alpha * finetuned + (1 - alpha) * base."""
    model = copy.deepcopy(base.model)
    model.load_state_dict(interpolate_state_dicts(base.model.state_dict(), finetuned.model.state_dict(), alpha))
    model.eval()
    return ClipBundle(model=model, preprocess=base.preprocess, tokenizer=base.tokenizer, model_name=base.model_name,
                      pretrained=base.pretrained, fingerprint=state_fingerprint(base.model_name, model.state_dict()))


def interpolation_sweep(base: ClipBundle, finetuned: ClipBundle, alphas: Iterable[float],
                evaluate: Callable[[ClipBundle], dict[str, float]]) -> list[dict[str, float]]:
    """One row {alpha, **evaluate(bundle)} per alpha, reusing one model copy.

    Only the changed entries are blended and loaded for each alpha; `evaluate` should
    encode text with the bundle and reuse cached image embeddings (the image tower is
    identical at every alpha).
    """
    base_state, ft_state = base.model.state_dict(), finetuned.model.state_dict()
    keys = changed_entries(base_state, ft_state)
    work = ClipBundle(model=copy.deepcopy(base.model).eval(), preprocess=base.preprocess, tokenizer=base.tokenizer,
                      model_name=base.model_name, pretrained=base.pretrained, fingerprint=base.fingerprint)
    rows = []
    for alpha in alphas:
        blended = interpolate_state_dicts({k: base_state[k] for k in keys}, {k: ft_state[k] for k in keys}, alpha)
        work.model.load_state_dict(blended, strict=False)
        work.fingerprint = state_fingerprint(base.model_name, work.model.state_dict())
        rows.append({"alpha": float(alpha), **evaluate(work)})
    return rows
