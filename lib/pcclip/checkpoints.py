"""Resumable training state: model, optimizer, scheduler, step, RNG and config in one atomic file.

The file carries a fingerprint of everything in it, checked on load: a state damaged on disk is
refused (naming the file) instead of resuming from wrong weights or a wrong RNG state.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import torch_save
from .fingerprint import fingerprint

RESTART = "delete it and rerun: training restarts from step 0"


def save_train_state(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, step: int, config: dict, history: list[dict]) -> None:
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": step, "config": config, "history": history,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    torch_save({**state, "fingerprint": fingerprint(state)}, path)


def read_train_state(path: str | os.PathLike) -> dict:
    """The saved state, after checking it reads and matches its stored fingerprint."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated or garbled files
        raise ValueError(f"training state {path} is unreadable ({type(exc).__name__}: it is truncated or "
                         f"corrupt); {RESTART}") from None
    stored = state.pop("fingerprint", None) if isinstance(state, dict) else None
    if stored is None or fingerprint(state) != stored:
        raise ValueError(f"training state {path} is corrupt: its contents do not match the fingerprint stored "
                         f"with them (a damaged disk or copy); {RESTART}")
    return state


def load_train_state(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, config: dict) -> tuple[int, list[dict]]:
    """Restore everything saved by `save_train_state`; refuse a damaged state or one of another config."""
    state = read_train_state(path)
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


def resume(path: str | os.PathLike | None, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: Any, config: dict) -> tuple[int, list[dict]]:
    """(first step, history so far): from the state at `path` when there is one, else (0, [])."""
    if path is None or not Path(path).exists():
        return 0, []
    return load_train_state(path, model=model, optimizer=optimizer, scheduler=scheduler, config=config)


def remove_states(folder: Path, pattern: str) -> list[Path]:
    """Delete the training states matching `pattern` (those of other settings, once a run has finished:
    they would never be resumed and hold a model and two optimizer moments each)."""
    removed = sorted(Path(folder).glob(pattern))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
