"""What hard negatives cost per finetuning step: the DiffWorld recipe with finetune.hard_negatives off and on.

    .venv/bin/python benchmarks/bench_hard_negatives.py [--steps 6] [--rounds 3] [--threads 1]

The DiffWorld defaults (`FinetuneConfig()`: diffclip-tiny, whole text tower, its batch and caption term, 4
length buckets) on template-synthesised descriptions. Each pair gets a role swap ("first" <-> "second") and
a negation (first " is " -> " is not "), as the template writer records them; they are encoded by the same text
tower in the same forward, so a step encodes the batch's descriptions and captions plus one or two negatives per
description. Rounds
alternate the settings; the verdict is the median over rounds of the per-step time ratio to "off".
"""
from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import torch
from bench_finetune import descriptions

from pcclip.finetune import finetune
from pcclip.models import load_clip
from pcclip.profiles import FinetuneConfig
from pcclip.traindata import TrainData


def negatives(text: str) -> list[str]:
    """The role swap and a negation of a template description (their length is what costs time)."""
    swap = text.replace("first", "\0").replace("second", "first").replace("\0", "second")
    return [swap, text.replace(" is ", " is not ", 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    idx1, idx2, texts, n_images = descriptions(4096)
    g = torch.Generator().manual_seed(0)
    captions = [f"a {size} {colour} shape" for size in ("small", "large") for colour in ("red", "blue")] * (n_images // 4)
    data = TrainData(torch.randn(n_images, 128, generator=g), idx1, idx2, texts, torch.arange(n_images), captions,
                     [negatives(t) for t in texts])
    torch.manual_seed(0)
    bundle = load_clip("diffclip-tiny")
    base = replace(FinetuneConfig(), steps=args.steps, warmup=0, log_every=args.steps)
    settings = {"off": base, "1 negative": replace(base, hard_negatives=True, negatives_per_text=1),
                "2 negatives": replace(base, hard_negatives=True, negatives_per_text=2)}
    per_step: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(args.rounds):
        for name in list(settings)[r % 3:] + list(settings)[:r % 3]:
            result = finetune(bundle, data, settings[name], progress=False)
            per_step[name].append(result.seconds / args.steps)
        print(f"round {r}: " + ", ".join(f"{n} {s[-1]:.3f} s/step" for n, s in per_step.items()))
    for name in list(settings)[1:]:
        ratios = [on / off for on, off in zip(per_step[name], per_step["off"])]
        print(f"{name}: {statistics.median(ratios):.2f}x the step time of the paper's loss "
              f"({min(ratios):.2f}-{max(ratios):.2f}x over {args.rounds} rounds)")


if __name__ == "__main__":
    main()
