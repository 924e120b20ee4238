"""Difference data on disk: one JSON line per pair, append-only, flushed per record.

A run killed at any point loses at most the line being written: on reopening, a torn
last line is cut off, finished pair ids are skipped, and nothing is written twice.
A sidecar `<name>.meta.json` records what produced the file (image key, writer,
settings); reopening with other settings sets the old file aside instead of mixing two datasets.
The writer holds the run folder's lock (`pcclip.locking`) from opening to closing, so no other
run can rename, quarantine or append to the file meanwhile. A complete line that is not a JSON
record (a garbled disk block, a hand edit) is moved to `<name>.rejected` with its line number by
the next writer, and its pair is written again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..atomic import write_bytes, write_json
from ..locking import run_folder, run_lock


@dataclass(frozen=True)
class DifferencePairs:
    """Accepted descriptions for training: idx1/idx2 index the DiffWorld train split (paper: COCO order)."""

    idx1: np.ndarray  # int64
    idx2: np.ndarray  # int64
    texts: list[str]
    negatives: list[list[str]] | None = None  # false descriptions per pair; None unless every record has them

    def __len__(self) -> int:
        return len(self.texts)


def meta_path(path: Path) -> Path:
    return path.with_name(path.stem + ".meta.json")


def rejected_path(path: Path) -> Path:
    return path.with_name(path.stem + ".rejected")


def _changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two nested dicts."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [prefix.rstrip(".") or "settings"] if old != new else []
    return [k for key in sorted(set(old) | set(new)) for k in _changed(old.get(key), new.get(key), f"{prefix}{key}.")]


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line without its newline: the record being written when the run died."""
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with open(path, "rb+") as fh:
            fh.truncate(keep)


def _parse(line: bytes) -> dict[str, Any] | None:
    """The record on a complete line, or None when the line is not one (garbled bytes, a hand edit)."""
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return record if isinstance(record, dict) and {"pair_id", "index", "accepted"} <= set(record) else None


def iter_records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Complete records in file order; a torn last line (no newline yet) is skipped."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.endswith(b"\n"):
                return
            record = _parse(line)
            if record is None:
                raise ValueError(f"{path}, line {n}, is not a JSON record; the file was edited or corrupted: "
                                 f"rerun synthesis (notebook 01), which moves the line to "
                                 f"{rejected_path(Path(path)).name} and writes its pair again")
            yield record


def _quarantine(path: Path) -> int:
    """Move complete lines that are not records to <name>.rejected (as {"line", "text"} rows) and
    rewrite the store without them; returns how many were moved."""
    lines = path.read_bytes().splitlines(keepends=True)
    bad = [n for n, line in enumerate(lines, start=1) if line.endswith(b"\n") and _parse(line) is None]
    if bad:
        rows = "".join(json.dumps({"line": n, "text": lines[n - 1].decode("utf-8", "replace")}) + "\n" for n in bad)
        with open(rejected_path(path), "a", encoding="utf-8") as fh:
            fh.write(rows)
            fh.flush()
            os.fsync(fh.fileno())
        drop = set(bad)
        write_bytes(path, b"".join(line for n, line in enumerate(lines, start=1) if n not in drop))
        print(f"{path.name}: {len(bad)} lines ({bad[:10]}{' ...' if len(bad) > 10 else ''}) were not records; moved to {rejected_path(path).name}, their pairs are "
              "written again", file=sys.stderr)
    return len(bad)


def load_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records (accepted and rejected), in pair order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"difference data {path} not found: run notebook 01 (pcclip.synthesis.synthesize)")
    records = list(iter_records(path))
    seen: set[str] = set()
    for r in records:
        if r["pair_id"] in seen:
            raise ValueError(f"{path} holds pair {r['pair_id']!r} twice; it was appended to by hand or by two runs "
                             "at once: delete it and rerun synthesis")
        seen.add(r["pair_id"])
    return sorted(records, key=lambda r: r["index"])


def load_accepted(path: str | os.PathLike) -> DifferencePairs:
    """The pairs whose description passed the filter, in pair order, with their `negatives` (hard negatives)
    when every one of them carries that field."""
    kept = [r for r in load_records(path) if r["accepted"]]
    negatives = [list(r["negatives"]) for r in kept] if all("negatives" in r for r in kept) else None
    return DifferencePairs(idx1=np.array([r["idx1"] for r in kept], dtype=np.int64),
                           idx2=np.array([r["idx2"] for r in kept], dtype=np.int64),
                           texts=[r["text"] for r in kept], negatives=negatives)


class DifferenceStore:
    """Append-only writer that resumes: `finished` holds the pair ids already on disk (only ids and
    accepted texts are kept in memory, not whole records: an LLM run may hold 100k of them)."""

    def __init__(self, path: str | os.PathLike, meta: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            stack.enter_context(run_lock(run_folder(self.path), "synthesis"))
            self._check_meta(meta)
            if self.path.exists():
                _cut_torn_tail(self.path)
                _quarantine(self.path)
            self.finished: set[str] = set()
            self.accepted_texts: list[str] = []  # seeds the near-duplicate filter on a resumed run
            for record in iter_records(self.path) if self.path.exists() else ():
                self._note(record)
            self._fh = open(self.path, "a", encoding="utf-8")
            self._lock = stack.pop_all()  # held until close()

    def _check_meta(self, meta: dict[str, Any]) -> None:
        side = meta_path(self.path)
        meta = json.loads(json.dumps(meta))  # tuples -> lists, as they come back from disk
        if side.exists():
            old = json.loads(side.read_text())
            if old == meta:
                return
            self._set_aside(old, meta)
        elif self.path.exists() and self.path.stat().st_size:
            raise ValueError(f"{self.path} has no {side.name}, so its settings are unknown; delete it to start over")
        write_json(side, meta)

    def _set_aside(self, old: dict[str, Any], meta: dict[str, Any]) -> None:
        """Data written with other settings never mixes with the new run; it may have cost GPU
        hours, so it is renamed (tagged by its settings) rather than deleted. Only called with the
        run folder's lock held, so no live run is appending to the file being renamed."""
        tag = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:10]
        stale = self.path.with_name(f"{self.path.stem}.{tag}{self.path.suffix}")
        if self.path.exists():
            os.replace(self.path, stale)
        os.replace(meta_path(self.path), meta_path(stale))
        print(f"{self.path.name}: settings changed ({', '.join(_changed(old, meta))}); the earlier data is kept "
              f"as {stale.name} and synthesis starts afresh", file=sys.stderr)

    def append(self, record: dict[str, Any]) -> None:
        if record["pair_id"] in self.finished:
            raise ValueError(f"pair {record['pair_id']!r} is already in {self.path}")
        self._check_still_ours()
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        self._note(record)

    def _check_still_ours(self) -> None:
        """The open handle must still be the file at `path`: a process that ignored the lock may have
        moved or replaced it, and records appended to a moved file would silently go missing."""
        try:
            same = os.path.samestat(os.fstat(self._fh.fileno()), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:
            raise RuntimeError(f"{self.path} was moved or replaced while this run wrote it (by a process that does "
                               "not take the run folder's lock); nothing more is written: rerun synthesis")

    def _note(self, record: dict[str, Any]) -> None:
        self.finished.add(record["pair_id"])
        if record["accepted"]:
            self.accepted_texts.append(record["text"])

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._lock.close()

    def __enter__(self) -> "DifferenceStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
