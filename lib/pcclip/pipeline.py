"""Run every numbered notebook with papermill, in order, for one profile.

    python -m pcclip.pipeline --profile diffworld [--set finetune.steps=100 ...] [--only 00 02] [--seeds 1]
    python -m pcclip.pipeline --profile diffworld --base-study 1,2   # the base-model study (pretrain seeds)
    python -m pcclip.pipeline --profile diffworld --levers recipe,blocks [--seeds 0,1]   # the lever study
    python -m pcclip.pipeline --refresh-references   # re-record the nbval reference outputs

The notebooks of PER_SEED_NOTEBOOKS (those that use the finetuned models) run once per seed of finetune.seeds,
each with the override finetune.seed=<s>, as <name>.seed<s>.ipynb; the others run once. Executed notebooks
land in results/<profile>/notebooks/, with a manifest.json that records commit, package versions, profile,
seeds (finetune_seeds: the seeds the report expects), device, and per executed notebook its commit, device and
wall time; a run with --only (and --seeds) updates its notebooks' entries and keeps the others', and one that
reruns only the report (06, which writes no metrics) keeps the header of the run its metrics come from. The run
holds the folder's lock (`pcclip.locking`), so a second pipeline, trainer or synthesis on the profile fails at
once; the notebook kernels it starts inherit the lock. Secrets in overrides never reach the manifest
or the notebooks' parameters (`pcclip.redact`).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from .atomic import write_json
from .locking import run_lock
from .notebook import QUIET_ENV
from .paths import (PER_SEED_NOTEBOOKS, RunPaths, base_study_root, lever_root, repo_root, results_tree, run_paths,
                    seeded)
from .profiles import FORCE_ENV, Profile, load_profile, parse_overrides
from .redact import secrets_for_children
from .results import git_commit

PACKAGES = ("torch", "open-clip-torch", "numpy", "papermill", "nbval", "pandas", "umap-learn", "transformers")
CHECK_MARK = "NBVAL_CHECK_OUTPUT"


def notebooks(folder: Path | None = None) -> list[Path]:
    folder = folder or repo_root() / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return found


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the platform's word for it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def _device() -> str:
    """Where the run computed. On a CPU the model name, the vector kernels torch chose and the thread count:
    float order, and so the trained models, depend on all three (README, "Determinism")."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return (f"cpu ({_cpu_name()}, {platform.machine()}, {torch.backends.cpu.get_cpu_capability()} kernels, "
            f"{os.cpu_count()} cores, {torch.get_num_threads()} threads)")


def _select(only: list[str] | None) -> list[Path]:
    found = notebooks()
    known = [nb.name[:2] for nb in found]
    unknown = [n for n in only or [] if n not in known]
    if unknown:
        raise ValueError(f"--only {unknown}: no such notebook; known numbers: {known}")
    return [nb for nb in found if not only or nb.name[:2] in only]


def jobs(selected: list[Path], seeds: tuple[int, ...]) -> list[tuple[Path, int | None]]:
    """(notebook, finetune seed) in run order: a per-seed notebook once per seed, the others once (None)."""
    return [(nb, seed) for nb in selected for seed in (seeds if nb.stem in PER_SEED_NOTEBOOKS else (None,))]


def _seeds(profile: Profile, chosen: list[int] | None) -> tuple[int, ...]:
    """The finetune seeds to run: `chosen` (--seeds) when given, which must be seeds of the profile."""
    if chosen is None:
        return profile.finetune.seeds
    unknown = [s for s in chosen if s not in profile.finetune.seeds]
    if unknown or not chosen:
        raise ValueError(f"--seeds {chosen}: choose among finetune.seeds={list(profile.finetune.seeds)} "
                         "(or change them with --set finetune.seeds=...)")
    return tuple(chosen)


def _previous_manifest(path: Path, profile: Profile) -> dict:
    """An earlier manifest of the same profile, its notebook entries cut to the executed notebooks a run of
    `profile` writes now (not those of dropped seeds or an older layout); {} when there is none."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if old.get("profile") != profile.name:
        return {}
    current = {f"{seeded(nb.stem, seed)}.ipynb" for nb, seed in jobs(notebooks(), profile.finetune.seeds)}
    return {**old, "notebooks": {k: v for k, v in old.get("notebooks", {}).items() if k in current}}


def _writes_metrics(todo: list[tuple[Path, int | None]]) -> bool:
    """Whether a job writes metrics the report reads; the report (06) alone writes none."""
    from .report import EXPECTED

    return any(nb.stem in EXPECTED for nb, _ in todo)


def _progress(name: str) -> dict | bool:
    """papermill's bar: notebook name, cell k of n, elapsed and remaining time; off under $PCCLIP_QUIET (tests)."""
    if os.environ.get(QUIET_ENV):
        return False
    return {"desc": name, "unit": "cell", "file": sys.stderr, "dynamic_ncols": True}


def run(profile_name: str, overrides: dict[str, str], only: list[str] | None = None,
        seeds: list[int] | None = None) -> Path:
    """Execute the notebooks (the per-seed ones for `seeds`, default every seed of finetune.seeds); raises on
    the first failing one (its partial output is kept)."""
    profile = load_profile(profile_name, overrides)  # fail before starting a kernel
    paths = run_paths(profile.name)
    todo = jobs(_select(only), _seeds(profile, seeds))
    with run_lock(paths.root, "the pipeline"), secrets_for_children(overrides) as shown:
        return _execute(profile, paths, todo, shown)


def _execute(profile: Profile, paths: RunPaths, todo: list[tuple[Path, int | None]],
             overrides: dict[str, str]) -> Path:
    """Run the (notebook, seed) jobs in order with the lock held; `overrides` are the redacted ones
    (pcclip.redact)."""
    import papermill

    paths.notebooks.mkdir(parents=True, exist_ok=True)
    run_info = {"git_commit": git_commit(), "overrides": overrides, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "device": _device()}
    manifest = _previous_manifest(paths.root / "manifest.json", profile)
    # The header names the run the metrics come from (the report checks every metrics file against it), so
    # rerunning the report alone, at a later commit or elsewhere, keeps it; its own entry records the rerun.
    if not manifest or _writes_metrics(todo):
        manifest = {"profile": profile.name, **run_info, "seed": profile.seed,
                    "seeds": {k: v["seed"] for k, v in asdict(profile).items() if isinstance(v, dict) and "seed" in v},
                    "finetune_seeds": list(profile.finetune.seeds), "packages": _versions(),
                    "notebooks": manifest.get("notebooks", {})}
    ran = 0.0  # this call's notebooks; the manifest's total also counts those an earlier call ran (--only)
    for nb, seed in todo:
        name = f"{seeded(nb.stem, seed)}.ipynb"
        print(f"[pipeline] {name} (profile {profile.name})", flush=True)
        t0 = time.perf_counter()
        given = overrides if seed is None else overrides | {"finetune.seed": str(seed)}
        papermill.execute_notebook(str(nb), str(paths.notebooks / name), cwd=str(nb.parent),
                                   parameters={"PROFILE": profile.name, "OVERRIDES": given},
                                   kernel_name="python3", progress_bar=_progress(name))
        seconds = round(time.perf_counter() - t0, 1)
        ran += seconds
        manifest["notebooks"][name] = {"seconds": seconds, **run_info,
                                       **({} if seed is None else {"finetune_seed": seed})}
        write_json(paths.root / "manifest.json", manifest)
    manifest["total_seconds"] = round(sum(v["seconds"] for v in manifest["notebooks"].values()), 1)
    write_json(paths.root / "manifest.json", manifest)
    print(f"[pipeline] done in {ran:.1f} s (the run's notebooks: {manifest['total_seconds']} s) -> {paths.root}",
          flush=True)
    return paths.root


def base_study(profile_name: str, overrides: dict[str, str], pretrain_seeds: list[int],
               only: list[str] | None = None) -> list[Path]:
    """The base-model study: the whole pipeline again for each of `pretrain_seeds` (a new base model, then
    every finetune seed on it), each in its own results tree `paths.base_study_root`; then the study's table
    beside the main run (`pcclip.report.write_base_study`). The main run's pretrain seed is refused: it is the
    main run, which must be complete before the study starts (its table needs it). With `only`, trees that lack
    the other notebooks' metrics leave the table unwritten, and the run says why instead of failing."""
    from .report import StaleResults, build_summary, write_base_study

    main = load_profile(profile_name, overrides)
    build_summary(run_paths(main.name))  # StaleResults names what the main run lacks, before an hour of study
    if not pretrain_seeds or len(set(pretrain_seeds)) < len(pretrain_seeds) or main.pretrain.seed in pretrain_seeds:
        raise ValueError(f"--base-study {pretrain_seeds}: give distinct pretrain seeds other than the main run's "
                         f"pretrain.seed={main.pretrain.seed}, e.g. --base-study 1,2")
    for seed in pretrain_seeds:  # fail before any kernel on a bad seed
        load_profile(profile_name, overrides | {"pretrain.seed": str(seed)})
    roots = []
    for seed in pretrain_seeds:
        with results_tree(base_study_root(main.name, seed)):
            roots.append(run(profile_name, overrides | {"pretrain.seed": str(seed)}, only))
    try:
        table = write_base_study(main)
    except StaleResults as exc:
        if only is None:
            raise
        print(f"[pipeline] base-model study: ran notebooks {' '.join(only)} only, so its table is not written (run "
              f"the study without --only to write it), because {exc}", flush=True)
        return roots
    print(f"[pipeline] base-model study: {len(table)} rows -> {base_study_root(main.name, None)}", flush=True)
    return roots


def lever_study(profile_name: str, overrides: dict[str, str], names: list[str] | None,
                seeds: list[int] | None = None) -> list[Path]:
    """The lever study (`pcclip.levers`): notebooks 02 and 03 again for each lever and finetune seed, each lever in
    its own results tree that starts from copies of the main run's base model, data and finetuned runs; then the
    study's table. A lever's overrides go over `overrides`; rerunning a lever reruns its notebooks, whose notebook 02
    reuses each finished run and resumes a crashed one."""
    from .levers import NOTEBOOKS, levers, seed_tree, write_lever_study

    chosen = levers(names)
    main = load_profile(profile_name, overrides)
    for lever in chosen:  # fail before any kernel on a bad override or seed
        _seeds(load_profile(profile_name, overrides | lever.overrides), seeds)
    main_paths = run_paths(main.name)
    roots = []
    for lever in chosen:
        with results_tree(lever_root(main.name, lever.name)):
            tree = run_paths(main.name)
            with run_lock(main_paths.root, "the lever study's copy of the base model"), \
                    run_lock(tree.root, "the lever study"):
                seed_tree(main_paths, tree)
            roots.append(run(profile_name, overrides | lever.overrides, list(NOTEBOOKS), seeds))
    table = write_lever_study(main.name)
    print(f"[pipeline] lever study: {len(table)} rows -> {lever_root(main.name, None)}", flush=True)
    return roots


def _seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated seeds, e.g. 1,2") from None


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def refresh_references(profile_name: str = "smoke") -> None:
    """Execute each notebook as nbval will (forced profile) and keep only the outputs of
    cells marked NBVAL_CHECK_OUTPUT: those are the references nbval compares against."""
    import nbformat
    from nbclient import NotebookClient

    os.environ[FORCE_ENV] = profile_name
    os.environ.setdefault(QUIET_ENV, "1")
    for nb_path in notebooks():
        print(f"[refs] {nb_path.name}", flush=True)
        nb = nbformat.read(nb_path, as_version=4)
        executed = copy.deepcopy(nb)
        NotebookClient(executed, timeout=1200, kernel_name="python3",
                       resources={"metadata": {"path": str(nb_path.parent)}}).execute()
        for cell, ran in zip(nb.cells, executed.cells):
            if cell.cell_type != "code":
                continue
            checked = CHECK_MARK in cell.source
            cell.outputs = ran.outputs if checked else []
            cell.execution_count = ran.execution_count if checked else None  # nbval skips unrun references
        nbformat.write(nb, nb_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcclip.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="diffworld")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="profile override, e.g. finetune.steps=100 (repeatable)")
    parser.add_argument("--only", nargs="*", help="notebook numbers to run, e.g. 00 01")
    parser.add_argument("--seeds", type=_seed_list, help="finetune seeds to run the per-seed notebooks for, e.g. 1,2 "
                        "(default: all of finetune.seeds)")
    parser.add_argument("--base-study", type=_seed_list, metavar="PRETRAIN_SEEDS",
                        help="run the base-model study with these pretrain seeds, e.g. 1,2")
    parser.add_argument("--levers", type=_names, nargs="?", const=[], metavar="NAMES",
                        help="run the lever study for these levers (pcclip.levers.LEVERS), e.g. recipe,blocks; "
                        "all of them when no names are given")
    parser.add_argument("--refresh-references", action="store_true")
    args = parser.parse_args(argv)
    if args.refresh_references:
        refresh_references()
        return 0
    if args.base_study is not None:
        base_study(args.profile, parse_overrides(args.set), args.base_study, args.only)
        return 0
    if args.levers is not None:
        lever_study(args.profile, parse_overrides(args.set), args.levers or None, args.seeds)
        return 0
    run(args.profile, parse_overrides(args.set), args.only, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
