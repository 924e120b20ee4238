"""The finetuning entry point, one process or many under torchrun (DistributedDataParallel).

    torchrun --nproc_per_node 2 -m pcclip.distributed --profile diffworld --finetune pcclip [--set k=v ...]
    python -m pcclip.distributed --profile smoke --finetune caption_ft --data prepared.pt

Backend: NCCL when CUDA is visible (one GPU per rank, from LOCAL_RANK), gloo on CPU.
Every rank encodes its slice of each global batch (`pcclip.finetune`, runs from `pcclip.runs`); rank 0 alone
writes the training state, the final checkpoint, the metrics and the loss history.
Without --data, rank 0 prepares the data first (filling the embedding cache) and the
other ranks read it after a barrier.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist

from .basemodel import load_base_model
from .locking import run_lock
from .paths import run_paths
from .profiles import PROFILES, load_profile, parse_overrides
from .results import training_rows, write_rows, write_table
from .runs import TRAINED_RUNS, RunSummary, prepare_data, train_run
from .traindata import load_data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pcclip.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES))
    parser.add_argument("--finetune", dest="run", default="pcclip", choices=TRAINED_RUNS,
                        help="which run to train (torchrun claims --run for itself)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--data", type=Path, default=None, help="a file from pcclip.traindata.save_data")
    return parser.parse_args(argv)


def _init() -> tuple[int, int, str]:
    """Join the process group when launched by torchrun; returns (rank, world size, device)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, ""
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    device = ""
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return dist.get_rank(), dist.get_world_size(), device


def main(argv: list[str] | None = None) -> RunSummary:
    """Rank 0 (the only writer) holds the run folder's lock; it takes it before joining the group,
    so a second run fails before any rank starts work (torchrun then stops the other ranks)."""
    args = parse_args(argv)
    folder = run_paths(load_profile(args.profile, parse_overrides(args.overrides)).name).root
    writer = int(os.environ.get("RANK", 0)) == 0
    with run_lock(folder, "the trainer") if writer else contextlib.nullcontext():
        return _train(args)


def _train(args: argparse.Namespace) -> RunSummary:
    rank, world, device = _init()
    try:
        overrides = parse_overrides(args.overrides) | ({"model.device": device} if device else {})
        profile = load_profile(args.profile, overrides)
        paths = run_paths(profile.name, profile.finetune.seed)  # its metrics and history are per finetune seed
        base = load_base_model(profile, paths)
        if args.data is not None:
            data = load_data(args.data)
        else:
            data = prepare_data(profile, paths, base) if rank == 0 else None
            if world > 1:
                dist.barrier()
            data = data or prepare_data(profile, paths, base)
        summary = train_run(profile, paths, args.run, base, data, progress=rank == 0)
        if rank == 0:
            write_rows(paths, f"finetune_{args.run}", training_rows([summary]), profile, info={"world_size": world})
            if summary.history:
                write_table(paths, f"finetune_{args.run}_history", pd.DataFrame(summary.history))
            print(f"{args.run}: {summary.steps} steps on {world} rank(s), {summary.samples_per_s:.1f} samples/s")
        return summary
    finally:
        if world > 1:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
