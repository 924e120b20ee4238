"""Access to the data files shipped inside the package (templates, vocabularies, prompts)."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any


def read_text(name: str) -> str:
    """Text of package data file `name` (under pcclip/data/)."""
    path = resources.files("pcclip") / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"pcclip data file {name!r} is missing from {path}; reinstall the package")
    return path.read_text(encoding="utf-8")


def load_json(name: str) -> Any:
    return json.loads(read_text(name))
