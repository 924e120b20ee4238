"""benchmarks/cuda_check.py on the CPU: the rows it measures and its refusal without CUDA (README, Benchmarks,
"On a GPU"). On a CPU autocast is a no-op, so the two precisions must train alike."""
from __future__ import annotations

import importlib
import sys

import pytest
import torch

from pcclip.models import load_clip
from pcclip.paths import repo_root


@pytest.fixture(scope="module")
def cuda_check():
    folder = str(repo_root() / "benchmarks")
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module("cuda_check")
    finally:
        sys.path.remove(folder)


def _texts(n: int = 16) -> tuple:
    words = [f"the first picture holds a {'larger' if i % 2 else 'smaller'} shape, number {i}" for i in range(n)]
    idx1 = torch.arange(n)
    return idx1, (idx1 + 1) % n, words, n


def test_paper_trainer_rows_compare_the_precisions_and_see_the_lr_1e8_update(cuda_check):
    torch.manual_seed(0)
    bundle = load_clip("diffclip-tiny")
    rows = {p: cuda_check.paper_trainer(bundle, p, _texts(), "t", warm=1, timed=2, batch=8, rounds=2)
            for p in ("bf16", "fp32")}
    values = {p: {r["metric"]: r["value"] for r in rs} for p, rs in rows.items()}
    assert {(r["task"], r["dataset"], r["variant"], r["model"]) for r in rows["bf16"]} == {
        ("paper_trainer", "t", "bf16", "diffclip-tiny")}
    assert values["bf16"]["first_loss"] == values["fp32"]["first_loss"]
    assert values["bf16"]["weights_fp32"] == 1 and values["bf16"]["weights_changed"] > 0.5
    assert values["bf16"]["ms_per_step"] > 0 and values["bf16"]["batch"] == 8 and values["bf16"]["rounds"] == 2


def test_without_cuda_it_stops_and_says_how_to_dry_run(cuda_check, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["cuda_check.py", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="no CUDA device.*--device cpu --small"):
        cuda_check.main()
    assert not any(tmp_path.iterdir())
