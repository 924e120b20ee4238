"""One writer per results/<profile>/ folder: an OS file lock plus a sidecar naming the holder.

The pipeline, the trainer entry point and synthesis take the lock of the run folder they
write; a second run fails at once naming the holder's pid and command. The lock is an
fcntl lock (the `filelock` package), so the OS drops it when the holder dies, even by kill -9.
Processes the holder starts (papermill kernels, torchrun ranks) inherit $PCCLIP_LOCK_TOKENS and
recognise the sidecar's token as "held by my parent", so they write without deadlocking.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from .atomic import clean_stale_temporaries, write_json
from .paths import RESULTS_ENV, repo_root

TOKENS_ENV = "PCCLIP_LOCK_TOKENS"  # space-separated tokens of the locks this process's ancestors hold
LOCK_NAME = ".pcclip.lock"
HOLDER_NAME = ".pcclip.lock.holder.json"


class RunLocked(RuntimeError):
    """Another live run holds the folder's lock."""


def run_folder(path: str | os.PathLike) -> Path:
    """The results/<profile>/ folder that holds `path` (a file or folder under the results tree);
    outside that tree, the folder itself (or the file's folder) is its own run folder."""
    path = Path(path).resolve()
    base = Path(os.environ.get(RESULTS_ENV) or repo_root() / "results").resolve()
    if base in path.parents:
        return base / path.relative_to(base).parts[0]
    return path if path.is_dir() else path.parent


def _holder(folder: Path) -> dict:
    try:
        return json.loads((folder / HOLDER_NAME).read_text())
    except (OSError, ValueError):
        return {}


def _inherited(token: str | None) -> bool:
    return bool(token) and token in os.environ.get(TOKENS_ENV, "").split()


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Hold the lock of `folder` for the block, or raise RunLocked naming the live holder.

    Re-entrant for the holder and its child processes. On taking the lock, temporaries left by
    dead writers (`pcclip.atomic`) under the folder are removed: nobody else can be writing there.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _holder(folder)
        if _inherited(holder.get("token")):
            yield  # our own process or an ancestor holds it
            return
        raise RunLocked(
            f"{folder} is in use by another run (pid {holder.get('pid', 'unknown')}, started "
            f"{holder.get('started', '?')}: {holder.get('command', 'unknown command')}); wait for it to finish "
            f"or stop it, then rerun{f' {what}' if what else ''}") from None
    token, started = uuid.uuid4().hex, time.time()
    previous = os.environ.get(TOKENS_ENV)
    try:
        write_json(folder / HOLDER_NAME, {"pid": os.getpid(), "command": " ".join(sys.argv) or sys.executable,
                                          "token": token, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        os.environ[TOKENS_ENV] = f"{previous or ''} {token}".strip()
        clean_stale_temporaries(folder, before=started)
        yield
    finally:
        if previous is None:
            os.environ.pop(TOKENS_ENV, None)
        else:
            os.environ[TOKENS_ENV] = previous
        with contextlib.suppress(OSError):
            (folder / HOLDER_NAME).unlink()
        lock.release()
