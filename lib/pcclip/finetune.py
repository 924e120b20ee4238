"""PC-CLIP finetuning of CLIP's text tower, and the baselines, on cached image embeddings.

The image tower never trains, so image embeddings come from the cache as one
tensor and the targets (normalised differences) are computed once per pair.
Descriptions are tokenised once and each batch is cut to its longest sequence
(`pcclip.text_tower`). The data order is a pure function of (seed, step), so a
run resumed from its last training state ends with the same weights as an
uninterrupted one. Under torchrun every rank encodes its slice of each batch and
the loss is computed on the gathered batch: the gradient is the one-process one.

This module is the trainer only: which runs a notebook trains and how their checkpoints are
reused is `pcclip.runs`; the data it reads is `pcclip.traindata.TrainData`.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .checkpoints import resume, save_train_state
from .embedding_rows import EmbeddingRows, clip_gradients, swap_in, swap_out, used_rows
from .embeddings import normalize
from .losses import check_finite, difference_loss, difference_targets, symmetric_info_nce
from .models import ClipBundle, state_fingerprint
from .precision import autocast
from .profiles import FinetuneConfig
from .text_tower import encode_batch, tokenize, trainable_parameters
from .traindata import TrainData
from .training import SCHEDULES, batch_indices, due, gather, lr_multiplier, world

OBJECTIVES = ("pcclip", "caption")
MAX_LOG_SCALE = math.log(100)  # as CLIP: a learnt temperature never goes below 0.01


@dataclass
class FinetuneResult:
    bundle: ClipBundle  # the finetuned model (a copy; the input bundle is untouched)
    history: list[dict]  # logged steps: step, loss (mean since the last row), lr, temperature, skipped
    steps: int
    skipped: int  # steps skipped for a non-finite loss (skip_nonfinite=True)
    seconds: float
    samples_per_s: float
    resumed_from: int


def total_steps(cfg: FinetuneConfig, n: int) -> int:
    """cfg.steps, or cfg.epochs passes over n examples when steps is 0 (the paper counts epochs)."""
    return cfg.steps if cfg.steps > 0 else math.ceil(cfg.epochs * n / cfg.batch_size)


def _check_config(cfg: FinetuneConfig, size: int) -> None:
    if cfg.objective not in OBJECTIVES or cfg.schedule not in SCHEDULES or cfg.optimizer not in ("adam", "adamw"):
        raise ValueError(f"finetune.objective={cfg.objective!r}, schedule={cfg.schedule!r}, optimizer="
                         f"{cfg.optimizer!r}: choose objective in {OBJECTIVES}, schedule in {SCHEDULES}, "
                         "optimizer in ('adam', 'adamw')")
    if cfg.batch_size % (cfg.accum_steps * size):
        raise ValueError(f"finetune.batch_size={cfg.batch_size} must split evenly into accum_steps="
                         f"{cfg.accum_steps} micro-batches over {size} rank(s)")
    if cfg.caption_term_batch < 0 or cfg.caption_term_batch % (cfg.accum_steps * size):
        raise ValueError(f"finetune.caption_term_batch={cfg.caption_term_batch} must be 0 (batch_size) or split "
                         f"evenly into accum_steps={cfg.accum_steps} micro-batches over {size} rank(s)")
    if cfg.length_buckets < 1:
        raise ValueError(f"finetune.length_buckets={cfg.length_buckets}: use 1 (trim to the longest) or more")
    if cfg.temperature <= 0 or cfg.caption_temperature <= 0:
        raise ValueError("finetune.temperature and caption_temperature must be > 0 (paper: 1.0)")
    if cfg.hard_negatives and cfg.loss != "contrastive":
        raise ValueError(f"finetune.hard_negatives needs finetune.loss='contrastive' (got {cfg.loss!r}): a hard "
                         "negative is one more text a difference is contrasted with")


@dataclass
class _Negatives:
    """Each description's hard negatives, tokenised once: those of text i are rows first[i]:first[i]+count[i]
    of `tokens`. A micro-batch gives each of its texts `per_text` slots, empty where a text has fewer, so
    every rank gathers a block of the same shape."""

    tokens: torch.Tensor  # on the device
    lengths: torch.Tensor  # CPU, as first and count
    first: torch.Tensor
    count: torch.Tensor
    per_text: int

    def _valid(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.arange(self.per_text)[None, :] < self.count[ids][:, None]

    def slots(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows of `tokens` to encode, their slots): slot i * per_text + k holds negative k of text ids[i]."""
        valid = self._valid(ids)
        rows = (self.first[ids][:, None] + torch.arange(self.per_text)[None, :])[valid]
        return rows, valid.flatten().nonzero().squeeze(1)

    def owner(self, ids: torch.Tensor) -> torch.Tensor:
        """The position in `ids` of each slot's pair, -1 for an empty slot (the loss's `owner`)."""
        owner = torch.arange(len(ids)).repeat_interleave(self.per_text)
        return owner.masked_fill(~self._valid(ids).flatten(), -1)


def _negatives(bundle: ClipBundle, data: TrainData, per_text: int) -> _Negatives:
    """The first `per_text` negatives of each pair (the writer lists the role swap first, then the negation)."""
    if data.negatives is None:
        raise ValueError("finetune.hard_negatives needs each pair's false descriptions: pass TrainData(negatives=...) "
                         "(pcclip.runs.prepare_data reads them from the synthesis store)")
    used = [n[:per_text] for n in data.negatives]
    flat = [t for n in used for t in n]
    if not flat:
        raise ValueError("finetune.hard_negatives is on but no pair has a negative description: regenerate the "
                         "difference data with the template writer (notebook 01)")
    count = torch.tensor([len(n) for n in used])
    tokens, lengths = tokenize(bundle.tokenizer, bundle.model, flat)
    return _Negatives(tokens.to(bundle.device), lengths, torch.cumsum(count, 0) - count, count, per_text)


@dataclass
class _Stream:
    """One kind of training example, ready on the device: tokens, lengths (CPU), targets, loss."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    kind: str  # "difference" or "caption"
    weight: float
    negatives: _Negatives | None = None  # difference stream with finetune.hard_negatives


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
    negatives = _negatives(bundle, data, cfg.negatives_per_text) if cfg.hard_negatives else None
    out = [_Stream(tokens.to(device), lengths, targets.to(device), "difference", 1.0, negatives)]
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


def _micro_loss(net: torch.nn.Module, streams: list[_Stream], step_ids: list[torch.Tensor],
                cfg: FinetuneConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of one micro-batch: this rank encodes its slice (under cfg.precision), with its texts' hard
    negatives in the same forward; the loss sees the whole micro-batch in fp32."""
    rank, size = world()
    local = [ids.chunk(size)[rank] for ids in step_ids]
    pieces = [(s.tokens, s.lengths, ids) for s, ids in zip(streams, local)]
    hard = streams[0].negatives
    if hard is not None:
        rows, slots = hard.slots(local[0])
        pieces.append((hard.tokens, hard.lengths, rows))
    lengths = torch.cat([lens[ids] for _, lens, ids in pieces])
    device, length = streams[0].tokens.device, int(lengths.max())
    tokens = torch.cat([tok[ids.to(device), :length] for tok, _, ids in pieces])
    with autocast(device, cfg.precision):
        features, scale = net(tokens, lengths)
    parts = features.float().split([len(ids) for *_, ids in pieces])
    negatives = owner = None
    if hard is not None:  # every rank gathers a block of len(slice) * per_text rows, zeros in empty slots
        block = parts[-1].new_zeros(len(local[0]) * hard.per_text, parts[-1].shape[1])
        negatives = gather(block.index_copy(0, slots.to(device), parts[-1]), size)
        owner = hard.owner(step_ids[0]).to(device)
    loss = torch.zeros((), device=device)
    for s, part, ids in zip(streams, parts, step_ids):
        text, targets = gather(part, size), s.targets[ids.to(device)]
        if s.kind == "difference":
            loss = loss + s.weight * difference_loss(text, targets, 1.0 / scale, cfg.loss, negatives, owner)
        else:
            loss = loss + s.weight * symmetric_info_nce(text, targets, 1.0 / cfg.caption_temperature)
    return loss, scale.detach()


def _rows_only(model: torch.nn.Module, cfg: FinetuneConfig, streams: list[_Stream]) -> EmbeddingRows | None:
    """The token-embedding rows the streams use, their tokens remapped to them (`pcclip.embedding_rows`), when
    training those rows alone gives the whole table's update: the table trains, with no weight decay (which
    would move unused rows), and pooling reads token order, not token values (argmax)."""
    if (cfg.trainable != "text" or cfg.weight_decay != 0 or getattr(model, "text_pool_type", "") != "argmax"
            or not isinstance(getattr(model, "token_embedding", None), torch.nn.Embedding)):
        return None
    negatives = [s.negatives.tokens for s in streams if s.negatives is not None]
    rows = used_rows(model.token_embedding.num_embeddings, [s.tokens for s in streams] + negatives)
    for s in streams:
        s.tokens = rows.tokens(s.tokens)
        if s.negatives is not None:
            s.negatives.tokens = rows.tokens(s.negatives.tokens)
    return rows


@dataclass
class _Setup:
    """A run's model copy (only the chosen text parameters trainable), optimizer, schedule and clipping."""

    trainee: _Trainee
    params: list
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    total: int
    rows: EmbeddingRows | None  # the token-embedding rows that train in place of the whole table
    whole: torch.nn.Embedding | None  # the whole table, put back by `model()`

    def clip(self, max_norm: float) -> None:
        table = self.trainee.model.token_embedding.weight if self.rows is not None else None
        clip_gradients(self.params, max_norm, table, self.rows)

    def model(self) -> torch.nn.Module:
        """The trained model with its whole token table (the trained rows written in)."""
        if self.whole is not None:
            swap_out(self.trainee.model, self.whole, self.rows)
            self.whole = self.rows = None
        return self.trainee.model


def _setup(bundle: ClipBundle, cfg: FinetuneConfig, streams: list[_Stream]) -> _Setup:
    model = copy.deepcopy(bundle.model)
    rows = _rows_only(model, cfg, streams)
    whole = swap_in(model, rows) if rows is not None else None
    params = trainable_parameters(model, cfg.trainable)
    trainee = _Trainee(model, cfg.temperature, cfg.learn_temperature, cfg.length_buckets)
    if cfg.learn_temperature:
        params = params + [trainee.log_scale]
    opt_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    # fused: one pass over each tensor instead of ~10 (8x faster on DiffWorld's 6.3M-entry token embedding when the
    # whole table trains); the update of the for-loop Adam, up to float rounding (tests/test_finetune.py)
    optimizer = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    n = len(streams[0].tokens)
    total, per_epoch = total_steps(cfg, n), max(1, math.ceil(n / cfg.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, cfg.schedule, cfg.warmup, total, cfg.gamma, per_epoch))
    return _Setup(trainee, params, optimizer, scheduler, total, rows, whole)


def _train_step(net: torch.nn.Module, streams: list[_Stream], step: int, cfg: FinetuneConfig,
                run: _Setup) -> tuple[torch.Tensor | None, torch.Tensor]:
    """One optimizer step over cfg.accum_steps micro-batches. Returns (loss, scale); loss is None when the
    step was skipped for a non-finite loss (skip_nonfinite=True; every rank sees the same loss, so all skip)."""
    micro = [(cfg.batch_size if j == 0 else cfg.caption_term_batch or cfg.batch_size) // cfg.accum_steps
             for j in range(len(streams))]  # the main stream, then the caption term
    optimizer = run.optimizer
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=streams[0].targets.device)
    for k in range(cfg.accum_steps):
        ids = [batch_indices(step * cfg.accum_steps + k, micro[j], len(s.tokens), cfg.seed + 7919 * j)
               for j, s in enumerate(streams)]
        last = k == cfg.accum_steps - 1
        sync = contextlib.nullcontext() if last or not isinstance(net, DistributedDataParallel) else net.no_sync()
        with sync:
            loss, scale = _micro_loss(net, streams, ids, cfg)
            if cfg.skip_nonfinite and not bool(torch.isfinite(loss)):
                optimizer.zero_grad(set_to_none=True)
                return None, scale
            (loss / cfg.accum_steps).backward()
        total = total + loss.detach() / cfg.accum_steps
    if cfg.grad_clip > 0:
        run.clip(cfg.grad_clip)
    optimizer.step()
    return total, scale


def _flush(pending: list[tuple[int, torch.Tensor]]) -> None:
    """Raise for the first non-finite loss among the steps not yet checked (one host sync for all)."""
    if pending and not bool(torch.isfinite(torch.stack([loss for _, loss in pending])).all()):
        for step, loss in pending:
            check_finite(loss, step)
    pending.clear()


def finetune(bundle: ClipBundle, data: TrainData, cfg: FinetuneConfig, *, state_path: Path | None = None,
             until: int | None = None, progress: bool = True) -> FinetuneResult:
    """Finetune a copy of `bundle`'s text tower; `bundle` itself is untouched.

    Resumes from `state_path` when it exists (rank 0 saves it every cfg.save_every steps and at
    the end). `until` stops after that many steps with the state saved, as an interrupted job.
    Under torchrun (process group initialised) the model runs in DistributedDataParallel.
    """
    rank, size = world()
    _check_config(cfg, size)
    streams = _streams(bundle, data, cfg)
    run = _setup(bundle, cfg, streams)
    trainee, optimizer, scheduler, total = run.trainee, run.optimizer, run.scheduler, run.total
    config = {"finetune": asdict(cfg), "model": bundle.model_name, "base": bundle.fingerprint, "data": data.key(),
              # a state of the used rows alone: one written with the whole table is refused, naming this key
              **({"embedding_rows": len(run.rows.rows)} if run.rows is not None else {})}
    start, history = resume(state_path, model=trainee, optimizer=optimizer, scheduler=scheduler, config=config)
    device = bundle.device
    net = trainee if size == 1 else DistributedDataParallel(
        trainee, device_ids=[device.index] if device.type == "cuda" else None)
    stop = total if until is None else min(total, until)
    skipped, window, pending = (history[-1]["skipped"] if history else 0), [], []
    t0 = time.perf_counter()
    for step in tqdm(range(start, stop), desc=f"finetune {cfg.objective}", initial=start, total=total,
                     disable=not progress or rank != 0):
        loss, scale = _train_step(net, streams, step, cfg, run)
        scheduler.step()
        with torch.no_grad():
            trainee.log_scale.clamp_(max=MAX_LOG_SCALE)
        if loss is None:
            skipped += 1
        else:
            window.append(loss)
            pending += [] if cfg.skip_nonfinite else [(step, loss)]
        if due(step, cfg.log_every, stop):
            _flush(pending)
            history.append({"step": step, "loss": float(torch.stack(window).mean()) if window else math.nan,
                            "lr": scheduler.get_last_lr()[0], "temperature": float(1.0 / scale), "skipped": skipped})
            window = []
        if state_path is not None and rank == 0 and due(step, cfg.save_every, stop):
            _flush(pending)
            save_train_state(state_path, model=trainee, optimizer=optimizer, scheduler=scheduler, step=step + 1,
                             config=config, history=history)
    seconds = time.perf_counter() - t0
    model = run.model().eval().requires_grad_(False)
    out = ClipBundle(model=model, preprocess=bundle.preprocess, tokenizer=bundle.tokenizer,
                     model_name=bundle.model_name, pretrained=bundle.pretrained,
                     fingerprint=state_fingerprint(bundle.model_name, model.state_dict()))
    done = max(0, stop - start)
    return FinetuneResult(bundle=out, history=history, steps=max(start, stop), skipped=skipped, seconds=seconds,
                          samples_per_s=done * cfg.batch_size / seconds if done else 0.0, resumed_from=start)
