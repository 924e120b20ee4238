"""Atomic writes: a failing writer leaves the old file intact and no temp files behind."""
from __future__ import annotations

import json

import pytest
import torch

from pcclip.atomic import atomic_path, torch_save, write_bytes, write_json, write_text


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_creates_folders_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "metrics.json"
    write_json(path, {"acc": 0.5, "names": ("x", "y"), "where": tmp_path})
    assert json.loads(path.read_text()) == {"acc": 0.5, "names": ["x", "y"], "where": str(tmp_path)}
    write_text(path, "new")
    assert path.read_text() == "new"
    assert leftovers(path.parent) == []


def test_failing_writer_keeps_the_old_file(tmp_path):
    path = tmp_path / "shard.bin"
    write_bytes(path, b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half of the new cont")
            raise RuntimeError("disk on fire")
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_unserialisable_json_keeps_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"acc": 1})
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        write_json(path, {"acc": object()})
    assert json.loads(path.read_text()) == {"acc": 1}
    assert leftovers(tmp_path) == []


def test_failing_torch_save_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "state.pt"
    torch_save({"step": 1}, path)
    with pytest.raises(Exception):
        torch_save({"step": 2, "fn": lambda: None}, path)  # lambdas cannot be pickled
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert leftovers(tmp_path) == []


def test_failed_first_write_leaves_nothing(tmp_path):
    path = tmp_path / "new.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text("{")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    """mkstemp creates 0600 files; the final file must be readable as any normally created file is."""
    path = tmp_path / "metrics.json"
    write_json(path, {"acc": 1})
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    assert path.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777
