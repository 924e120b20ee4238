"""Mixed precision: bf16 autocast on CUDA when asked, full precision everywhere else."""
from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for `precision="bf16"` on a CUDA device; a no-op context otherwise (CPU runs fp32)."""
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
