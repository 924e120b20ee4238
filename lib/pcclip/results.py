"""Writing a run's results: metrics JSON, CSV tables and figures under results/<profile>/.

Every metrics file records the profile, its full config (secrets redacted, `pcclip.redact`) and
the git commit, so the report can refuse stale or mixed results instead of summarising them.
"""
from __future__ import annotations

import io
import json
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .atomic import write_bytes, write_json, write_text
from .paths import RunPaths, repo_root
from .profiles import Profile
from .redact import redact


def git_commit() -> str:
    """HEAD of the checkout, with '+dirty' when tracked files differ; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "lib"],
                               cwd=repo_root(), capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_metrics(paths: RunPaths, name: str, metrics: dict[str, Any], profile: Profile) -> Path:
    """results/<profile>/metrics/<name>.json with a flat metrics dict and its provenance."""
    bad = [k for k, v in metrics.items() if isinstance(v, (dict, list))]
    if bad:
        raise ValueError(f"metrics {name!r} must be flat (key -> number or string); nested keys: {bad}")
    path = paths.metrics / f"{name}.json"
    write_json(path, {"name": name, "profile": profile.name, "git_commit": git_commit(),
                      "config": redact(asdict(profile)), "metrics": metrics})
    return path


def read_metrics(paths: RunPaths, name: str) -> dict[str, Any]:
    path = paths.metrics / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"metrics file {path} is missing: run the notebook that writes {name!r} first")
    return json.loads(path.read_text())


def write_table(paths: RunPaths, name: str, table: Any) -> Path:
    """A pandas DataFrame as results/<profile>/metrics/<name>.csv (floats rounded to 6 places)."""
    path = paths.metrics / f"{name}.csv"
    write_text(path, table.round(6).to_csv(index=False))
    return path


def save_figure(paths: RunPaths, name: str, fig: Any) -> Path:
    """A matplotlib Figure as results/<profile>/figures/<name>.png (fixed dpi, no timestamp)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    path = paths.figures / f"{name}.png"
    write_bytes(path, buf.getvalue())
    return path
