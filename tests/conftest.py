"""Shared fixtures: profiles, a temp results tree, tiny models. Everything offline and on CPU."""
from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.fixture
def fake_kernel(tmp_path, monkeypatch):
    """Call with a stand-in for papermill.execute_notebook (same signature): the pipeline then runs empty notebooks
    00-06 through it, so a test sees what the runner does without a kernel."""
    import papermill

    from pcclip import pipeline
    from pcclip.report import EXPECTED

    def use(kernel) -> None:
        folder = tmp_path / "notebooks"
        folder.mkdir()
        for name in (*EXPECTED, "06_report"):
            (folder / f"{name}.ipynb").write_text("{}")
        monkeypatch.setattr(pipeline, "notebooks", lambda: sorted(folder.glob("*.ipynb")))
        monkeypatch.setattr(papermill, "execute_notebook", kernel)
    return use


@pytest.fixture(scope="session")
def tiny_bundle():
    """A randomly initialised diffclip-tiny (seeded): enough for shape and plumbing tests."""
    from pcclip.models import load_clip

    torch.manual_seed(0)
    return load_clip("diffclip-tiny")


def _pipeline_run(root: Path, profile: str) -> Path:
    """`python -m pcclip.pipeline --profile <profile>` under `root`, as a user would run it (no forced
    profile); the environment is restored afterwards."""
    from pcclip import pipeline

    saved = {k: os.environ.get(k) for k in ("PCCLIP_RESULTS", FORCE_ENV)}
    os.environ["PCCLIP_RESULTS"] = str(root)
    os.environ.pop(FORCE_ENV, None)
    try:
        return pipeline.run(profile, {})
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The smoke pipeline (notebooks 00-06 through papermill) run once per session: its real metric rows
    and tables are what the report tests read. Treat it as read-only; copy it to edit."""
    return _pipeline_run(tmp_path_factory.mktemp("smoke-run"), "smoke")


@pytest.fixture(scope="session")
def rehearsal_run(tmp_path_factory) -> Path:
    """The rehearsal pipeline (the paper code path on fixtures, offline) run once per session. Its base model
    file comes from the smoke pretraining (90 s, not DiffWorld's 5 minutes): the test proves the code path;
    the committed results/rehearsal/ use the DiffWorld base model."""
    from pcclip.rehearsal import write_rehearsal

    root = tmp_path_factory.mktemp("rehearsal-run")
    write_rehearsal(root / "rehearsal" / "fixtures", base_profile="smoke")
    return _pipeline_run(root, "rehearsal")


_HOLD = """
import sys
from pcclip.locking import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


class LockHolder:
    """A separate process (no inherited lock token, so not "our child") holding a folder's run lock."""

    def __init__(self, folder: Path) -> None:
        from pcclip.locking import TOKENS_ENV

        env = {k: v for k, v in os.environ.items() if k != TOKENS_ENV} | {"PYTHONPATH": os.pathsep.join(sys.path)}
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held", self.proc.stderr.read()
        self.pid = self.proc.pid

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            assert self.proc.wait(timeout=30) == 0


@pytest.fixture
def hold_lock():
    """hold_lock(folder) -> LockHolder; every holder still running is released at teardown."""
    holders: list[LockHolder] = []
    yield lambda folder: holders.append(LockHolder(folder)) or holders[-1]
    for holder in holders:
        holder.release()


class FakeTextTower:
    """A stand-in for `ClipBundle.encode_text`: each text embeds as its row of `table` (`default` for
    texts not in it); `calls` records every call, `texts` every text encoded, in order."""

    def __init__(self, table: dict | None = None, default=None):
        self.table = {text: torch.as_tensor(v, dtype=torch.float32) for text, v in (table or {}).items()}
        self.default = None if default is None else torch.as_tensor(default, dtype=torch.float32)
        self.calls: list[list[str]] = []

    @property
    def texts(self) -> list[str]:
        return [text for call in self.calls for text in call]

    def encode_text(self, texts) -> torch.Tensor:
        self.calls.append(list(texts))
        return torch.stack([self.table[t] if t in self.table or self.default is None else self.default
                            for t in texts])


@pytest.fixture
def text_tower() -> type[FakeTextTower]:
    """The fake text tower class: `text_tower({"a": [1, 0]})` embeds "a" as [1, 0]."""
    return FakeTextTower
