"""Where a profile's outputs live: results/<profile>/{metrics,figures,notebooks,...}.

Checkpoints, embedding caches and generated data sit under the same folder but are
git-ignored; `make reproduce` rebuilds them. $PCCLIP_RESULTS moves the whole tree
(the tests point it at a temp folder).

The notebooks that use the finetuned models (PER_SEED_NOTEBOOKS) run once per finetune seed; each run's
files are named `<name>.seed<s>` (RunPaths with `seed` set), and its finetuned checkpoints sit in
checkpoints/seed<s>/ beside the shared base.pt, so the seeds of one profile never overwrite each other.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

RESULTS_ENV = "PCCLIP_RESULTS"
# The one declaration of which notebooks depend on the finetuned models: the pipeline runs these once per
# seed of finetune.seeds; the others (base model, data, report) once.
PER_SEED_NOTEBOOKS: tuple[str, ...] = ("02_finetune", "03_ranking_eval", "04_comparative_prompting",
                                       "05_embedding_geometry")


def seeded(name: str, seed: int | None) -> str:
    """The file stem of `name` for finetune seed `seed` (None: a file shared by every seed)."""
    return name if seed is None else f"{name}.seed{seed}"


def repo_root() -> Path:
    """The checkout that holds lib/pcclip (editable install)."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RunPaths:
    root: Path
    seed: int | None = None  # the finetune seed of a per-seed notebook; None: its files are shared

    def named(self, name: str) -> str:
        """The stem of a metrics file, table, figure or executed notebook called `name` (`seeded`)."""
        return seeded(name, self.seed)

    def finetuned(self, seed: int) -> Path:  # ignored: the finetuned checkpoints of one finetune seed
        return self.checkpoints / f"seed{seed}"

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
    def checkpoints(self) -> Path:  # ignored: base.pt (shared by every finetune seed), seed<s>/
        return self.root / "checkpoints"

    @property
    def cache(self) -> Path:  # ignored: image-embedding caches
        return self.root / "cache"

    @property
    def data(self) -> Path:  # ignored: synthesised difference data
        return self.root / "data"


def results_base() -> Path:
    """results/ of the checkout, or $PCCLIP_RESULTS."""
    return Path(os.environ.get(RESULTS_ENV) or repo_root() / "results")


@contextmanager
def results_tree(root: Path) -> Iterator[None]:
    """$PCCLIP_RESULTS pointed at `root` inside the block (for the runs and the kernels they start, or to read
    another tree's results), restored after it."""
    before = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RESULTS_ENV)
        else:
            os.environ[RESULTS_ENV] = before


def run_paths(profile_name: str, seed: int | None = None) -> RunPaths:
    return RunPaths(results_base() / profile_name, seed)


def base_study_root(profile_name: str, pretrain_seed: int | None) -> Path:
    """The base-model study's folder results/<profile>-base-seeds/ (its table), and with `pretrain_seed` the
    results tree of that base model's run: its run folder is pretrain<seed>/<profile>/."""
    root = results_base() / f"{profile_name}-base-seeds"
    return root if pretrain_seed is None else root / f"pretrain{pretrain_seed}"


def lever_root(profile_name: str, lever: str | None) -> Path:
    """The lever study's folder results/<profile>-levers/ (its table), and with `lever` the results tree of that
    lever's run: its run folder is <lever>/<profile>/."""
    root = results_base() / f"{profile_name}-levers"
    return root if lever is None else root / lever
