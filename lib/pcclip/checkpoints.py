"""Resumable training state: model, optimizer, scheduler, step, RNG and config in one atomic file."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import torch_save


def save_train_state(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, step: int, config: dict, history: list[dict]) -> None:
    torch_save({
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": step, "config": config, "history": history,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }, path)


def load_train_state(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, config: dict) -> tuple[int, list[dict]]:
    """Restore everything saved by `save_train_state`; refuse a state written for another config."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(f"training state {path} is unreadable ({type(exc).__name__}); delete it to start "
                         "over") from None
    if state.get("config") != config:
        diff = sorted(k for k in set(config) | set(state.get("config", {}))
                      if config.get(k) != state.get("config", {}).get(k))
        raise ValueError(f"training state {path} was written with another config (differs in {diff}); "
                         "delete it or restore the original settings to resume")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    return int(state["step"]), list(state["history"])
