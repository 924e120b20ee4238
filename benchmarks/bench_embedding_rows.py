"""DiffWorld finetuning steps with the used token-embedding rows (pcclip.embedding_rows) against the whole table.

    .venv/bin/python benchmarks/bench_embedding_rows.py [--steps 60] [--rounds 4] [--threads 2]

Today's DiffWorld recipe (`FinetuneConfig()`: the whole text tower, batch 64 with 16 captions) on a seeded
random diffclip-tiny and DiffWorld template descriptions, in one process: rounds alternate the two paths
(the trainer with `_rows_only` switched off is the whole-table baseline), both runs of a round must end with
the same weights bit for bit, and the verdict is the median of the within-round ratios.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from bench_finetune import descriptions
from rounds import verdict
from pcclip import finetune as trainer
from pcclip.models import load_clip
from pcclip.profiles import FinetuneConfig, load_profile
from pcclip.traindata import TrainData
from pcclip.world import build_split

TARGET = 1.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bundle = load_clip("diffclip-tiny")
    idx1, idx2, texts, n_images = descriptions(8192)
    captions = build_split(load_profile("smoke").world, "train").captions(seed=1000)
    data = TrainData(torch.randn(n_images, bundle.model.text_projection.shape[1]), idx1, idx2, texts,
                     torch.arange(n_images), captions)
    cfg = replace(FinetuneConfig(), steps=args.steps, log_every=args.steps, save_every=10**9)
    rows_only = trainer._rows_only
    ratios = []
    for r in range(args.rounds):
        seconds, prints = {}, {}
        for name in ("whole", "rows") if r % 2 == 0 else ("rows", "whole"):
            trainer._rows_only = rows_only if name == "rows" else (lambda *a: None)
            result = trainer.finetune(bundle, data, cfg, progress=False)
            seconds[name], prints[name] = result.seconds, result.bundle.fingerprint
        trainer._rows_only = rows_only
        if prints["whole"] != prints["rows"]:
            raise SystemExit(f"round {r}: the two paths ended with different weights: the comparison means nothing")
        ratios.append(seconds["whole"] / seconds["rows"])
        print(f"round {r}: whole table {1000 * seconds['whole'] / args.steps:.1f} ms/step, used rows "
              f"{1000 * seconds['rows'] / args.steps:.1f} ms/step, {ratios[-1]:.2f}x, same weights", flush=True)
    print(verdict(ratios, TARGET, f"{args.threads} threads"))


if __name__ == "__main__":
    main()
