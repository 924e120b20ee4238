"""Root pytest configuration: nbval runs the notebooks at smoke size, quietly, in a temp results folder.

nbval may start a notebook's kernel while collecting, so the environment it inherits is set here,
at configure time. Unit tests undo the forced profile and results folder per test (tests/conftest.py).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

NBVAL_RESULTS = tempfile.mkdtemp(prefix="pcclip-nbval-")  # the notebooks' smoke run: about 150 MB


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs a notebook or a multi-process job (seconds to minutes)")
    os.environ.update({"PCCLIP_FORCE_PROFILE": "smoke", "PCCLIP_QUIET": "1", "TQDM_DISABLE": "1",
                       "PCCLIP_RESULTS": NBVAL_RESULTS})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A passing session removes the notebooks' results folder; any other keeps it to look into, and says where."""
    if exitstatus == 0:
        shutil.rmtree(NBVAL_RESULTS, ignore_errors=True)
    else:
        print(f"\nnotebook results of this session kept in {NBVAL_RESULTS}", file=sys.stderr)
