"""Where a profile's outputs live: results/<profile>/{metrics,figures,notebooks,...}.

Checkpoints, embedding caches and generated data sit under the same folder but are
git-ignored; `make reproduce` rebuilds them. $PCCLIP_RESULTS moves the whole tree
(the tests point it at a temp folder).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RESULTS_ENV = "PCCLIP_RESULTS"


def repo_root() -> Path:
    """The checkout that holds lib/pcclip (editable install)."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def metrics(self) -> Path:  # committed: metrics JSON/CSV
        return self.root / "metrics"

    @property
    def figures(self) -> Path:  # committed
        return self.root / "figures"

    @property
    def notebooks(self) -> Path:  # committed: executed notebooks
        return self.root / "notebooks"

    @property
    def checkpoints(self) -> Path:  # ignored
        return self.root / "checkpoints"

    @property
    def cache(self) -> Path:  # ignored: image-embedding caches
        return self.root / "cache"

    @property
    def data(self) -> Path:  # ignored: synthesised difference data
        return self.root / "data"


def run_paths(profile_name: str) -> RunPaths:
    base = Path(os.environ.get(RESULTS_ENV) or repo_root() / "results")
    return RunPaths(base / profile_name)
