"""Check every input a profile's pipeline needs before any compute, and say how to get what is missing.

    python -m pcclip.preflight --profile paper [--set eval.datasets=cifar10,dtd ...]

Prints one table (input, where it looked, found / missing, how to fix) and exits 1 if anything is
missing. Looks only: nothing is downloaded, parsed in full or loaded onto a GPU, and each network
check is one request with a short timeout, so an offline machine gets its answer in seconds.
In a notebook's first cell: `require_inputs(profile)` prints the table and raises if anything is missing.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from . import clip_tables
from .dataset_layouts import LAYOUTS, DatasetNotFound, layout_of, require_layout
from .network import TIMEOUT_S, get_json, unreachable
from .paths import run_paths
from .profiles import (DATA_ENV, Profile, data_root, load_profile, parse_overrides, serves_own_llm,
                       writes_own_inputs)

# What a run writes under results/<profile>/ scales with its text tower and its finetune seeds: per seed, the
# finetuned checkpoints and resumable training states (weights + two Adam moments) of up to three runs, plus
# embedding caches, stay under 30 fp32 copies of the tower. One seed: 15 GB for ViT-L-14, 8 GB for ViT-B-32,
# the 1 GB floor for diffclip-tiny (a DiffWorld seed writes ~200 MB, the rehearsal ~220 MB in all).
TOWER_COPIES = 30
UNKNOWN_ARCHITECTURE_GB = 15.0


@dataclass(frozen=True)
class Check:
    """One input: what it is, where we looked, whether it is there, and how to get it if not."""

    input: str
    where: str
    found: bool
    fix: str = ""


def check_weights(profile: Profile) -> Check:
    name, tag = profile.model.model_name, profile.model.pretrained
    label = f"weights {name}/{tag or 'DiffWorld'}"
    if not tag:
        return Check(label, "notebooks/00_base_model.ipynb", True, "pretrained from scratch by notebook 00")
    if os.path.isfile(tag) or os.path.isdir(tag):  # a checkpoint file or an open_clip folder
        return Check(label, tag, True)
    if os.sep in tag or tag.endswith((".pt", ".bin", ".safetensors")):
        return Check(label, tag, False, "no such file: fix model.pretrained")
    try:
        mismatch = clip_tables.activation_mismatch(name, tag)
    except ValueError as err:  # unknown tag
        return Check(label, "open_clip pretrained table", False, str(err))
    if mismatch:
        return Check(label, "open_clip pretrained table", False, mismatch)
    cached = clip_tables.cached_weights(name, tag)
    if cached:
        return Check(label, cached, True)
    return _download_check(label, "Hugging Face cache ($HF_HOME)", "model.download", profile.model.download,
                           _hub_server(), clip_tables.missing_weights_message(name, tag))


def _hub_server() -> str:
    from huggingface_hub import constants

    return "" if constants.HF_HUB_OFFLINE else constants.ENDPOINT


def _download_check(label: str, where: str, switch: str, download: bool, server: str, message: str) -> Check:
    """A missing input that the pipeline could fetch: found only if `switch` is on and `server` answers."""
    if not download:
        return Check(label, where, False, f"{message} (downloads are off: set {switch}=true to fetch it)")
    if not server:
        return Check(label, where, False, f"{message} (HF_HUB_OFFLINE is set: unset it to download)")
    reason = unreachable(server)
    if reason:
        return Check(label, where, False, f"{message} (cannot download: no answer from {server}: {reason})")
    return Check(label, f"{where}; downloads from {server}", True, "fetched on first use")


def check_datasets(profile: Profile) -> list[Check]:
    """Each dataset's folder and the files its loader needs, looked at, not read (`pcclip.dataset_layouts`):
    reading them would import torch and torchvision, seconds of a check that otherwise takes half of one."""
    if profile.source != "paper":
        return []
    try:
        root = data_root(profile)
    except FileNotFoundError as err:
        where = profile.data_root or os.environ.get(DATA_ENV) or f"${DATA_ENV} (unset)"
        return [Check(f"dataset {n}", where, False, str(err)) for n in profile.eval.datasets]
    out = []
    for name in profile.eval.datasets:
        label = f"dataset {name}"
        try:
            folder = require_layout(layout_of(name), Path(root))
        except (DatasetNotFound, ValueError) as err:
            message = str(err).replace("\n", " ")
            absent = name in LAYOUTS and not (Path(root) / LAYOUTS[name].folder).exists()
            if absent and LAYOUTS[name].server:
                out.append(_download_check(label, root, "data.download", profile.data.download, LAYOUTS[name].server,
                                           message))
            else:
                out.append(Check(label, root, False, message))
        else:
            out.append(Check(label, str(folder), True, "files in place (their contents are checked when loaded)"))
    return out


def check_coco(profile: Profile) -> list[Check]:
    """Paper difference data: COCO captions and images (looked at, not parsed: the file is ~90 MB)."""
    if profile.source != "paper":
        return []
    cfg = profile.synthesis
    try:
        root = Path(data_root(profile))
    except FileNotFoundError as err:
        return [Check("COCO captions", cfg.coco_annotations, False, str(err))]
    ann, images = root / cfg.coco_annotations, root / cfg.coco_images
    url = "https://cocodataset.org/#download"
    return [
        Check("COCO captions", str(ann), ann.is_file(),
              "" if ann.is_file() else f"download annotations_trainval2017.zip from {url} and unpack it so this "
                                       "file exists, or set synthesis.coco_annotations"),
        Check("COCO images", str(images), images.is_dir() and any(os.scandir(images)),
              "" if images.is_dir() and any(os.scandir(images)) else
              f"download train2017.zip from {url} and unpack it here, or set synthesis.coco_images"),
    ]


def check_llm(profile: Profile) -> list[Check]:
    """The difference writer's language model: served (openai) or loadable (hf); the template writer needs none."""
    cfg = profile.synthesis
    if cfg.writer == "hf":
        return [_check_hf_llm(cfg.llm)]
    if cfg.writer != "openai":
        return []
    label, url = f"LLM {cfg.llm}", f"{cfg.base_url.rstrip('/')}/models"
    if serves_own_llm(cfg):
        return [Check(label, cfg.base_url, True, "served by pcclip itself while notebook 01 synthesises")]
    start = (f"start an OpenAI-compatible server serving it (e.g. `vllm serve {cfg.llm} --port 8000`) or set "
             "synthesis.base_url")
    key = os.environ.get(cfg.api_key_env, "")
    try:
        status, body = get_json(url, TIMEOUT_S, {"Authorization": f"Bearer {key}"} if key else None)
    except OSError as err:
        return [Check(label, url, False, f"no answer ({getattr(err, 'reason', err)}): {start}")]
    if status in (401, 403):
        return [Check(label, url, False, f"the server refused the API key (HTTP {status}): set ${cfg.api_key_env}")]
    served = [str(m.get("id")) for m in body.get("data", [])] if isinstance(body, dict) else []
    if any(name.split("@")[0] == cfg.llm for name in served):  # `transformers serve` lists "<name>@<revision>"
        return [Check(label, url, True)]
    return [Check(label, url, False, f"HTTP {status}, the server lists {served}, not synthesis.llm={cfg.llm!r}: "
                                     f"{start}, or set synthesis.llm to one of those (servers that load models on "
                                     "demand, e.g. transformers serve or ollama, list only what they have loaded)")]


def _check_hf_llm(llm: str) -> Check:
    if os.path.isdir(llm):
        return Check(f"LLM {llm}", llm, True)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(llm, "config.json") if llm else None
    if isinstance(cached, str):
        return Check(f"LLM {llm}", str(Path(cached).parent), True)
    return Check(f"LLM {llm}", "Hugging Face cache ($HF_HOME)", False,
                 f"`huggingface-cli download {llm}` on a machine with internet (gated models need a token), copy "
                 "the cache here or set synthesis.llm to a local folder")


def check_device(profile: Profile) -> list[Check]:
    """A GPU when the profile asks for one, and bf16 support when it trains in bf16."""
    bf16 = [key for key, value in (("model.precision", profile.model.precision),
                                   ("finetune.precision", profile.finetune.precision)) if value == "bf16"]
    if profile.model.device == "cpu" and not bf16:
        return []
    version = _torch_version()
    where = f"torch {version.__version__}, CUDA {version.cuda}"
    none = [Check("GPU", where, False, "no CUDA device is visible: run on an NVIDIA GPU, or set model.device=cpu "
                                       "and model.precision=fp32 finetune.precision=fp32 (hours to days for a "
                                       "paper profile)")]
    if not _nvidia_driver():  # no driver, no CUDA device: answered without importing torch (seconds)
        return none
    import torch

    if not torch.cuda.is_available():
        return none
    out = [Check("GPU", f"{torch.cuda.get_device_name(0)} ({where})", True)]
    if bf16:
        ok = torch.cuda.is_bf16_supported()
        out.append(Check("bf16", torch.cuda.get_device_name(0), ok, "" if ok else f"set {'=fp32 '.join(bf16)}=fp32"))
    return out


def _nvidia_driver() -> bool:
    """Whether an NVIDIA driver is loaded (Linux: /proc/driver/nvidia; elsewhere assumed, torch decides)."""
    return not sys.platform.startswith("linux") or Path("/proc/driver/nvidia/version").exists()


def _torch_version() -> ModuleType:
    """torch.version (the torch and CUDA versions it was built for), read without importing torch."""
    if "torch" in sys.modules:
        return sys.modules["torch"].version
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("torch is not installed: pip install -e . (pyproject.toml pins it)")
    version = importlib.util.spec_from_file_location(
        "_pcclip_torch_version", Path(list(spec.submodule_search_locations)[0]) / "version.py")
    module = importlib.util.module_from_spec(version)
    version.loader.exec_module(module)
    return module


def _free_gb(folder: Path) -> float:
    """Free space on the disk that holds `folder` (or its nearest existing parent)."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    return shutil.disk_usage(existing).free / 1e9


def disk_need_gb(model_name: str, seeds: int = 1) -> float:
    """Free space a run of this architecture with `seeds` finetune seeds needs, from its text tower's parameter
    count (transformer blocks, token and position embeddings) read from the architecture's config."""
    cfg = clip_tables.model_config(model_name)
    text = (cfg or {}).get("text_cfg", {})
    if not {"width", "layers", "vocab_size", "context_length"} <= text.keys():  # unknown, or a Hugging Face tower
        return UNKNOWN_ARCHITECTURE_GB * seeds
    width = text["width"]
    params = 12 * text["layers"] * width**2 + (text["vocab_size"] + text["context_length"]) * width
    return max(1.0, float(round(TOWER_COPIES * seeds * params * 4 / 1e9)))


def check_disk(profile: Profile, need_gb: float | None = None) -> Check:
    """Free space where results/<profile>/ (checkpoints, caches, generated data) will be written."""
    need = disk_need_gb(profile.model.model_name, len(profile.finetune.seeds)) if need_gb is None else need_gb
    folder = run_paths(profile.name).root
    free = _free_gb(folder)
    return Check(f"disk >= {need:g} GB", f"{folder} ({free:.1f} GB free)", free >= need,
                 "" if free >= need else "free space there, or move results with $PCCLIP_RESULTS=/bigger/disk")


def preflight(profile: Profile) -> list[Check]:
    """Every check for this profile, in pipeline order."""
    written = [check_weights(profile), *check_datasets(profile), *check_coco(profile)]  # what pcclip.rehearsal writes
    return [*_rehearsal_fixes(profile, written), *check_llm(profile), *check_device(profile), check_disk(profile)]


def _rehearsal_fixes(profile: Profile, written: list[Check]) -> list[Check]:
    """Where pcclip writes the weights, datasets and COCO files itself (the rehearsal), a missing one (before
    the first run) says how to write it, not where to download it."""
    if not writes_own_inputs(profile):
        return written
    fix = (f"pcclip writes it on the rehearsal's first run (notebook 00), or now: python -m pcclip.rehearsal "
           f"{profile.data_root}")
    return [c if c.found else replace(c, fix=fix) for c in written]


def format_table(checks: list[Check]) -> str:
    """One row per input, columns aligned; the fix column is left unwrapped so it can be copied."""
    rows = [("input", "where it looked", "status", "how to fix")]
    rows += [(c.input, c.where, "found" if c.found else "MISSING", c.fix) for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    missing = sum(not c.found for c in checks)
    lines.insert(1, "-" * min(len(lines[0]) + 20, 160))
    lines.append(f"{missing} of {len(checks)} inputs missing" if missing else f"all {len(checks)} inputs found")
    return "\n".join(line.rstrip() for line in lines)


class MissingInputs(FileNotFoundError):
    """Some input of the profile is missing; the message lists each with its fix."""


def require_inputs(profile: Profile) -> list[Check]:
    """Print the table; raise MissingInputs naming every missing input (for a notebook's first cell)."""
    checks = preflight(profile)
    print(format_table(checks))
    missing = [c for c in checks if not c.found]
    if missing:
        lines = "\n".join(f"- {c.input}: {c.fix}" for c in missing)
        raise MissingInputs(f"profile {profile.name!r} is missing {len(missing)} input(s):\n{lines}")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcclip.preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="diffworld")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="profile override, e.g. data_root=/data (repeatable)")
    args = parser.parse_args(argv)
    checks = preflight(load_profile(args.profile, parse_overrides(args.set)))
    print(format_table(checks))
    return 0 if all(c.found for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
