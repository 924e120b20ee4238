"""Pretrain a small CLIP from scratch on DiffWorld captions with the standard CLIP loss.

The data order is a pure function of (seed, step), so a run resumed from its last
training state reproduces the uninterrupted run exactly.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import resume, save_train_state
from .losses import check_finite, symmetric_info_nce
from .models import ClipBundle
from .profiles import PretrainConfig
from .training import CAPTION_VARIANTS, batch_indices, due, lr_multiplier
from .world import WorldSplit


@dataclass
class PretrainResult:
    history: list[dict]  # one row per logged step: step, loss, lr, logit_scale
    seconds: float
    resumed_from: int


def pretrain(bundle: ClipBundle, train: WorldSplit, cfg: PretrainConfig, state_path: Path | None = None,
             save_every: int = 100) -> PretrainResult:
    """Train `bundle.model` in place; resumes from `state_path` when it exists."""
    model, n = bundle.model, len(train)
    torch.manual_seed(cfg.seed)
    images = bundle.images_to_tensor(train.images)
    tokens = torch.stack([bundle.tokenizer(train.captions(cfg.seed * 10 + v, cfg.relational_captions))
                          for v in range(CAPTION_VARIANTS)])
    decay = [p for name, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in name]
    no_decay = [p for name, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in name)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_multiplier(s, "cosine", cfg.warmup, cfg.steps))
    config = {"pretrain": asdict(cfg), "data": train.key, "model": bundle.model_name}
    start, history = resume(state_path, model=model, optimizer=optimizer, scheduler=scheduler, config=config)
    model.train()
    t0 = time.perf_counter()
    for step in tqdm(range(start, cfg.steps), desc="pretrain", initial=start, total=cfg.steps):
        idx = batch_indices(step, cfg.batch_size, n, cfg.seed)
        variant = torch.randint(0, CAPTION_VARIANTS, (len(idx),),
                                generator=torch.Generator().manual_seed(cfg.seed * 7919 + step))
        img_f = model.encode_image(images[idx].to(bundle.device))
        txt_f = model.encode_text(tokens[variant, idx].to(bundle.device))
        loss = symmetric_info_nce(img_f, txt_f, model.logit_scale.exp())  # the CLIP loss
        check_finite(loss, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():  # CLIP clamps the learnt temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0],
                            "logit_scale": model.logit_scale.exp().item()})
        if state_path is not None and due(step, save_every, cfg.steps):
            save_train_state(state_path, model=model, optimizer=optimizer, scheduler=scheduler, step=step + 1,
                             config=config, history=history)
    model.eval()
    return PretrainResult(history=history, seconds=time.perf_counter() - t0, resumed_from=start)
