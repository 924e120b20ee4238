"""python -m pcclip.rehearsal DIR: write the rehearsal's data root (fixture datasets and base model)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..profiles import REHEARSAL_MODEL_FILE, parse_overrides
from . import write_rehearsal


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pcclip.rehearsal", description=__doc__)
    parser.add_argument("root", help="the rehearsal profile's data_root (created if missing; what it lacks is written)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-profile", default="diffworld",
                        help="DiffWorld profile whose base model is saved (reused from results/<profile> if built)")
    parser.add_argument("--no-model", action="store_true", help="write the datasets only")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of the base profile, e.g. pretrain.steps=100")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    seconds = write_rehearsal(args.root, args.seed, args.base_profile, parse_overrides(args.set),
                              model_file=None if args.no_model else REHEARSAL_MODEL_FILE)
    files = [p for p in Path(args.root).rglob("*") if p.is_file()]
    mb = sum(p.stat().st_size for p in files) / 2**20
    print(", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()) + f": {len(files)} files, {mb:.1f} MB "
          f"in {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
