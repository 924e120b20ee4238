"""A model as a plain open_clip folder, for anyone without pcclip:

    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:/path/to/folder")
    tokenizer = open_clip.get_tokenizer("local-dir:/path/to/folder")

The folder holds `open_clip_model.safetensors` (the full state dict) and `open_clip_config.json`
(`model_cfg`, `preprocess_cfg`, and where the weights came from), the layout open_clip reads
from a local folder or a Hugging Face repo.

    python -m pcclip.export CHECKPOINT --model diffclip-tiny --out DIR
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import open_clip
from safetensors.torch import save_file

from .atomic import atomic_path, write_json
from .models import ClipBundle, load_clip

WEIGHTS = "open_clip_model.safetensors"
CONFIG = "open_clip_config.json"


def export_open_clip(bundle: ClipBundle, folder: str | os.PathLike) -> Path:
    """Write the bundle's weights and config into `folder`; returns the folder."""
    folder = Path(folder)
    model_cfg = open_clip.get_model_config(bundle.model_name)
    if model_cfg is None:
        raise ValueError(f"open_clip has no config for {bundle.model_name!r}; export a model open_clip can build")
    # safetensors refuses tensors that share memory: give each its own contiguous copy
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in bundle.model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    preprocess = {k: list(v) if isinstance(v, tuple) else v for k, v in bundle.model.visual.preprocess_cfg.items()}
    write_json(folder / CONFIG, {"model_cfg": model_cfg, "preprocess_cfg": preprocess,
                                 "pcclip": {"model_name": bundle.model_name, "pretrained": bundle.pretrained,
                                            "fingerprint": bundle.fingerprint}})
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcclip.export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a pcclip checkpoint file (e.g. results/<profile>/checkpoints/seed0/pcclip.pt)")
    parser.add_argument("--model", required=True, help="its open_clip architecture, e.g. ViT-L-14")
    parser.add_argument("--out", required=True, help="folder to write")
    args = parser.parse_args(argv)
    folder = export_open_clip(load_clip(args.model, args.checkpoint), args.out)
    print(f"wrote {folder}: open_clip.create_model_and_transforms('local-dir:{folder}')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
