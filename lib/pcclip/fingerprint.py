"""One content fingerprint for everything pcclip identifies by what it holds: settings, data, weights.

Checkpoint, cache and state file names, recipe checks and the integrity check on load all use
`fingerprint`, so one object always gets one name. The walk is canonical: dict keys are sorted,
tuples hash as lists (a recipe read back from JSON matches the one it was written from), tensors and
arrays hash their dtype, shape and raw bytes (no copy to Python objects, so weights hash at
sha256 speed).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

DIGITS = 16  # hex digits kept: 64 bits, no collision among the few thousand objects a project names


def fingerprint(obj: Any) -> str:
    """sha256 of `obj` (JSON values, tensors, arrays and nestings of them), as DIGITS hex digits."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()[:DIGITS]


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"tensor:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("fingerprint: arrays of Python objects have no stable bytes; pass a list instead")
        a = np.ascontiguousarray(obj)
        h.update(f"array:{a.dtype.str}:{a.shape}:".encode())
        h.update(a.reshape(-1).view(np.uint8))
    elif isinstance(obj, dict):
        h.update(b"{")
        for key in sorted(obj, key=lambda k: (type(k).__name__, str(k))):
            _feed(h, key)
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _feed(h, item)
        h.update(b"]")
    elif isinstance(obj, bytes):
        h.update(f"bytes:{len(obj)}:".encode() + obj)
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif isinstance(obj, Path):
        _feed(h, str(obj))
    elif obj is None or isinstance(obj, (str, int, float, bool)):
        h.update(json.dumps(obj).encode() + b";")
    else:
        raise TypeError(f"fingerprint: cannot hash a {type(obj).__name__}; pass JSON values, tensors or arrays")


def transform_key(transform: Any) -> str:
    """Names an image transform by its repr (a Compose names every step and its sizes), without memory
    addresses, so a cache keyed on it survives a restart."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transform))
