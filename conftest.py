"""Root pytest configuration: nbval runs the notebooks at smoke size, quietly, in a temp results folder."""
from __future__ import annotations

import os
import tempfile

import pytest

_NB_RESULTS: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs a notebook or a multi-process job (seconds to minutes)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first notebook cell starts its kernel, point it at smoke and a temp results tree."""
    if type(item).__name__ != "NbCellItem" or _NB_RESULTS:
        return
    _NB_RESULTS.append(tempfile.mkdtemp(prefix="pcclip-nbval-"))
    os.environ.update({"PCCLIP_FORCE_PROFILE": "smoke", "PCCLIP_QUIET": "1", "TQDM_DISABLE": "1",
                       "PCCLIP_RESULTS": _NB_RESULTS[0]})
