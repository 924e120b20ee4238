"""Open_clip checkpoints we did not train (the authors' released PC-CLIP, any state dict, a `pcclip.export`
folder), loaded to be scored beside a profile's own models.

Our own checkpoints are refused when they were finetuned with other settings than the profile has
(`pcclip.loading`); an external checkpoint has no recipe to compare, so that check is skipped on purpose and
its place taken by the file's sha256, which `pcclip.evaluate` records with its results. A checkpoint written by
`save_clip` is still checked against the weights fingerprint stored in it (damage, not settings).
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .fingerprint import fingerprint
from .models import ClipBundle, folder_weights, load_clip

FORMATS = ("a state dict saved with torch.save(model.state_dict(), PATH), a pcclip checkpoint, a .safetensors "
           "file, or an open_clip folder (python -m pcclip.export)")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class ExternalCheckpoint:
    """Where an external model's weights are, which open_clip architecture they fill, and the name its
    results carry (the `model` field of its metric rows)."""

    label: str
    path: str
    model_name: str

    def __post_init__(self) -> None:
        if not _LABEL.fullmatch(self.label):
            raise ValueError(f"external checkpoint label {self.label!r} must start with a letter or digit and hold "
                             "only letters, digits, '_', '-' or '.' (it names the metrics file and the model column)")


def parse_external(spec: str | Mapping[str, Any] | ExternalCheckpoint, model_name: str) -> ExternalCheckpoint:
    """"label=path" or {"label": ..., "path": ..., "model": ...}; the architecture defaults to `model_name`
    (the profile's)."""
    if isinstance(spec, ExternalCheckpoint):
        return spec
    if isinstance(spec, str):
        label, sep, path = spec.partition("=")
        fields = {"label": label.strip(), "path": path.strip()} if sep else {}
    else:
        fields = dict(spec)
    unknown = sorted(set(fields) - {"label", "path", "model"})
    if unknown or not fields.get("label") or not fields.get("path"):
        raise ValueError(f"external checkpoint {spec!r} must be 'label=path' or a dict with keys label, path "
                         f"and optionally model (unknown keys: {unknown}), e.g. 'authors=/ckpt/pc_clip.pt'")
    return ExternalCheckpoint(fields["label"], str(fields["path"]), fields.get("model") or model_name)


def weights_sha256(ext: ExternalCheckpoint) -> str:
    """sha256 of the file holding the weights (an open_clip folder's weights file)."""
    path = folder_weights(ext.path, ext.model_name, "--model") if os.path.isdir(ext.path) else ext.path
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def load_external(ext: ExternalCheckpoint, device: str = "cpu") -> ClipBundle:
    """The model of an external checkpoint, without the recipe check of our own runs (see the module
    docstring). A missing file, weights of another architecture and a checkpoint that names another model
    are refused, naming the file and the fix."""
    if not os.path.exists(ext.path):
        raise FileNotFoundError(f"external checkpoint {ext.label!r}: {ext.path!r} does not exist; pass the path "
                                f"of {FORMATS}")
    try:
        return load_clip(ext.model_name, ext.path, device, rebuild=f"fetch it again, or pass {FORMATS}",
                         name_option="--model")
    except ValueError as exc:
        raise ValueError(f"external checkpoint {ext.label!r}: {exc}") from None


def image_tower_fingerprint(bundle: ClipBundle) -> str:
    """Fingerprint of the image tower's weights: models that share it share every image embedding."""
    return fingerprint({k: v for k, v in bundle.model.state_dict().items() if k.startswith("visual.")})


def by_image_tower(models: Mapping[str, ClipBundle]) -> list[dict[str, ClipBundle]]:
    """The models grouped by image tower, in order of first appearance (each group keeps the given order)."""
    groups: dict[str, dict[str, ClipBundle]] = {}
    for name, bundle in models.items():
        groups.setdefault(image_tower_fingerprint(bundle), {})[name] = bundle
    return list(groups.values())


def add_external(models: dict[str, ClipBundle], specs: Iterable[str | Mapping[str, Any] | ExternalCheckpoint],
                 model_name: str, device: str) -> dict[str, ClipBundle]:
    """`models` plus each external checkpoint of `specs` under its label; the labels must be new."""
    out = dict(models)
    for spec in specs:
        ext = parse_external(spec, model_name)
        out = with_model(out, ext.label, load_external(ext, device))
    return out


def with_model(models: dict[str, ClipBundle], label: str, bundle: ClipBundle) -> dict[str, ClipBundle]:
    """`models` plus `bundle` under `label`, which must be new."""
    if label in models:
        raise ValueError(f"external checkpoint label {label!r} is taken (models: {list(models)}): choose another")
    return {**models, label: bundle}
