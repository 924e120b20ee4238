"""Writing a run's results: metric rows, CSV tables and figures under results/<profile>/.

A metric is a row that carries its identity (notebook, task, dataset, split, variant, attribute,
model, seed, metric) beside its value, standard error and sample count, as CLIP_benchmark keeps
dataset, model and task apart from the numbers: the report pivots rows and never parses names.
Every metrics file also records the profile, its full config (secrets redacted, `pcclip.redact`)
and the git commit, so the report can refuse stale or mixed results instead of summarising them.
"""
from __future__ import annotations

import io
import math
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .atomic import write_bytes, write_json, write_text
from .paths import RunPaths, repo_root
from .profiles import Profile
from .redact import redact

# Identity of a metric row; a blank string means "not applicable" (e.g. model "" for image-only metrics).
IDENTITY: tuple[str, ...] = ("notebook", "task", "dataset", "split", "variant", "attribute", "model", "seed",
                             "metric")
COLUMNS: tuple[str, ...] = (*IDENTITY, "value", "se", "n")
SHARED_MODEL = "any"  # model of table rows that depend on no text tower (image-only); stored as "" in rows


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


def metric_rows(table: pd.DataFrame | Mapping[str, Any], metrics: Sequence[str], *,
                columns: Mapping[str, str] | None = None, **identity: Any) -> pd.DataFrame:
    """Long metric rows from a wide table (or one dict): one row per (table row, metric).

    Identity comes from the table's columns named in IDENTITY (after renaming with `columns`, e.g.
    {"phrasing": "variant"}) and from the constants in `identity`; a column `<metric>_se` gives the
    standard error and a column `n` the sample count.
    """
    frame = pd.DataFrame([dict(table)]) if isinstance(table, Mapping) else table.rename(columns=dict(columns or {}))
    unknown = sorted(set(identity) - set(IDENTITY) - {"n"})
    missing = [m for m in metrics if m not in frame.columns]
    if unknown or missing:
        raise KeyError(f"metric_rows: unknown identity fields {unknown} (known: {list(IDENTITY)}), metrics "
                       f"missing from the table {missing} (it has {list(frame.columns)})")
    ids = [c for c in IDENTITY if c in frame.columns and c not in identity]
    out = []
    for metric in metrics:
        part = frame[ids].copy()
        part["metric"], part["value"] = metric, pd.to_numeric(frame[metric]).astype(float)
        part["se"] = frame[f"{metric}_se"].astype(float) if f"{metric}_se" in frame else math.nan
        part["n"] = frame["n"].astype(float) if "n" in frame else float(identity.get("n", math.nan))
        out.append(part.assign(**{k: v for k, v in identity.items() if k != "n"}))
    rows = pd.concat(out, ignore_index=True)
    blank = {c: "" for c in IDENTITY if c not in rows and c not in ("notebook", "seed")}
    return rows.assign(**blank)


def training_rows(summaries: Iterable[Any], **identity: Any) -> pd.DataFrame:
    """Rows of finetuning runs (steps, skipped steps, seconds, throughput, final loss), model = run name."""
    table = pd.DataFrame([{"model": s.run, "steps": s.steps, "skipped": s.skipped, "seconds": s.seconds,
                           "samples_per_s": s.samples_per_s, "reused": float(s.reused),
                           "final_loss": s.history[-1]["loss"] if s.history else math.nan} for s in summaries])
    return metric_rows(table, ["steps", "skipped", "seconds", "samples_per_s", "final_loss", "reused"],
                       task="training", **identity)


def _complete(rows: pd.DataFrame, notebook: str, profile: Profile) -> pd.DataFrame:
    """Fill unset identity (blank strings, the profile's finetune seed) and check that identities are unique."""
    table = rows.copy()
    table["notebook"] = notebook
    for column in COLUMNS:
        if column not in table:
            table[column] = profile.finetune.seed if column == "seed" else (
                math.nan if column in ("value", "se", "n") else "")
    table["seed"] = table["seed"].fillna(profile.finetune.seed).astype(int)
    for column in IDENTITY:
        if column != "seed":
            table[column] = table[column].fillna("").astype(str)
    table["model"] = table["model"].replace(SHARED_MODEL, "")
    table = table[list(COLUMNS)]
    duplicated = table[table.duplicated(list(IDENTITY), keep=False)]
    if len(duplicated):
        raise ValueError(f"metrics {notebook!r}: {len(duplicated)} rows share an identity, e.g.\n"
                         f"{duplicated.head(4).to_string(index=False)}\ngive them a distinguishing field "
                         "(split, variant, attribute, ...)")
    return table


def write_rows(paths: RunPaths, notebook: str, rows: pd.DataFrame | Sequence[pd.DataFrame], profile: Profile,
               info: Mapping[str, Any] | None = None) -> Path:
    """results/<profile>/metrics/<notebook>.json (<notebook>.seed<s>.json for a per-seed notebook's `paths`):
    metric rows with their provenance.

    `info` holds facts about the run that are not metrics (a fingerprint, a file name).
    """
    if paths.seed not in (None, profile.finetune.seed):
        raise ValueError(f"metrics {notebook!r}: paths for finetune seed {paths.seed}, rows of finetune.seed="
                         f"{profile.finetune.seed}; take both from one setup(PROFILE, OVERRIDES, notebook) call")
    table = _complete(rows if isinstance(rows, pd.DataFrame) else pd.concat(list(rows), ignore_index=True),
                      notebook, profile)
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
               for r in table.to_dict("records")]
    path = paths.metrics / f"{paths.named(notebook)}.json"
    write_json(path, {"name": notebook, "profile": profile.name, "git_commit": git_commit(),
                      "config": redact(asdict(profile)), "info": dict(info or {}), "rows": records})
    return path


def rows_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The rows of a metrics file as a DataFrame with every column of COLUMNS (null numbers as NaN)."""
    table = pd.DataFrame(list(records), columns=list(COLUMNS))
    return table.astype({"value": float, "se": float, "n": float, "seed": int})


def write_table(paths: RunPaths, name: str, table: Any) -> Path:
    """A pandas DataFrame as results/<profile>/metrics/<name>.csv (floats rounded to 6 places; `RunPaths.named`)."""
    path = paths.metrics / f"{paths.named(name)}.csv"
    write_text(path, table.round(6).to_csv(index=False))
    return path


def save_figure(paths: RunPaths, name: str, fig: Any) -> Path:
    """A matplotlib Figure as results/<profile>/figures/<name>.png (fixed dpi, no timestamp; `RunPaths.named`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    path = paths.figures / f"{paths.named(name)}.png"
    write_bytes(path, buf.getvalue())
    return path
