"""Throughput of the embedding cache over a folder of JPEGs against the same forward on tensors
already decoded and preprocessed.

    .venv/bin/python benchmarks/bench_cache_jpeg.py [--profile rehearsal] [--n 2048] [--rounds 3]
                                                    [--workers N] [--threads 0]

The folder is the rehearsal's COCO train split (`pcclip.rehearsal.write_fixtures`: DiffWorld drawings
saved as JPEGs of 40-80 px, some widened to 4:3) and the model the rehearsal's diffclip-tiny (random
weights: throughput does not depend on them). The cache path decodes each file, runs the model's own
preprocessing (open_clip's resize, centre crop, normalise) and the forward, with the DataLoader workers
and batch size of the profile's `cache` section; the baseline runs only the forward, on the same
preprocessed tensors. Rounds alternate the order of the two, each cache run in a cold folder; the
verdict uses the median over rounds of the within-round ratio (issue target: >= 0.80). Where the rest
goes: each step of the cache's path (decode, resize and crop, batched normalisation, forward) is also
timed on its own, one after another, each round.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pcclip.cache import embed_images
from pcclip.models import load_clip
from pcclip.profiles import load_profile
from pcclip.rehearsal import FixtureSizes, write_fixtures
from pcclip.runs import coco_images
from pcclip.synthesis.coco import load_coco_captions
from rounds import paired_round, timed

TARGET = 0.80


@torch.inference_mode()
def forward(model: torch.nn.Module, batches: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([model.encode_image(x).float() for x in batches])


def decode(files) -> list[Image.Image]:
    images = []
    for path in files:
        with Image.open(path) as im:
            im.load()
            images.append(im)
    return images


def split_times(bundle, files, batch: int) -> tuple[float, ...]:
    """Seconds for each step of the cache's path on its own: decode every file, resize and crop each
    image (`resize_crop`), normalise each batch (`images_to_tensor`), forward."""
    decode_s, images = timed(lambda: decode(files))
    resize_s, arrays = timed(lambda: np.stack([bundle.resize_crop(im) for im in images]))
    norm_s, tensors = timed(lambda: torch.cat([bundle.images_to_tensor(a) for a in np.split(arrays, range(
        batch, len(arrays), batch))]))
    forward_s, _ = timed(lambda: forward(bundle.model, list(tensors.split(batch))))
    return decode_s, resize_s, norm_s, forward_s


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="rehearsal", help="profile whose cache section (workers, batch) is used")
    parser.add_argument("--n", type=int, default=2048, help="JPEGs in the folder")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each path")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the profile's)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_profile(args.profile).cache
    workers = cfg.num_workers if args.workers is None else args.workers
    torch.manual_seed(0)
    bundle = load_clip("diffclip-tiny")
    with tempfile.TemporaryDirectory(prefix="bench-cache-jpeg-") as tmp:
        write_fixtures(tmp, sizes=FixtureSizes(coco_train=args.n, coco_val=1), datasets=("coco",))
        coco = load_coco_captions(Path(tmp) / "coco/annotations/captions_train2017.json", Path(tmp) / "coco/train2017")
        tensors = torch.stack([bundle.preprocess(im.convert("RGB")) for im in decode(coco.files)])
        batches = list(tensors.split(cfg.batch_size))
        forward(bundle.model, batches[:1])  # warm-up: first-call allocations and kernel selection

        bare_s, cache_s, parts = [], [], []
        for r in range(args.rounds):
            def cached() -> torch.Tensor:  # a fresh folder each round: always a cold cache
                source = coco_images(coco, f"bench-coco-{args.n}", bundle, workers)  # notebook 02's path
                return embed_images(bundle, source, Path(tmp) / f"round{r}", cfg, progress=False)

            paired_round(r, lambda: forward(bundle.model, batches), cached, bare_s, cache_s)
            parts.append(split_times(bundle, coco.files, cfg.batch_size))

    paired = statistics.median(b / c for b, c in zip(bare_s, cache_s))
    steps = dict(zip(("decode", "resize+crop", "normalise", "forward"),
                     (statistics.median(p[i] for p in parts) for i in range(4))))
    print(f"device=cpu threads={torch.get_num_threads()} profile={args.profile} workers={workers} "
          f"batch={cfg.batch_size} n={args.n} rounds={args.rounds}")
    print(f"forward on preprocessed tensors: {args.n / min(bare_s):8.1f} img/s best  "
          f"(rounds: {', '.join(f'{s:.2f}s' for s in bare_s)})")
    print(f"embed_images over the JPEGs:     {args.n / min(cache_s):8.1f} img/s best  "
          f"(rounds: {', '.join(f'{s:.2f}s' for s in cache_s)})")
    print(f"ratio cache/forward: {paired:.3f} median of paired rounds (target >= {TARGET:.2f}) "
          f"{'OK' if paired >= TARGET else 'BELOW TARGET'}")
    total = sum(steps.values())
    print("where the time goes, each step on its own, per image: " + ", ".join(
        f"{name} {s * 1000 / args.n:.3f} ms ({s / total:.0%})" for name, s in steps.items()))
    return paired


if __name__ == "__main__":
    main()
