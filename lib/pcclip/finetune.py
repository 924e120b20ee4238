"""PC-CLIP finetuning of CLIP's text tower, and the baselines, on cached image embeddings.

The image tower never trains, so image embeddings come from the cache as one
tensor and the targets (normalised differences) are computed once per pair.
Descriptions are tokenised once and each batch is cut to its longest sequence
(`pcclip.text_tower`). The data order is a pure function of (seed, step), so a
run resumed from its last training state ends with the same weights as an
uninterrupted one. Under torchrun every rank encodes its slice of each batch and
the loss is computed on the gathered batch: the gradient is the one-process one.

Runs: "pcclip" (difference descriptions), "caption_ft" (the paper's caption-only
baseline: CLIP loss on captions) and "base" (no finetuning, zero steps).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .atomic import torch_save
from .averaging import averaged_bundle
from .basemodel import load_base_model
from .checkpoints import load_train_state, save_train_state
from .embeddings import normalize
from .losses import check_finite, difference_loss, difference_targets, symmetric_info_nce
from .models import ClipBundle, load_clip, save_clip, state_fingerprint
from .paths import RunPaths
from .pretrain import batch_indices, warmup_cosine
from .profiles import FinetuneConfig, Profile
from .text_tower import encode_batch, tokenize, trainable_parameters

RUNS = ("base", "pcclip", "caption_ft")
TRAINED_RUNS = ("pcclip", "caption_ft")
OBJECTIVES = ("pcclip", "caption")
SCHEDULES = ("constant", "exponential", "cosine")
CAPTION_VARIANTS = 4  # caption phrasings per training image for the caption loss


@dataclass
class TrainData:
    """What a finetuning run reads, as plain tensors and lists (no files).

    Pairs: image `idx1[i]` differs from image `idx2[i]` as `texts[i]` says. Captions
    (for the caption baseline and the optional caption-loss term): `caption_texts[j]`
    describes image `caption_idx[j]`. All indices point into the rows of `image_emb`.
    """

    image_emb: torch.Tensor  # (n_images, d) float32, unnormalised, from the frozen image tower
    idx1: torch.Tensor  # (n_pairs,) int64
    idx2: torch.Tensor  # (n_pairs,) int64
    texts: list[str]
    caption_idx: torch.Tensor | None = None  # (n_captions,) int64
    caption_texts: list[str] | None = None

    def __post_init__(self) -> None:
        self.image_emb = torch.as_tensor(self.image_emb, dtype=torch.float32).contiguous()
        self.idx1, self.idx2 = (torch.as_tensor(i, dtype=torch.long) for i in (self.idx1, self.idx2))
        if self.caption_idx is not None:
            self.caption_idx = torch.as_tensor(self.caption_idx, dtype=torch.long)
        n = len(self.image_emb)
        if not (len(self.idx1) == len(self.idx2) == len(self.texts)):
            raise ValueError(f"TrainData: idx1, idx2 and texts must have one entry per pair; got "
                             f"{len(self.idx1)}, {len(self.idx2)}, {len(self.texts)}")
        if (self.caption_idx is None) != (self.caption_texts is None) or (
                self.caption_idx is not None and len(self.caption_idx) != len(self.caption_texts)):
            raise ValueError("TrainData: caption_idx and caption_texts go together, one index per caption")
        for name in ("idx1", "idx2", "caption_idx"):
            idx = getattr(self, name)
            if idx is not None and len(idx) and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"TrainData.{name} holds indices outside [0, {n}) (the image embeddings): the "
                                 "pairs were built for another image set; rebuild them for this split")

    def key(self) -> str:
        """A content hash: a checkpoint trained on other data is never reused."""
        h = hashlib.sha256()
        for t in (self.image_emb, self.idx1, self.idx2, self.caption_idx):
            if t is not None:
                h.update(str(tuple(t.shape)).encode())
                h.update(t.contiguous().view(torch.uint8).numpy().tobytes())
        for texts in (self.texts, self.caption_texts or []):
            h.update("\x1f".join(texts).encode())
        return h.hexdigest()[:16]


@dataclass
class FinetuneResult:
    bundle: ClipBundle  # the finetuned model (a copy; the input bundle is untouched)
    history: list[dict]  # logged steps: step, loss (mean since the last row), lr, temperature, skipped
    steps: int
    skipped: int  # steps skipped for a non-finite loss (skip_nonfinite=True)
    seconds: float
    samples_per_s: float
    resumed_from: int


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


def total_steps(cfg: FinetuneConfig, n: int) -> int:
    """cfg.steps, or cfg.epochs passes over n examples when steps is 0 (the paper counts epochs)."""
    return cfg.steps if cfg.steps > 0 else math.ceil(cfg.epochs * n / cfg.batch_size)


def lr_factor(step: int, cfg: FinetuneConfig, steps_per_epoch: int, total: int) -> float:
    """LR multiplier: optional linear warmup, then constant, x gamma per epoch (paper) or cosine."""
    if cfg.schedule == "cosine":
        return warmup_cosine(step, cfg.warmup, total)
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    return cfg.gamma ** (step // steps_per_epoch) if cfg.schedule == "exponential" else 1.0


def _check_config(cfg: FinetuneConfig, world: int) -> None:
    if cfg.objective not in OBJECTIVES or cfg.schedule not in SCHEDULES or cfg.optimizer not in ("adam", "adamw"):
        raise ValueError(f"finetune.objective={cfg.objective!r}, schedule={cfg.schedule!r}, optimizer="
                         f"{cfg.optimizer!r}: choose objective in {OBJECTIVES}, schedule in {SCHEDULES}, "
                         "optimizer in ('adam', 'adamw')")
    if cfg.batch_size % (cfg.accum_steps * world):
        raise ValueError(f"finetune.batch_size={cfg.batch_size} must split evenly into accum_steps="
                         f"{cfg.accum_steps} micro-batches over {world} rank(s)")
    if cfg.length_buckets < 1:
        raise ValueError(f"finetune.length_buckets={cfg.length_buckets}: use 1 (trim to the longest) or more")
    if cfg.temperature <= 0 or cfg.caption_temperature <= 0:
        raise ValueError("finetune.temperature and caption_temperature must be > 0 (paper: 1.0)")


@dataclass
class _Stream:
    """One kind of training example, ready on the device: tokens, lengths (CPU), targets, loss."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    kind: str  # "difference" or "caption"
    weight: float


def _streams(bundle: ClipBundle, data: TrainData, cfg: FinetuneConfig) -> list[_Stream]:
    """The main stream first (pairs, or captions for the caption baseline), then an optional caption term."""
    device, model = bundle.device, bundle.model

    def captions(weight: float) -> _Stream:
        if data.caption_texts is None:
            raise ValueError(f"finetune objective {cfg.objective!r} with caption_weight={cfg.caption_weight} "
                             "needs captions: pass TrainData(caption_idx=..., caption_texts=...)")
        tokens, lengths = tokenize(bundle.tokenizer, model, data.caption_texts)
        return _Stream(tokens.to(device), lengths, normalize(data.image_emb[data.caption_idx]).to(device),
                       "caption", weight)

    if cfg.objective == "caption":
        return [captions(1.0)]
    if not data.texts:
        raise ValueError("TrainData has no difference pairs: run the synthesis notebook (01) first")
    tokens, lengths = tokenize(bundle.tokenizer, model, data.texts)
    targets = difference_targets(data.image_emb[data.idx1], data.image_emb[data.idx2], cfg.loss)
    out = [_Stream(tokens.to(device), lengths, targets.to(device), "difference", 1.0)]
    return out + ([captions(cfg.caption_weight)] if cfg.caption_weight > 0 else [])


class _Trainee(torch.nn.Module):
    """The CLIP model and the (optionally learnt) log inverse temperature: one module for DDP and
    checkpoints. forward returns the temperature too, so DDP sees every trained parameter used."""

    def __init__(self, model: torch.nn.Module, temperature: float, learn: bool, buckets: int):
        super().__init__()
        self.model, self.buckets = model, buckets
        device = next(model.parameters()).device
        self.log_scale = torch.nn.Parameter(torch.tensor(-math.log(temperature), device=device), requires_grad=learn)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_batch(self.model, tokens, lengths, self.buckets), self.log_scale.exp()


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(x: torch.Tensor, world: int) -> torch.Tensor:
    """Concatenate every rank's rows in rank order, keeping the autograd path to each rank's own rows."""
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x))


def _micro_loss(net: torch.nn.Module, streams: list[_Stream], step_ids: list[torch.Tensor],
                cfg: FinetuneConfig, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of one micro-batch: this rank encodes its slice, the loss sees the whole micro-batch."""
    rank, world = _world()
    local = [ids.chunk(world)[rank] for ids in step_ids]
    lengths = torch.cat([s.lengths[ids] for s, ids in zip(streams, local)])
    device, length = streams[0].tokens.device, int(lengths.max())
    tokens = torch.cat([s.tokens[ids.to(device), :length] for s, ids in zip(streams, local)])
    with _autocast(device, precision):
        features, scale = net(tokens, lengths)
    parts = features.float().split([len(ids) for ids in local])
    loss = torch.zeros((), device=device)
    for s, part, ids in zip(streams, parts, step_ids):
        text, targets = _gather(part, world), s.targets[ids.to(device)]
        if s.kind == "difference":
            loss = loss + s.weight * difference_loss(text, targets, 1.0 / scale, cfg.loss)
        else:
            loss = loss + s.weight * symmetric_info_nce(text, targets, 1.0 / cfg.caption_temperature)
    return loss, scale.detach()


def _setup(bundle: ClipBundle, cfg: FinetuneConfig, n: int):
    """Copy of the model with only the chosen text parameters trainable, its optimizer and schedule."""
    model = copy.deepcopy(bundle.model)
    params = trainable_parameters(model, cfg.trainable)
    trainee = _Trainee(model, cfg.temperature, cfg.learn_temperature, cfg.length_buckets)
    if cfg.learn_temperature:
        params = params + [trainee.log_scale]
    opt_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    optimizer = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total, per_epoch = total_steps(cfg, n), max(1, math.ceil(n / cfg.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, per_epoch, total))
    return trainee, params, optimizer, scheduler, total


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _train_step(net: torch.nn.Module, streams: list[_Stream], step: int, cfg: FinetuneConfig,
                optimizer: torch.optim.Optimizer, params: list,
                precision: str) -> tuple[torch.Tensor | None, torch.Tensor]:
    """One optimizer step over cfg.accum_steps micro-batches. Returns (loss, scale); loss is None when the
    step was skipped for a non-finite loss (skip_nonfinite=True; every rank sees the same loss, so all skip)."""
    micro = cfg.batch_size // cfg.accum_steps
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=streams[0].targets.device)
    for k in range(cfg.accum_steps):
        ids = [batch_indices(step * cfg.accum_steps + k, micro, len(s.tokens), cfg.seed + 7919 * j)
               for j, s in enumerate(streams)]
        last = k == cfg.accum_steps - 1
        sync = contextlib.nullcontext() if last or not isinstance(net, DistributedDataParallel) else net.no_sync()
        with sync:
            loss, scale = _micro_loss(net, streams, ids, cfg, precision)
            if cfg.skip_nonfinite and not bool(torch.isfinite(loss)):
                optimizer.zero_grad(set_to_none=True)
                return None, scale
            (loss / cfg.accum_steps).backward()
        total = total + loss.detach() / cfg.accum_steps
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    optimizer.step()
    return total, scale


def _flush(pending: list[tuple[int, torch.Tensor]]) -> None:
    """Raise for the first non-finite loss among the steps not yet checked (one host sync for all)."""
    if pending and not bool(torch.isfinite(torch.stack([loss for _, loss in pending])).all()):
        for step, loss in pending:
            check_finite(loss, step)
    pending.clear()


def finetune(bundle: ClipBundle, data: TrainData, cfg: FinetuneConfig, *, state_path: Path | None = None,
             until: int | None = None, precision: str = "fp32", progress: bool = True) -> FinetuneResult:
    """Finetune a copy of `bundle`'s text tower; `bundle` itself is untouched.

    Resumes from `state_path` when it exists (rank 0 saves it every cfg.save_every steps and at
    the end). `until` stops after that many steps with the state saved, as an interrupted job.
    Under torchrun (process group initialised) the model runs in DistributedDataParallel.
    """
    rank, world = _world()
    _check_config(cfg, world)
    streams = _streams(bundle, data, cfg)
    trainee, params, optimizer, scheduler, total = _setup(bundle, cfg, len(streams[0].tokens))
    config = {"finetune": asdict(cfg), "model": bundle.model_name, "base": bundle.fingerprint, "data": data.key()}
    start, history = 0, []
    if state_path is not None and Path(state_path).exists():
        start, history = load_train_state(state_path, model=trainee, optimizer=optimizer, scheduler=scheduler,
                                          config=config)
    device = bundle.device
    net = trainee if world == 1 else DistributedDataParallel(
        trainee, device_ids=[device.index] if device.type == "cuda" else None)
    stop = total if until is None else min(total, until)
    skipped, window, pending = (history[-1]["skipped"] if history else 0), [], []
    t0 = time.perf_counter()
    for step in tqdm(range(start, stop), desc=f"finetune {cfg.objective}", initial=start, total=total,
                     disable=not progress or rank != 0):
        loss, scale = _train_step(net, streams, step, cfg, optimizer, params, precision)
        scheduler.step()
        with torch.no_grad():  # as CLIP: a learnt temperature never goes below 0.01
            trainee.log_scale.clamp_(max=math.log(100))
        if loss is None:
            skipped += 1
        else:
            window.append(loss)
            pending += [] if cfg.skip_nonfinite else [(step, loss)]
        last = step + 1 == stop
        if (step + 1) % cfg.log_every == 0 or last:
            _flush(pending)
            history.append({"step": step, "loss": float(torch.stack(window).mean()) if window else math.nan,
                            "lr": scheduler.get_last_lr()[0], "temperature": float(1.0 / scale), "skipped": skipped})
            window = []
        if state_path is not None and rank == 0 and ((step + 1) % cfg.save_every == 0 or last):
            _flush(pending)
            save_train_state(state_path, model=trainee, optimizer=optimizer, scheduler=scheduler, step=step + 1,
                             config=config, history=history)
    seconds = time.perf_counter() - t0
    model = trainee.model.eval().requires_grad_(False)
    out = ClipBundle(model=model, preprocess=bundle.preprocess, tokenizer=bundle.tokenizer,
                     model_name=bundle.model_name, pretrained=bundle.pretrained,
                     fingerprint=state_fingerprint(bundle.model_name, model.state_dict()))
    done = max(0, stop - start)
    return FinetuneResult(bundle=out, history=history, steps=max(start, stop), skipped=skipped, seconds=seconds,
                          samples_per_s=done * cfg.batch_size / seconds if done else 0.0, resumed_from=start)


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


def _recipe(profile: Profile, run: str, base: ClipBundle) -> dict:
    """Everything that determines a finetuned model except the data (checked via its hash separately)."""
    return {"run": run, "finetune": asdict(run_config(profile.finetune, run)), "model": base.model_name,
            "base": base.fingerprint}


def _checkpoint_meta(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True).get("meta", {})


def train_run(profile: Profile, paths: RunPaths, run: str, base: ClipBundle, data: TrainData,
              progress: bool = True) -> RunSummary:
    """Train one run and save it as results/<profile>/checkpoints/<run>.pt (rank 0), or reuse that file
    when it holds the same recipe and data. A crash resumes from the run's training state."""
    cfg = run_config(profile.finetune, run)
    if run == "base":  # no finetuning: the same trainer with zero steps
        result = finetune(base, data, cfg, progress=False)
        return RunSummary(run, result.history, 0, 0, 0.0, 0.0, reused=False)
    recipe = {**_recipe(profile, run, base), "data": data.key()}
    ckpt = checkpoint_path(paths, run)
    if ckpt.exists() and (meta := _checkpoint_meta(ckpt)).get("recipe") == recipe:
        return RunSummary(run, meta["history"], meta["steps"], meta["skipped"], meta["seconds"],
                          meta["samples_per_s"], reused=True)
    tag = hashlib.sha256(repr(sorted(recipe.items())).encode()).hexdigest()[:12]
    state = paths.checkpoints / f"{run}_state-{tag}.pt"
    result = finetune(base, data, cfg, state_path=state, precision=profile.model.precision, progress=progress)
    summary = RunSummary(run, result.history, result.steps, result.skipped, result.seconds, result.samples_per_s,
                         reused=False)
    if _world()[0] == 0:
        save_clip(result.bundle, base.model_name, ckpt,
                  meta={"recipe": recipe, **{k: v for k, v in asdict(summary).items() if k not in ("run", "reused")}})
        state.unlink(missing_ok=True)
    return summary


def prepare_data(profile: Profile, paths: RunPaths, base: ClipBundle) -> TrainData:
    """DiffWorld training data: cached train-split image embeddings, the synthesised difference pairs
    (notebook 01) and fresh caption phrasings of the same images for the caption loss."""
    if profile.source != "diffworld":
        raise ValueError(f"profile {profile.name!r} trains on COCO: build TrainData from the COCO image-embedding "
                         "cache and the synthesised pairs (pcclip.synthesis) and call train_run with it")
    from .cache import embed_split
    from .synthesis import differences_path
    from .synthesis.store import load_accepted
    from .world import build_split

    train = build_split(profile.world, "train")
    image_emb = embed_split(base, train, paths.cache, profile.cache, profile.model.precision, progress=False)
    pairs = load_accepted(differences_path(paths))
    captions = [c for v in range(CAPTION_VARIANTS) for c in train.captions(seed=1000 + v)]
    return TrainData(image_emb, torch.as_tensor(pairs.idx1), torch.as_tensor(pairs.idx2), list(pairs.texts),
                     torch.arange(len(train)).repeat(CAPTION_VARIANTS), captions)


def save_data(data: TrainData, path: Path) -> None:
    """One file with everything a run reads, for `python -m pcclip.distributed --data FILE`."""
    torch_save({k: getattr(data, k) for k in TrainData.__dataclass_fields__}, path)


def load_data(path: Path) -> TrainData:
    try:
        return TrainData(**torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, TypeError) as exc:
        raise ValueError(f"training data file {path} is not one written by pcclip.finetune.save_data "
                         f"({type(exc).__name__}: {exc})") from None


def load_models(profile: Profile, paths: RunPaths) -> dict[str, ClipBundle]:
    """base, pcclip, caption_ft and pcclip_wa (alpha = finetune.wa_alpha) for the evaluation notebooks."""
    base = load_base_model(profile, paths)
    out = {"base": base}
    for run in TRAINED_RUNS:
        ckpt = checkpoint_path(paths, run)
        if not ckpt.exists():
            raise FileNotFoundError(f"no {run!r} model at {ckpt}: run notebooks/02_finetune.ipynb for profile "
                                    f"{profile.name!r} first (make reproduce PROFILE={profile.name})")
        saved, expected = _checkpoint_meta(ckpt).get("recipe", {}), _recipe(profile, run, base)
        stale = [k for k in expected if saved.get(k) != expected[k]]
        if stale:
            raise ValueError(f"{ckpt} was finetuned with other settings ({stale}) than profile {profile.name!r} "
                             "has now: rerun notebooks/02_finetune.ipynb")
        out[run] = load_clip(profile.model.model_name, str(ckpt), profile.model.device)
    out["pcclip_wa"] = averaged_bundle(base, out["pcclip"], profile.finetune.wa_alpha)
    return out
