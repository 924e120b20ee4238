"""What the benchmarks share: timing a call, and one round of two paths in alternating order.

Imported by the scripts beside it (`python benchmarks/bench_x.py` puts this folder on sys.path);
not a benchmark itself, so `make benchmarks` (benchmarks/bench_*.py) does not run it.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def paired_round(r: int, bare: Callable[[], torch.Tensor], cached: Callable[[], torch.Tensor],
                 bare_s: list[float], cache_s: list[float]) -> None:
    """Round `r`: both paths, the bare one first on even rounds, their seconds appended; the cached
    path's output must equal the bare one's (to 1e-4), or the comparison means nothing."""
    order = [("bare", bare), ("cache", cached)]
    for name, fn in order if r % 2 == 0 else order[::-1]:
        seconds, out = timed(fn)
        (bare_s if name == "bare" else cache_s).append(seconds)
        if name == "bare":
            reference = out
        else:
            result = out
    torch.testing.assert_close(result, reference, atol=1e-4, rtol=1e-4)


def verdict(ratios: list[float], target: float, setting: str) -> str:
    """A ratio benchmark's last line: the median of its within-round ratios against `target`."""
    ratio = statistics.median(ratios)
    return (f"median {ratio:.2f}x over {len(ratios)} rounds, {setting} (target >= {target}x): "
            f"{'PASS' if ratio >= target else 'FAIL'}")
