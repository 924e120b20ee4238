"""The CUDA paths on a GPU, checked and timed: the paper trainer in bf16 autocast and in fp32, the
image-embedding cache, and DiffWorld trained on the GPU.

    python benchmarks/cuda_check.py --out results/cuda-h200        # on a machine with a CUDA device
    python benchmarks/cuda_check.py --device cpu --small --out /tmp/x  # a dry run of every section

Not a bench_*.py: `make benchmarks` runs anywhere and this needs CUDA. Rows carry their identity
(task = section, model, variant = precision, metric) in OUT/metrics/cuda_check.json, the format of
`pcclip.results`, so the README quotes them with `<!-- row profile=... -->` tags that a test checks.
Weights are random (speed and memory do not depend on them; nothing is downloaded); descriptions are
DiffWorld template ones (shorter than an LLM's: see the tokens row).
Multi-rank DDP over NCCL is not checked here: NCCL refuses two ranks on one GPU.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from bench_finetune import descriptions
from pcclip.atomic import write_json
from pcclip.basemodel import build_base_model
from pcclip.cache import array_source, embed_images
from pcclip.evaluation.check import check_scores, finetune_check
from pcclip.finetune import finetune
from pcclip.models import ClipBundle, load_clip, state_fingerprint
from pcclip.paths import RESULTS_ENV, run_paths
from pcclip.profiles import CacheConfig, load_profile
from pcclip.results import COLUMNS, git_commit
from pcclip.runs import prepare_data, run_config
from pcclip.synthesis import synthesize
from pcclip.text_tower import tokenize
from pcclip.traindata import TrainData

GIB = 2 ** 30


def _row(task: str, model: str, variant: str, dataset: str = "", **metrics: float) -> list[dict]:
    return [{"notebook": "cuda_check", "task": task, "dataset": dataset, "split": "", "variant": variant,
             "attribute": "", "model": model, "seed": 0, "metric": k, "value": float(v), "se": None, "n": None}
            for k, v in metrics.items()]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> float:
    """Reset the peak-memory counter; returns the GiB held now."""
    if device.type != "cuda":
        return math.nan
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device) / GIB


def _peak(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else math.nan


def paper_trainer(bundle: ClipBundle, precision: str, texts: tuple, name: str, warm: int, timed: int,
                  batch: int, rounds: int) -> list[dict]:
    """The paper's finetuning config (text blocks, lr 1e-8, Adam) at `batch`: ms per step from pairs of runs
    (warm and warm + timed steps, their difference; the median over `rounds` pairs, after a first run that
    pays CUDA's one-time setup), peak GPU memory, the first step's loss, and whether the lr-1e-8 update
    reached the fp32 weights (autocast must not round it away)."""
    idx1, idx2, words, n_images = texts
    dev = bundle.device
    image_emb = torch.randn(n_images, bundle.model.text_projection.shape[1], generator=torch.Generator().manual_seed(0))
    data = TrainData(image_emb, idx1, idx2, list(words))  # the same for both precisions: first losses compare
    cfg = replace(load_profile("paper").finetune, precision=precision, epochs=0.0, batch_size=batch,
                  save_every=10**9)
    first_loss = finetune(bundle, data, replace(cfg, steps=warm, log_every=1), progress=False).history[0]["loss"]
    per_step, run = [], None
    for _ in range(rounds):  # only the base model is held when a timed run starts: its peak is the trainer's
        run = None
        short = finetune(bundle, data, replace(cfg, steps=warm, log_every=50), progress=False).seconds
        held = _peak_reset(dev)
        run = finetune(bundle, data, replace(cfg, steps=warm + timed, log_every=50), progress=False)
        per_step.append((run.seconds - short) / timed)
    _sync(dev)
    before = bundle.model.transformer.resblocks[0].mlp.c_fc.weight
    after = run.bundle.model.transformer.resblocks[0].mlp.c_fc.weight
    fp32 = all(p.dtype == torch.float32 for p in run.bundle.model.parameters())
    tokens, lengths = tokenize(bundle.tokenizer, bundle.model, list(words))
    seconds = statistics.median(per_step)
    return _row("paper_trainer", bundle.model_name, precision, name, batch=batch,
                ms_per_step=1000 * seconds, samples_per_s=batch / seconds, rounds=rounds,
                peak_gib=_peak(dev), model_gib=held, first_loss=first_loss,
                weights_changed=float((before != after).float().mean()), weights_fp32=float(fp32),
                mean_tokens=float(lengths.float().mean()))


def profile_steps(bundle: ClipBundle, texts: tuple, batch: int, steps: int = 6) -> None:
    """Where a bf16 paper step spends its time: torch.profiler's top operators by GPU and by CPU time."""
    idx1, idx2, words, n_images = texts
    data = TrainData(torch.randn(n_images, bundle.model.text_projection.shape[1]), idx1, idx2, list(words))
    cfg = replace(load_profile("paper").finetune, precision="bf16", epochs=0.0, batch_size=batch, steps=steps,
                  save_every=10**9, log_every=50)
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if bundle.device.type == "cuda" else [])
    with torch.profiler.profile(activities=activities) as prof:
        finetune(bundle, data, cfg, progress=False)
    for key in ("self_cuda_time_total", "self_cpu_time_total") if bundle.device.type == "cuda" else ("self_cpu_time_total",):
        print(prof.key_averages().table(sort_by=key, row_limit=14, max_name_column_width=48), flush=True)


def image_cache(bundle: ClipBundle, precision: str, n_images: int) -> list[dict]:
    """`pcclip.cache.embed_images` on random uint8 images at the model's input size (no JPEG decoding):
    images per second through the frozen image tower, as notebook 02 fills the cache."""
    size = bundle.model.visual.preprocess_cfg["size"]
    side = size if isinstance(size, int) else size[0]
    images = torch.randint(0, 256, (n_images, side, side, 3), dtype=torch.uint8).numpy()
    source = array_source(bundle, images, f"random{n_images}")
    cfg = CacheConfig(batch_size=256, shard_size=n_images, num_workers=0)
    with tempfile.TemporaryDirectory() as tmp:
        embed_images(bundle, array_source(bundle, images[:256], "warm"), Path(tmp), cfg, precision, progress=False)
        t0 = time.perf_counter()
        emb = embed_images(bundle, source, Path(tmp), cfg, precision, progress=False)
        seconds = time.perf_counter() - t0
    return _row("image_cache", bundle.model_name, precision, images_per_s=n_images / seconds,
                finite=float(torch.isfinite(emb).all()))


def diffworld(device: str, small: bool) -> list[dict]:
    """The DiffWorld library path with model.device on the GPU: pretraining, the cache, one PC-CLIP finetune
    (seed 0) with notebook 02's check, and whether two short finetunes from the same state agree bitwise."""
    sizes = {"world.n_train": 2000, "world.n_test": 500, "pretrain.steps": 20, "finetune.steps": 40,
             "synthesis.n_pairs": 2000} if small else {}
    seconds, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[RESULTS_ENV] = tmp
        profile = load_profile("diffworld", {"model.device": device, **sizes})
        paths = run_paths(profile.name)
        for folder in (paths.metrics, paths.checkpoints, paths.cache, paths.data):
            folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        base = build_base_model(profile, paths)
        seconds["pretrain_s"] = time.perf_counter() - t0
        synthesize(profile, paths, progress=False)
        t0 = time.perf_counter()
        data = prepare_data(profile, paths, base)
        seconds["prepare_s"] = time.perf_counter() - t0
        cfg = run_config(profile.finetune, "pcclip")
        run = finetune(base, data, cfg, progress=False)
        seconds["finetune_s"], seconds["ms_per_step"] = run.seconds, 1000 * run.seconds / cfg.steps
        check = finetune_check(profile, paths, base)
        scores = check_scores(run.bundle, check)
        short = replace(cfg, steps=min(cfg.steps, 100))
        prints = {state_fingerprint(base.model_name, finetune(base, data, short, progress=False).bundle.model.state_dict())
                  for _ in range(2)}
    del os.environ[RESULTS_ENV]
    rows += _row("diffworld", profile.model.model_name, "fp32", **seconds, repeat_identical=float(len(prints) == 1))
    rows += _row("diffworld_check", profile.model.model_name, "fp32", **scores)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="rows go to OUT/metrics/cuda_check.json")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="tiny sizes: a dry run of every section")
    parser.add_argument("--models", default="ViT-L-14,ViT-B-32-quickgelu")
    parser.add_argument("--sections", default="trainer,cache,diffworld")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for a GPU machine (--device cpu --small for a dry run)")
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    info = {"device": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "cpus": os.cpu_count()}
    print(info, flush=True)
    batch, warm, timed, rounds, n_images = (8, 1, 2, 2, 64) if args.small else (512, 3, 40, 2, 4096)
    texts = descriptions(256 if args.small else 8192)
    idx1, idx2, words, n = texts  # three descriptions joined: about the length of an LLM's (the paper's data)
    long = idx1, idx2, [" ".join(words[i:i + 3]) for i in range(len(words))], n
    sections = args.sections.split(",")
    rows: list[dict] = []

    def save(new: list[dict]) -> None:  # after every section, so a run cut short keeps what it measured
        rows.extend(new)
        write_json(args.out / "metrics" / "cuda_check.json", {"name": "cuda_check", "profile": args.out.name,
                                                              "git_commit": git_commit(), "info": info, "rows": rows})
        print(pd.DataFrame(new, columns=list(COLUMNS))[["task", "model", "variant", "metric", "value"]]
              .to_string(index=False), flush=True)

    def model_sections(name: str) -> None:
        torch.manual_seed(0)
        bundle = load_clip(name, "", args.device)
        for precision in ("bf16", "fp32") if "trainer" in sections else ():
            save(paper_trainer(bundle, precision, texts, "templates", warm, timed, batch, rounds))
            if name == paper_model:
                save(paper_trainer(bundle, precision, long, "templates_x3", warm, timed, batch, rounds))
        if "profile" in sections and name == paper_model:
            profile_steps(bundle, texts, batch)
        for precision in ("bf16", "fp32") if "cache" in sections else ():
            save(image_cache(bundle, precision, n_images))

    paper_model, *others = args.models.split(",")  # the paper's model first, then DiffWorld: what matters most
    model_sections(paper_model)
    if "diffworld" in sections:
        save(diffworld(args.device, args.small))
    for name in others:
        model_sections(name)


if __name__ == "__main__":
    main()
