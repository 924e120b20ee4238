"""The rehearsal: the paper's code path (`source="paper"`) run offline on a CPU, on DiffWorld drawings
in the real datasets' layouts, a small open_clip model read from a local file and a local
OpenAI-compatible chat server (profile `rehearsal`).

    python -m pcclip.rehearsal DIR     # the fixture datasets and the base model file under DIR
    with rehearsal_llm(profile.synthesis): synthesize(profile, paths)   # its LLM; nothing for other profiles
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..profiles import REHEARSAL_MODEL_FILE
from .base_model import write_base_model
from .chat_server import chat_server, rehearsal_llm, serve_synthesis
from .fixtures import DATASETS, FixtureSizes, present, write_fixtures


def write_rehearsal(root: str | Path, seed: int = 0, base_profile: str = "diffworld",
                    overrides: dict[str, Any] | None = None,
                    model_file: str | Path | None = REHEARSAL_MODEL_FILE) -> dict[str, float]:
    """Write what is missing of the data root `root`: the fixture datasets and (unless `model_file` is None) the
    base model file at root/model_file (an absolute model_file stands alone), pretrained by profile
    `base_profile`; returns seconds per part written. A complete root costs nothing (the pipeline calls this
    every run); a root holding only some of the datasets is refused, as it cannot be completed with the same
    draws."""
    found = present(root)
    if found and len(found) < len(DATASETS):
        raise FileExistsError(f"rehearsal data root {root} holds {found} but not "
                              f"{sorted(set(DATASETS) - set(found))}: delete it and run python -m pcclip.rehearsal "
                              f"{root}")
    seconds = {} if found else write_fixtures(root, seed)
    if model_file is not None and not (Path(root) / model_file).is_file():
        start = time.perf_counter()
        write_base_model(Path(root) / model_file, base_profile, overrides)
        seconds["model"] = time.perf_counter() - start
    return seconds


__all__ = ["DATASETS", "FixtureSizes", "chat_server", "rehearsal_llm", "serve_synthesis", "write_base_model",
           "write_fixtures", "write_rehearsal"]
