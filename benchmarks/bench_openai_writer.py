"""Throughput of the `openai` synthesis writer against a local chat server that answers after a fixed delay.

    .venv/bin/python benchmarks/bench_openai_writer.py [--pairs 1024] [--delay 0.2] [--concurrency 0]
                                                       [--rounds 3]

Each round runs notebook 01's whole synthesis (`pcclip.synthesis.synthesize`: plan, writer, filter,
store) for the rehearsal profile on its COCO fixture (`pcclip.rehearsal.write_fixtures`), against the
rehearsal's chat server (`pcclip.rehearsal.chat_server`) holding every completion `--delay` seconds,
into a fresh store. With `concurrency` requests in flight the ceiling is concurrency / delay requests
per second. Two figures per round: the writer's (pairs over the seconds spent inside
`OpenAIWriter.write`), which the verdict uses as the median over rounds of achieved / ceiling (issue
target: >= 0.90), and the whole synthesis' (also reading COCO, planning, filtering, storing).
Every round must also store each planned pair exactly once (no pair lost, none twice, none deferred)
and the server must have answered exactly one request per pair (no retries).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pcclip.paths import RunPaths
from pcclip.profiles import load_profile
from pcclip.rehearsal import FixtureSizes, chat_server, write_fixtures
from pcclip.synthesis import load_records, synthesize
from pcclip.synthesis.openai_writer import OpenAIWriter

TARGET = 0.90


def check_store(path: Path, n_pairs: int, requests: int) -> None:
    """Every planned pair stored once (load_records refuses a pair stored twice), each asked for once."""
    indices = sorted(r["index"] for r in load_records(path))
    if indices != list(range(n_pairs)):
        raise AssertionError(f"{path}: {len(indices)} records for {n_pairs} pairs "
                             f"(missing {sorted(set(range(n_pairs)) - set(indices))[:5]}...)")
    if requests != n_pairs:
        raise AssertionError(f"the server answered {requests} completion requests for {n_pairs} pairs")


class WriteTimer:
    """Adds up the seconds spent inside OpenAIWriter.write (the writer, without planning and storing)."""

    def __init__(self) -> None:
        self.seconds, self.write = 0.0, OpenAIWriter.write

    def __enter__(self) -> "WriteTimer":
        def timed_write(writer, batch):
            t0 = time.perf_counter()
            try:
                return self.write(writer, batch)
            finally:
                self.seconds += time.perf_counter() - t0

        OpenAIWriter.write = timed_write
        return self

    def __exit__(self, *exc) -> None:
        OpenAIWriter.write = self.write


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1024, help="pairs synthesised per round")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the server holds each completion")
    parser.add_argument("--concurrency", type=int, default=0, help="requests in flight (0: the profile's)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds")
    args = parser.parse_args(argv)
    seconds, writer_s = [], []
    with tempfile.TemporaryDirectory(prefix="bench-openai-") as tmp:
        write_fixtures(tmp, sizes=FixtureSizes(coco_train=400, coco_val=1), datasets=("coco",))
        with chat_server(delay_s=args.delay) as server:
            overrides = {"data_root": tmp, "synthesis.base_url": server.url, "synthesis.llm": server.model,
                         "synthesis.n_pairs": args.pairs}
            if args.concurrency:
                overrides["synthesis.concurrency"] = args.concurrency
            profile = load_profile("rehearsal", overrides)
            ceiling = profile.synthesis.concurrency / args.delay
            for r in range(args.rounds):
                before = server.requests
                start = time.perf_counter()
                with WriteTimer() as timer:
                    store = synthesize(profile, RunPaths(Path(tmp) / f"round{r}"), progress=False)
                seconds.append(time.perf_counter() - start)
                writer_s.append(timer.seconds)
                check_store(store, args.pairs, server.requests - before)
    ratio = statistics.median(args.pairs / s / ceiling for s in writer_s)
    whole = statistics.median(args.pairs / s / ceiling for s in seconds)
    cfg = profile.synthesis
    print(f"pairs={args.pairs} delay={args.delay:g}s concurrency={cfg.concurrency} batch={cfg.batch_size} "
          f"rounds={args.rounds}; every pair stored once, one request each")
    print(f"ceiling concurrency/delay: {ceiling:.1f} req/s (ideal {args.pairs / ceiling:.2f}s a round)")
    print(f"writer:          {args.pairs / min(writer_s):6.1f} req/s best (rounds: "
          f"{', '.join(f'{s:.2f}s' for s in writer_s)})")
    print(f"whole synthesis: {args.pairs / min(seconds):6.1f} req/s best (rounds: "
          f"{', '.join(f'{s:.2f}s' for s in seconds)}), {whole:.3f} of the ceiling")
    print(f"ratio writer/ceiling: {ratio:.3f} median of rounds (target >= {TARGET:.2f}) "
          f"{'OK' if ratio >= TARGET else 'BELOW TARGET'}")
    return ratio


if __name__ == "__main__":
    main()
