"""Kill a real synthesis process with SIGKILL part way, rerun, and get every pair exactly once.

The child runs the template writer slowed down per batch (so the kill lands mid-run);
the rerun must produce the same file content as an uninterrupted run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.synthesis import differences_path, load_records, synthesize

OVERRIDES = {"synthesis.n_pairs": 240, "synthesis.batch_size": 4}
CHILD = f"""
import time
from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.synthesis import synthesize
from pcclip.synthesis.template import TemplateWriter

write = TemplateWriter.write
TemplateWriter.write = lambda self, batch: (time.sleep(0.05), write(self, batch))[1]
synthesize(load_profile("smoke", {OVERRIDES!r}), run_paths("smoke"), progress=False)
"""


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_then_rerun_writes_every_pair_once(tmp_path, monkeypatch) -> None:
    results = tmp_path / "killed"
    monkeypatch.setenv("PCCLIP_RESULTS", str(results))
    path = differences_path(run_paths("smoke"))
    child = subprocess.Popen([sys.executable, "-c", CHILD], env={**os.environ, "PCCLIP_RESULTS": str(results)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _lines(path) < 20 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    written = _lines(path)
    assert 20 <= written < 240  # killed part way

    profile = load_profile("smoke", OVERRIDES)
    synthesize(profile, run_paths("smoke"), progress=False)
    resumed = load_records(path)
    ids = [r["pair_id"] for r in resumed]
    assert len(ids) == len(set(ids)) == 240 and [r["index"] for r in resumed] == list(range(240))

    monkeypatch.setenv("PCCLIP_RESULTS", str(tmp_path / "clean"))
    clean = load_records(synthesize(profile, run_paths("smoke"), progress=False))
    assert [(r["pair_id"], r["text"], r["accepted"]) for r in resumed] == \
        [(r["pair_id"], r["text"], r["accepted"]) for r in clean]
    synthesize(profile, run_paths("smoke"), progress=False)  # a finished run is a no-op
    assert _lines(differences_path(run_paths("smoke"))) == 240
