"""What pretraining and finetuning share: the LR schedules, the batch order and the process world.

The batch order is a pure function of (seed, step), so a run resumed from its training state
(`pcclip.checkpoints`) sees the same batches as an uninterrupted one. Under torchrun each rank
encodes a slice of every batch and `gather` puts the slices back together in rank order.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist

SCHEDULES = ("constant", "exponential", "cosine")
CAPTION_VARIANTS = 4  # caption phrasings drawn per training image (pretraining and the caption loss)


def lr_multiplier(step: int, schedule: str, warmup: int, total: int, gamma: float = 1.0,
                  steps_per_epoch: int = 1) -> float:
    """LR multiplier at `step`: linear warmup over `warmup` steps, then constant, x gamma per epoch
    ("exponential", the paper's) or cosine decay to zero at `total`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown LR schedule {schedule!r}; choose one of {SCHEDULES}")
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return gamma ** (step // steps_per_epoch) if schedule == "exponential" else 1.0


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Indices of the examples in `step`: epoch-wise permutations derived from (seed, epoch)."""
    out, start = [], step * batch_size
    while len(out) < batch_size:
        epoch, offset = divmod(start, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        take = perm[offset:offset + batch_size - len(out)]
        out.extend(take.tolist())
        start += len(take)
    return torch.tensor(out)


def due(step: int, every: int, stop: int) -> bool:
    """True after the step that completes a multiple of `every` steps, and after the last one."""
    return (step + 1) % every == 0 or step + 1 == stop


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """Concatenate every rank's rows in rank order, keeping the autograd path to each rank's own rows."""
    if world_size == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x))
