"""The finetuning runs a profile trains (notebook 02 and `pcclip.distributed`) and their checkpoints.

Runs: "pcclip" (difference descriptions), "caption_ft" (the paper's caption-only baseline: CLIP
loss on captions), "rewritten_ft" (the paper's second baseline, the same loss on LLM-rewritten captions;
only with finetune.rewritten_captions), "pcclip_hn" (PC-CLIP with hard negatives, an extension; only with
finetune.hard_negatives) and "base" (no finetuning, zero steps). A trained run is saved as
results/<profile>/checkpoints/seed<s>/<run>.pt (s = finetune.seed; every seed finetunes the same base.pt) with
its recipe (settings, base model, data), and reused while the recipe holds; its training state, beside it, is
named after the recipe's fingerprint.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .cache import DatasetSource, embed_images, embed_split
from .checkpoints import remove_states
from .finetune import finetune
from .fingerprint import fingerprint
from .models import ClipBundle, checkpoint_meta, save_clip
from .paths import RunPaths
from .profiles import FinetuneConfig, Profile
from .synthesis import differences_path
from .synthesis.coco import CocoCaptions, CocoImages
from .synthesis.rewriting import load_rewritten, rewritten_path
from .synthesis.sources import load_coco
from .synthesis.store import DifferencePairs, load_accepted, meta_path
from .traindata import TrainData
from .training import CAPTION_VARIANTS, world
from .world import WorldSplit, build_split

RUNS = ("base", "pcclip", "pcclip_hn", "caption_ft", "rewritten_ft")
TRAINED_RUNS = ("pcclip", "pcclip_hn", "caption_ft", "rewritten_ft")
# run -> the finetune switch that turns it on
OPTIONAL_RUNS = {"rewritten_ft": "rewritten_captions", "pcclip_hn": "hard_negatives"}
HARD_NEGATIVE_FIELDS = ("hard_negatives", "negatives_per_text")
RERUN_02 = "rerun notebooks/02_finetune.ipynb"
RERUN_01 = "rerun notebooks/01_data_synthesis.ipynb for this profile"
COCO_HELP = ("README 'Paper profile: weights and data' gives the layout; the rehearsal profile's data root is "
             "written by python -m pcclip.rehearsal DIR")


def profile_runs(profile: Profile, trained: bool = False) -> tuple[str, ...]:
    """The runs `profile` trains (RUNS, or TRAINED_RUNS with `trained`), optional ones only when switched on."""
    return tuple(r for r in (TRAINED_RUNS if trained else RUNS)
                 if r not in OPTIONAL_RUNS or getattr(profile.finetune, OPTIONAL_RUNS[r]))


def run_config(cfg: FinetuneConfig, run: str) -> FinetuneConfig:
    """The trainer settings of one run: PC-CLIP as configured, or a variant or baseline derived from it. Only
    pcclip_hn trains with hard negatives: finetune.hard_negatives adds that run beside the paper's loss."""
    if run == "pcclip_hn":
        return replace(cfg, objective="pcclip", hard_negatives=True)
    cfg = replace(cfg, hard_negatives=False)
    if run == "pcclip":
        return replace(cfg, objective="pcclip")
    if run == "caption_ft":
        return replace(cfg, objective="caption", lr=cfg.caption_lr, steps=cfg.caption_steps,
                       epochs=cfg.caption_epochs, batch_size=cfg.caption_batch_size, caption_weight=0.0)
    if run == "rewritten_ft":
        return replace(cfg, objective="caption", lr=cfg.rewritten_lr, steps=cfg.rewritten_steps,
                       epochs=cfg.rewritten_epochs, batch_size=cfg.caption_batch_size, caption_weight=0.0)
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


def checkpoint_path(paths: RunPaths, run: str, seed: int) -> Path:
    """The checkpoint of trained run `run` finetuned with finetune seed `seed`."""
    if run not in TRAINED_RUNS:
        raise ValueError(f"run {run!r} has no checkpoint; trained runs are {TRAINED_RUNS}")
    return paths.finetuned(seed) / f"{run}.pt"


def run_settings(profile: Profile, run: str, base: ClipBundle) -> dict:
    """Everything that determines a finetuned model except the data (checked via its key separately). The
    rewritten_* fields are left out: `run_config` has copied what they set into the trainer's own fields, and
    checkpoints trained before they existed keep their recipe; so are the hard-negative fields of a run without
    them, and `seeds` (which seeds the pipeline runs: a model is determined by its own `seed`, and adding a seed
    must not make the others stale), and `relational_captions`, which shapes only the captions (the data key)."""
    cfg = asdict(run_config(profile.finetune, run))
    drop = {k for k in cfg if k.startswith("rewritten_") or k in ("seeds", "relational_captions")
            or (k in HARD_NEGATIVE_FIELDS and not cfg["hard_negatives"])}
    return {"run": run, "finetune": {k: v for k, v in cfg.items() if k not in drop},
            "model": base.model_name, "base": base.fingerprint}


def train_run(profile: Profile, paths: RunPaths, run: str, base: ClipBundle, data: TrainData,
              progress: bool = True) -> RunSummary:
    """Train one run and save it as results/<profile>/checkpoints/seed<s>/<run>.pt (rank 0), or reuse that file
    when it holds the same recipe and data. A crash resumes from the run's training state; once the
    run is saved, its training states (this recipe's and those of earlier settings) are removed."""
    cfg = run_config(profile.finetune, run)
    data = run_data(profile, paths, run, data)
    if run == "base":  # no finetuning: the same trainer with zero steps
        result = finetune(base, data, cfg, progress=False)
        return RunSummary(run, result.history, 0, 0, 0.0, 0.0, reused=False)
    recipe = {**run_settings(profile, run, base), "data": data.key()}
    ckpt = checkpoint_path(paths, run, profile.finetune.seed)
    if ckpt.exists() and (meta := checkpoint_meta(ckpt, RERUN_02)).get("recipe") == recipe:
        _note_other_threads(ckpt, meta)
        return RunSummary(run, meta["history"], meta["steps"], meta["skipped"], meta["seconds"],
                          meta["samples_per_s"], reused=True)
    state = ckpt.parent / f"{run}_state-{fingerprint(recipe)}.pt"
    result = finetune(base, data, cfg, state_path=state, progress=progress)
    summary = RunSummary(run, result.history, result.steps, result.skipped, result.seconds, result.samples_per_s,
                         reused=False)
    if world()[0] == 0:
        save_clip(result.bundle, base.model_name, ckpt,
                  meta={"recipe": recipe, "threads": torch.get_num_threads(),
                        **{k: v for k, v in asdict(summary).items() if k not in ("run", "reused")}})
        remove_states(ckpt.parent, f"{run}_state-*.pt")
    return summary


def _note_other_threads(ckpt: Path, meta: dict) -> None:
    """Say so when a reused run trained with another torch thread count: CPU kernels sum in a thread-dependent
    order, so retraining with today's count gives other weights (README, Determinism), yet the recipe leaves the
    count out so that a run is not retrained merely for running elsewhere. Runs saved before the count was
    recorded say nothing."""
    saved, now = meta.get("threads"), torch.get_num_threads()
    if saved is not None and saved != now:
        print(f"[02] reusing {ckpt}, trained with {saved} torch threads (now {now}): delete it to retrain with "
              f"{now}", flush=True)


def run_data(profile: Profile, paths: RunPaths, run: str, data: TrainData) -> TrainData:
    """What `run` trains on (and its checkpoint's recipe keys): the rewritten captions for rewritten_ft, and the
    pairs' hard negatives only for a run that uses them, so the other runs' checkpoints do not depend on them."""
    if run == "rewritten_ft":
        data = rewritten_data(data, rewritten_path(paths))
    if run_config(profile.finetune, run).hard_negatives:
        return hard_negative_data(data, differences_path(paths))
    return replace(data, negatives=None)


def hard_negative_data(data: TrainData, store: Path) -> TrainData:
    """`data`, checked to carry each pair's hard negatives (the `negatives` field of the records at `store`)."""
    if data.negatives is None:
        raise ValueError(f"finetune.hard_negatives needs false descriptions of each pair, but the records of {store} "
                         "have no 'negatives' field: regenerate the difference data with the template writer "
                         "(synthesis.writer='template'), which records them: rerun notebooks/01_data_synthesis.ipynb")
    return data


def rewritten_data(data: TrainData, path: Path) -> TrainData:
    """`data` with its captions replaced by the LLM-rewritten ones stored at `path` (same images, same rows)."""
    rows, texts = load_rewritten(path)
    return TrainData(data.image_emb, data.idx1, data.idx2, data.texts, rows, texts)


def prepare_data(profile: Profile, paths: RunPaths, base: ClipBundle) -> TrainData:
    """A profile's training data: cached image embeddings (the base model's image tower), the synthesised
    difference pairs (notebook 01) and captions of the same images for the caption loss. DiffWorld: the
    train split with fresh caption phrasings; paper: the COCO train images and their COCO captions."""
    if profile.source == "paper":
        return _coco_data(profile, paths, base)
    if profile.source != "diffworld":
        raise ValueError(f"profile {profile.name!r} has unknown source {profile.source!r}; expected diffworld or paper")
    train = build_split(profile.world, "train")
    image_emb = embed_split(base, train, paths.cache, profile.cache, profile.model.precision, progress=False)
    pairs = load_accepted(differences_path(paths))
    caption_idx, captions = caption_term(train, profile.finetune.relational_captions)
    return TrainData(image_emb, torch.as_tensor(pairs.idx1), torch.as_tensor(pairs.idx2), list(pairs.texts),
                     caption_idx, captions, pairs.negatives)


def caption_term(train: WorldSplit, relational_share: float) -> tuple[torch.Tensor, list[str]]:
    """The caption loss's DiffWorld captions: CAPTION_VARIANTS fresh phrasings of each train image (seeds other
    than pretraining's), a `relational_share` of them with a relational clause (finetune.relational_captions), and
    the image each describes."""
    captions = [c for v in range(CAPTION_VARIANTS) for c in train.captions(1000 + v, relational_share)]
    return torch.arange(len(train)).repeat(CAPTION_VARIANTS), captions


def _coco_pairs(paths: RunPaths) -> tuple[DifferencePairs, str | None]:
    """The store's accepted pairs and the images it was written for; a missing or empty store fails here,
    before COCO is read."""
    store = differences_path(paths)
    pairs = load_accepted(store)  # a missing store names notebook 01
    if not len(pairs):
        raise ValueError(f"{store} holds no accepted difference pairs: {RERUN_01} (its report shows why the "
                         "filter rejected them)")
    side = meta_path(store)
    return pairs, json.loads(side.read_text()).get("source") if side.is_file() else None


def coco_images(coco: CocoCaptions, key: str, base: ClipBundle, num_workers: int) -> DatasetSource:
    """The COCO image files through `base`'s own preprocessing, for the embedding cache: workers decode,
    resize and crop; each batch is normalised at once (bit for bit `base.preprocess`)."""
    return DatasetSource(CocoImages(coco, base.resize_crop), key, base.preprocess_key, num_workers,
                         base.images_to_tensor)


def _coco_data(profile: Profile, paths: RunPaths, base: ClipBundle) -> TrainData:
    """Every COCO train image (the rows the pairs index), embedded with the model's own preprocessing,
    and every COCO caption of each image for the caption baseline."""
    pairs, written_for = _coco_pairs(paths)
    try:
        coco, key = load_coco(profile)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}\nNotebook 02 embeds the COCO train images that notebook 01's pairs index: "
                                f"{COCO_HELP}") from None
    if written_for != key:
        raise ValueError(f"{differences_path(paths)} was synthesised for the images {written_for!r}, not for this "
                         f"profile's COCO images {key!r} (synthesis.coco_annotations under the data root): {RERUN_01}")
    image_emb = embed_images(base, coco_images(coco, key, base, profile.cache.num_workers), paths.cache,
                             profile.cache, profile.model.precision)
    caption_idx = torch.arange(len(coco)).repeat_interleave(torch.tensor([len(c) for c in coco.captions]))
    return TrainData(image_emb, torch.as_tensor(pairs.idx1), torch.as_tensor(pairs.idx2), list(pairs.texts),
                     caption_idx, [c for captions in coco.captions for c in captions], pairs.negatives)
