"""The run-folder lock with real processes: contention, inheritance by children, kill -9, and the
cleanup of temporaries that killed writers leave behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcclip.locking import HOLDER_NAME, TOKENS_ENV, RunLocked, run_folder, run_lock
from pcclip.paths import run_paths

WRITE_UNDER_PARENT = """
import sys
from pathlib import Path
from pcclip.locking import run_lock
with run_lock(sys.argv[1]):
    (Path(sys.argv[1]) / "child.txt").write_text("written")
"""
KILLED_MID_WRITE = """
import sys, time
from pcclip.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    print(tmp, flush=True)
    time.sleep(60)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != TOKENS_ENV}
    return env | {"PYTHONPATH": os.pathsep.join(sys.path)}


def test_second_run_fails_at_once_naming_the_holder(tmp_path, hold_lock):
    child = hold_lock(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(RunLocked, match=rf"pid {child.pid}, started .*: -c {tmp_path}\); wait for it"):
        with run_lock(tmp_path, "the pipeline"):
            pass
    assert time.monotonic() - t0 < 1.0  # fails at once, no waiting
    child.release()
    with run_lock(tmp_path):  # free again once the holder ends
        assert json.loads((tmp_path / HOLDER_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / HOLDER_NAME).exists()


def test_children_of_the_holder_inherit_the_lock_others_do_not(tmp_path):
    with run_lock(tmp_path):
        with run_lock(tmp_path):  # re-entrant in the holder itself
            pass
        done = subprocess.run([sys.executable, "-c", WRITE_UNDER_PARENT, str(tmp_path)], timeout=60,
                              env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()
        assert (tmp_path / "child.txt").read_text() == "written"
        stranger = subprocess.run([sys.executable, "-c", WRITE_UNDER_PARENT, str(tmp_path / "x")], timeout=60,
                                  env=_env(), capture_output=True, text=True)
        other = subprocess.run([sys.executable, "-c", WRITE_UNDER_PARENT, str(tmp_path)], timeout=60,
                               env=_env(), capture_output=True, text=True)
    assert stranger.returncode == 0  # another folder: its own lock
    assert other.returncode == 1 and f"pid {os.getpid()}" in other.stderr and "RunLocked" in other.stderr


def test_kill_9_of_the_holder_frees_the_lock(tmp_path, hold_lock):
    child = hold_lock(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.proc.wait(timeout=30)
    assert json.loads((tmp_path / HOLDER_NAME).read_text())["pid"] == child.pid  # stale sidecar left behind
    with run_lock(tmp_path):
        assert json.loads((tmp_path / HOLDER_NAME).read_text())["pid"] == os.getpid()


def test_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path, hold_lock):
    target = tmp_path / "checkpoints" / "pcclip.pt"
    killed = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(target)], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    dead_tmp = Path(killed.stdout.readline().strip())
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    live = hold_lock(tmp_path / "elsewhere")  # a live process: its temp must survive
    live_tmp = target.parent / f".pcclip.pt.{live.pid}.abc123.tmp"
    old_style = target.parent / ".metrics.json.k2j3.tmp"  # no pid: judged by age alone
    for path in (live_tmp, old_style):
        path.write_bytes(b"x")
    os.utime(dead_tmp, (time.time() - 5, time.time() - 5))
    os.utime(old_style, (time.time() - 5, time.time() - 5))
    with run_lock(tmp_path):
        pass
    assert not dead_tmp.exists() and not old_style.exists()
    assert live_tmp.exists() and not target.exists()


def test_run_folder_is_the_profile_folder_under_results(tmp_path):
    root = run_paths("smoke").root
    assert run_folder(root / "data" / "differences.jsonl") == root.resolve()
    assert run_folder(tmp_path / "d.jsonl") == tmp_path.resolve()


def test_trainer_entry_point_refuses_a_locked_profile(hold_lock):
    from pcclip import distributed

    child = hold_lock(run_paths("smoke").root)
    with pytest.raises(RunLocked, match=f"pid {child.pid}"):
        distributed.main(["--profile", "smoke", "--finetune", "pcclip"])
    assert not (run_paths("smoke").checkpoints).exists()  # nothing was trained or written
