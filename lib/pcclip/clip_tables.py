"""open_clip's tables (pretrained tags, architecture configs) and where a tag's weights live, read
without importing open_clip.

`import open_clip` imports torch, torchvision and transformers (seconds, more on a busy machine);
the preflight only needs to look up a tag and a cache path, so it reads the same tables here: the
`open_clip.pretrained` module loaded on its own (it imports only open_clip's constants and
version), and the architecture JSON files. Once open_clip is imported anyway, its own modules are used.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import sys
import types
from importlib import resources
from pathlib import Path
from types import ModuleType

CONFIG_DIR = resources.files("pcclip") / "data" / "model_configs"  # our small architectures
HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # what open_clip looks for in a repo
_ALONE = "_pcclip_open_clip_tables"  # package name under which open_clip's table modules load on their own


def _open_clip_folder() -> Path:
    spec = importlib.util.find_spec("open_clip")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("open_clip is not installed: pip install -e . (pyproject.toml pins open_clip_torch)")
    return Path(list(spec.submodule_search_locations)[0])


def _pretrained_module() -> ModuleType:
    """open_clip.pretrained once open_clip is imported (entries added at run time included), else
    the same file loaded on its own."""
    if "open_clip" in sys.modules:
        return importlib.import_module("open_clip.pretrained")
    return _pretrained_alone()


@functools.cache
def _pretrained_alone() -> ModuleType:
    """open_clip/pretrained.py loaded as `_ALONE.pretrained`. It probes `safetensors.torch` only to set
    a flag the lookups never read; that probe would import torch, so it is answered with ImportError
    while the module loads."""
    package = types.ModuleType(_ALONE)
    package.__path__ = [str(_open_clip_folder())]
    sys.modules[_ALONE] = package
    probe = "safetensors.torch"
    held = sys.modules.get(probe)
    sys.modules[probe] = None  # type: ignore[assignment]  # `import` raises ImportError for a None entry
    try:
        return importlib.import_module(f"{_ALONE}.pretrained")
    finally:
        if held is None:
            del sys.modules[probe]
        else:
            sys.modules[probe] = held


def pretrained_cfg(model_name: str, tag: str) -> dict:
    """open_clip's table entry for a tag, or a ValueError listing the tags it knows for this model."""
    table = _pretrained_module()
    cfg = table.get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = [t for m, t in table.list_pretrained() if m == model_name]
        raise ValueError(f"unknown pretrained tag {tag!r} for {model_name!r}; known tags: {tags}, "
                         "or pass a local checkpoint file path")
    return cfg


def model_config(model_name: str) -> dict | None:
    """The architecture's JSON config (open_clip's or ours), or None for an unknown name."""
    if "open_clip" in sys.modules:  # also knows configs added with open_clip.add_model_config
        return sys.modules["open_clip"].get_model_config(model_name)
    for folder in (_open_clip_folder() / "model_configs", Path(str(CONFIG_DIR))):
        path = folder / f"{model_name}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def activation_mismatch(model_name: str, tag: str) -> str | None:
    """Why (model_name, tag) would run weights with the wrong activation, or None when they match.

    open_clip's pretrained table marks tags trained with QuickGELU (`quick_gelu=True`, e.g. every
    OpenAI tag) and lists them under a `<model>-quickgelu` twin; building the plain model and loading
    such a tag only warns, and every number comes out silently off.
    """
    tag_quick = bool(pretrained_cfg(model_name, tag).get("quick_gelu", False))
    model_quick = bool((model_config(model_name) or {}).get("quick_gelu", False))
    if tag_quick == model_quick:
        return None
    fix = f"{model_name}-quickgelu" if tag_quick else model_name.removesuffix("-quickgelu")
    act = {True: "QuickGELU", False: "GELU"}
    return (f"pretrained tag {tag!r} was trained with {act[tag_quick]} but {model_name!r} uses "
            f"{act[model_quick]}: set model.model_name={fix}")


def hub_repo(cfg: dict) -> tuple[str, str]:
    """(repo id, file name or "") of a pretrained entry's `hf_hub` ("org/name/" or "org/name/file.bin")."""
    hub = cfg.get("hf_hub", "").strip("/")
    if hub.endswith((".bin", ".pt", ".pth", ".safetensors")):
        repo, _, name = hub.rpartition("/")
        return repo, name
    return hub, ""


def cached_weights(model_name: str, tag: str) -> str | None:
    """Path of the tag's weights in the local Hugging Face cache, or None (looks, never downloads)."""
    cfg = pretrained_cfg(model_name, tag)
    repo, name = hub_repo(cfg)
    if not repo:  # open_clip's own URL cache
        path = os.path.expanduser(os.path.join("~/.cache/clip", os.path.basename(cfg.get("url", ""))))
        return path if cfg.get("url") and os.path.isfile(path) else None
    from huggingface_hub import try_to_load_from_cache

    names = HUB_FILES if name in ("", HUB_FILES[1]) else (name,)  # open_clip prefers the .safetensors twin
    return next((p for n in names if isinstance(p := try_to_load_from_cache(repo, n), str)), None)


def missing_weights_message(model_name: str, tag: str) -> str:
    """What to fetch for (model_name, tag) and where to put it, for every way the weights can be absent."""
    cfg = pretrained_cfg(model_name, tag)
    repo, name = hub_repo(cfg)
    where = (f"the Hugging Face repo {repo} (file {name or ' or '.join(HUB_FILES)})" if repo
             else f"the URL {cfg.get('url', '?')}")
    return (f"weights for {model_name}/{tag} are not on this machine. Fetch {where}: on a machine with "
            f"internet set model.download=true (or run `python -c \"import open_clip; open_clip.create_model("
            f"'{model_name}', pretrained='{tag}')\"`), which fills the Hugging Face cache ($HF_HOME, default "
            "~/.cache/huggingface); copy that cache here, or save the file anywhere and pass "
            "model.pretrained=/path/to/file")
