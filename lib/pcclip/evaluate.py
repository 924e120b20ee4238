"""Score an open_clip checkpoint we did not train through notebooks 03 and 04's evaluations, beside our models.

    python -m pcclip.evaluate --checkpoint PATH --model NAME --profile P [--label L] [--set k=v ...]

The checkpoint (`pcclip.external`: a state dict, a pcclip checkpoint, a .safetensors file or an open_clip
folder) is scored with the profile's base model and every finetuned model whose checkpoint exists (pcclip,
caption_ft, pcclip_wa), on the profile's difference sets, ranking tasks, zero-shot and comparative prompting.
Images are embedded with each model's own image tower: once for the models that share the base model's (a
PC-CLIP finetune), once more for a checkpoint with another. Writes
results/<profile>/metrics/external_<label>.json (metric rows of every model, `model` = the label for the
checkpoint; its `info` records the checkpoint's path, architecture and sha256) and prints one column per model.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from .evaluation.suites import classification_eval_rows, ranking_eval_rows
from .external import ExternalCheckpoint, by_image_tower, load_external, weights_sha256, with_model
from .loading import load_models
from .locking import run_lock
from .notebook import setup
from .paths import RunPaths
from .profiles import Profile, parse_overrides
from .results import IDENTITY, SHARED_MODEL, write_rows


def metrics_name(label: str) -> str:
    """The metrics file of an external checkpoint: results/<profile>/metrics/external_<label>.json."""
    return f"external_{label}"


def score_external(profile: Profile, paths: RunPaths, ext: ExternalCheckpoint) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Metric rows of notebooks 03 and 04's evaluations for the profile's available models and `ext`, and the
    facts that identify the checkpoint (its sha256 stands in for the recipe check our own models get)."""
    external = load_external(ext, profile.model.device)  # a bad checkpoint fails before our models load
    models = with_model(load_models(profile, paths, require_trained=False), ext.label, external)
    groups, parts = by_image_tower(models), []
    for i, group in enumerate(groups):
        name, images = next(iter(group.items()))  # the base model for our own models, else the checkpoint itself
        rows = pd.concat([ranking_eval_rows(profile, paths, group, images),
                          classification_eval_rows(profile, paths, group, images)], ignore_index=True)
        # image-only rows (headroom's class means, linear probe) belong to this group's image tower
        parts.append(rows if i == 0 else rows.assign(model=rows.model.replace(SHARED_MODEL, name)))
    info = {"label": ext.label, "checkpoint": os.path.abspath(ext.path), "model_name": ext.model_name,
            "sha256": weights_sha256(ext), "recipe_check": "skipped: external checkpoint, identified by its sha256",
            "image_tower": "the base model's" if ext.label in groups[0] else "its own",
            "models": list(models)}
    return pd.concat(parts, ignore_index=True), info


def comparison(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per metric identity, one column per model (in the order scored)."""
    keys = [c for c in IDENTITY if c not in ("notebook", "model", "seed")]
    table = rows.pivot_table(index=keys, columns="model", values="value", sort=False)
    return table.reindex(columns=[m for m in dict.fromkeys(rows.model) if m in table.columns])


def default_label(path: str) -> str:
    """The checkpoint's file or folder name, made safe for a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", Path(path.rstrip("/\\")).stem).lstrip(".-_") or "external"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcclip.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a state dict, pcclip checkpoint, .safetensors file or "
                        "open_clip folder")
    parser.add_argument("--model", help="its open_clip architecture, e.g. ViT-L-14 (default: the profile's)")
    parser.add_argument("--profile", default="diffworld")
    parser.add_argument("--label", help="its name in the results (default: the file name)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="profile override, e.g. eval.datasets=cifar10 (repeatable)")
    args = parser.parse_args(argv)
    profile, paths = setup(args.profile, parse_overrides(args.set))
    ext = ExternalCheckpoint(args.label or default_label(args.checkpoint), args.checkpoint,
                             args.model or profile.model.model_name)  # checks the label
    with run_lock(paths.root, "python -m pcclip.evaluate"):
        rows, info = score_external(profile, paths, ext)
        path = write_rows(paths, metrics_name(ext.label), rows, profile, info=info)
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(comparison(rows).round(3).to_string())
    print(f"{len(rows)} metric rows written to {path} (checkpoint sha256 {info['sha256']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
