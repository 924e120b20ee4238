"""Shared fixtures: profiles, a temp results tree, tiny models. Everything offline and on CPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pcclip.profiles import FORCE_ENV, load_profile


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a loaded 2-core machine two threads
    wait on each other: one thread made the model tests 3-5x faster there (pretrain 85 s -> 20 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Unit tests never write into the repo's results/ and never see a forced profile."""
    monkeypatch.delenv(FORCE_ENV, raising=False)
    monkeypatch.setenv("PCCLIP_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.fixture
def smoke():
    return load_profile("smoke")


@pytest.fixture(scope="session")
def tiny_bundle():
    """A randomly initialised diffclip-tiny (seeded): enough for shape and plumbing tests."""
    from pcclip.models import load_clip

    torch.manual_seed(0)
    return load_clip("diffclip-tiny")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The smoke pipeline (notebooks 00-06 through papermill) run once per session: its real metric rows
    and tables are what the report and claims tests read. Treat it as read-only; copy it to edit."""
    import os

    from pcclip import pipeline

    root = tmp_path_factory.mktemp("smoke-run")
    saved = {k: os.environ.get(k) for k in ("PCCLIP_RESULTS", FORCE_ENV)}
    os.environ["PCCLIP_RESULTS"] = str(root)
    os.environ.pop(FORCE_ENV, None)
    try:
        return pipeline.run("smoke", {})
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
