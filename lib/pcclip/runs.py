"""The finetuning runs a profile trains (notebook 02 and `pcclip.distributed`) and their checkpoints.

Runs: "pcclip" (difference descriptions), "caption_ft" (the paper's caption-only baseline: CLIP
loss on captions) and "base" (no finetuning, zero steps). A trained run is saved as
results/<profile>/checkpoints/<run>.pt with its recipe (settings, base model, data), and reused
while the recipe holds; its training state is named after the recipe's fingerprint.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .cache import embed_split
from .checkpoints import remove_states
from .finetune import finetune
from .fingerprint import fingerprint
from .models import ClipBundle, checkpoint_meta, save_clip
from .paths import RunPaths
from .profiles import FinetuneConfig, Profile
from .synthesis import differences_path
from .synthesis.store import load_accepted
from .traindata import TrainData
from .training import CAPTION_VARIANTS, world
from .world import build_split

RUNS = ("base", "pcclip", "caption_ft")
TRAINED_RUNS = ("pcclip", "caption_ft")
RERUN_02 = "rerun notebooks/02_finetune.ipynb"


def run_config(cfg: FinetuneConfig, run: str) -> FinetuneConfig:
    """The trainer settings of one run: PC-CLIP as configured, or a baseline derived from it."""
    if run == "pcclip":
        return replace(cfg, objective="pcclip")
    if run == "caption_ft":
        return replace(cfg, objective="caption", lr=cfg.caption_lr, steps=cfg.caption_steps,
                       epochs=cfg.caption_epochs, batch_size=cfg.caption_batch_size, caption_weight=0.0)
    if run == "base":
        return replace(cfg, objective="pcclip", steps=0, epochs=0.0)
    raise ValueError(f"unknown finetuning run {run!r}; choose one of {RUNS}")


@dataclass
class RunSummary:
    """What a notebook reports about one run (from the training itself or from its checkpoint)."""

    run: str
    history: list[dict]
    steps: int
    skipped: int
    seconds: float
    samples_per_s: float
    reused: bool  # True: a checkpoint with the same recipe existed, nothing was trained


def checkpoint_path(paths: RunPaths, run: str) -> Path:
    if run not in TRAINED_RUNS:
        raise ValueError(f"run {run!r} has no checkpoint; trained runs are {TRAINED_RUNS}")
    return paths.checkpoints / f"{run}.pt"


def run_settings(profile: Profile, run: str, base: ClipBundle) -> dict:
    """Everything that determines a finetuned model except the data (checked via its key separately)."""
    return {"run": run, "finetune": asdict(run_config(profile.finetune, run)), "model": base.model_name,
            "base": base.fingerprint}


def train_run(profile: Profile, paths: RunPaths, run: str, base: ClipBundle, data: TrainData,
              progress: bool = True) -> RunSummary:
    """Train one run and save it as results/<profile>/checkpoints/<run>.pt (rank 0), or reuse that file
    when it holds the same recipe and data. A crash resumes from the run's training state; once the
    run is saved, its training states (this recipe's and those of earlier settings) are removed."""
    cfg = run_config(profile.finetune, run)
    if run == "base":  # no finetuning: the same trainer with zero steps
        result = finetune(base, data, cfg, progress=False)
        return RunSummary(run, result.history, 0, 0, 0.0, 0.0, reused=False)
    recipe = {**run_settings(profile, run, base), "data": data.key()}
    ckpt = checkpoint_path(paths, run)
    if ckpt.exists() and (meta := checkpoint_meta(ckpt, RERUN_02)).get("recipe") == recipe:
        return RunSummary(run, meta["history"], meta["steps"], meta["skipped"], meta["seconds"],
                          meta["samples_per_s"], reused=True)
    state = paths.checkpoints / f"{run}_state-{fingerprint(recipe)}.pt"
    result = finetune(base, data, cfg, state_path=state, precision=profile.model.precision, progress=progress)
    summary = RunSummary(run, result.history, result.steps, result.skipped, result.seconds, result.samples_per_s,
                         reused=False)
    if world()[0] == 0:
        save_clip(result.bundle, base.model_name, ckpt,
                  meta={"recipe": recipe, **{k: v for k, v in asdict(summary).items() if k not in ("run", "reused")}})
        remove_states(paths.checkpoints, f"{run}_state-*.pt")
    return summary


def prepare_data(profile: Profile, paths: RunPaths, base: ClipBundle) -> TrainData:
    """DiffWorld training data: cached train-split image embeddings, the synthesised difference pairs
    (notebook 01) and fresh caption phrasings of the same images for the caption loss."""
    if profile.source != "diffworld":
        raise ValueError(f"profile {profile.name!r} trains on COCO: build TrainData from the COCO image-embedding "
                         "cache and the synthesised pairs (pcclip.synthesis) and call train_run with it")
    train = build_split(profile.world, "train")
    image_emb = embed_split(base, train, paths.cache, profile.cache, profile.model.precision, progress=False)
    pairs = load_accepted(differences_path(paths))
    captions = [c for v in range(CAPTION_VARIANTS) for c in train.captions(seed=1000 + v)]
    return TrainData(image_emb, torch.as_tensor(pairs.idx1), torch.as_tensor(pairs.idx2), list(pairs.texts),
                     torch.arange(len(train)).repeat(CAPTION_VARIANTS), captions)
