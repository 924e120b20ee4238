"""Notebook 03's difference tables: each distinct image pair differenced once (pcclip.evaluation.difference)
against differencing every pair of every set again for every model.

    .venv/bin/python benchmarks/bench_difference_table.py [--rounds 3] [--threads 2] [--models 4]

The sets are notebook 03's per-frame table on the diffworld profile (every held-out frame describes the same
pairs of a draw, so its 884,340 pairs hold about 45,000 distinct ones); each model's text embeddings are a seeded
random vector per distinct sentence, so both paths time the scoring alone, not a text tower. The baseline is the
per-pair scoring of commit e6a82fe, written out here. Both paths must give the same accuracies bit for bit; the
verdict is the median of the within-round ratios.
"""
from __future__ import annotations

import argparse
import zlib

import numpy as np
import torch

from rounds import timed, verdict
from pcclip.embeddings import difference_vectors, normalize
from pcclip.evaluation.difference import difference_table
from pcclip.evaluation.tasks import structure_tasks
from pcclip.profiles import load_profile
from pcclip.world import build_split

TARGET = 3.0
DIM = 128  # diffclip-tiny's embedding width


class RandomTexts:
    """A stand-in for a model's text tower: one seeded random vector per sentence, whatever the batch."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([torch.randn(DIM, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()) + self.seed))
                            for t in texts])


def per_pair_accuracies(models: dict[str, RandomTexts], images: torch.Tensor, sets: dict) -> dict[str, np.ndarray]:
    """The baseline: every pair of every set and seed differenced again for every model, 2**16 pairs at a time."""
    draws = [p for ps in sets.values() for p in ps]
    idx1, idx2 = (torch.as_tensor(np.concatenate([getattr(p, end) for p in draws])) for end in ("idx1", "idx2"))
    texts = [t for p in draws for t in p.texts]
    lookup = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    rows = torch.tensor([lookup[t] for t in texts])
    starts = np.cumsum([0] + [len(p) for p in draws[:-1]])
    out = {}
    for name, bundle in models.items():
        text_emb = normalize(bundle.encode_text(list(lookup)))
        right = []
        for lo in range(0, len(idx1), 2**16):
            part = slice(lo, lo + 2**16)
            diff = difference_vectors(images[idx1[part]], images[idx2[part]])
            right.append(((text_emb[rows[part]] * diff).sum(dim=1) > 0).numpy())
        hits = np.add.reduceat(np.concatenate(right).astype(np.float64), starts)
        out[name] = hits / np.diff([*starts, len(idx1)])
    return out


def shared_accuracies(models: dict[str, RandomTexts], images: torch.Tensor, sets: dict) -> dict[str, np.ndarray]:
    """The library's table, read back per set and seed (its accuracy is the mean over seeds)."""
    table = difference_table(models, {"test": images}, sets)
    return {name: table[table.model == name].accuracy.to_numpy() for name in models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", type=int, default=4, help="models scored on the sets (notebook 03: 4)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile = load_profile("diffworld")
    sets = structure_tasks(profile, per_frame=True)
    images = torch.randn(len(build_split(profile.world, "test")), DIM, generator=torch.Generator().manual_seed(0))
    models = {f"model{k}": RandomTexts(k) for k in range(args.models)}
    ratios = []
    for r in range(args.rounds):
        seconds, acc = {}, {}
        paths = [("per_pair", per_pair_accuracies), ("shared", shared_accuracies)]
        for name, fn in paths if r % 2 == 0 else paths[::-1]:
            seconds[name], acc[name] = timed(lambda: fn(models, images, sets))
        seeds = profile.eval.seeds
        for name in models:  # the baseline keeps each seed: average them as the table does
            if not np.array_equal(acc["per_pair"][name].reshape(-1, seeds).mean(axis=1), acc["shared"][name]):
                raise SystemExit(f"round {r}: the two paths disagree on {name}: the comparison means nothing")
        ratios.append(seconds["per_pair"] / seconds["shared"])
        print(f"round {r}: per pair {seconds['per_pair']:.2f} s, shared {seconds['shared']:.2f} s, "
              f"{ratios[-1]:.2f}x, same accuracies", flush=True)
    pairs = sum(len(p) for ps in sets.values() for p in ps)
    print(verdict(ratios, TARGET, f"{args.threads} threads, {args.models} models, {pairs:,} pairs"))


if __name__ == "__main__":
    main()
