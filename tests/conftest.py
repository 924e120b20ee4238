"""Shared fixtures: profiles, a temp results tree, tiny models. Everything offline and on CPU."""
from __future__ import annotations

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
