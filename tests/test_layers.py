"""Imports point down: every module of lib/pcclip belongs to a layer and imports only from its own layer or
lower ones (function-level imports included), and no two modules import each other, even in a loop.

The layers and the one concept each module owns are described in docs/architecture.md.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

# Lowest first. A module belongs to the layer of its longest listed prefix ("pcclip" itself: the package root
# only).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("pcclip", "pcclip.atomic", "pcclip.paths", "pcclip.resources", "pcclip.profiles", "pcclip.fingerprint",
              "pcclip.precision", "pcclip.embeddings", "pcclip.results", "pcclip.locking", "pcclip.redact",
              "pcclip.profile_checks", "pcclip.network", "pcclip.intervals", "pcclip.committed")),
    ("data", ("pcclip.world", "pcclip.datasets", "pcclip.dataset_layouts")),
    ("models", ("pcclip.models", "pcclip.clip_tables", "pcclip.text_tower", "pcclip.averaging", "pcclip.cache",
                "pcclip.export", "pcclip.external")),
    ("training", ("pcclip.training", "pcclip.checkpoints", "pcclip.losses", "pcclip.pretrain", "pcclip.finetune",
                  "pcclip.traindata", "pcclip.basemodel", "pcclip.embedding_rows")),
    ("synthesis", ("pcclip.synthesis",)),
    ("evaluation", ("pcclip.evaluation", "pcclip.edit_sets", "pcclip.geometry", "pcclip.retrieval",
                    "pcclip.pair_geometry", "pcclip.geometry_tables")),
    ("notebooks", ("pcclip.runs", "pcclip.loading", "pcclip.distributed", "pcclip.notebook", "pcclip.report",
                   "pcclip.readme_numbers", "pcclip.levers",
                   "pcclip.pipeline", "pcclip.plots", "pcclip.preflight", "pcclip.rehearsal", "pcclip.base_overview",
                   "pcclip.evaluate")),
)

def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((LIB / "pcclip").rglob("*.py")):
        parts = path.relative_to(LIB).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every pcclip module `name` imports, anywhere in the file (functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            subs = {f"{target}.{alias.name}" for alias in node.names} & set(MODULES)
            found |= subs or {target}
    return {m for m in found if m.split(".")[0] == "pcclip"}


def layer_of(module: str) -> int:
    best, rank = "", None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "pcclip" and module.startswith(prefix + "."))
            if inside and len(prefix) > len(best):
                best, rank = prefix, i
    if rank is None:
        raise KeyError(module)
    return rank


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    missing = []
    for module in MODULES:
        try:
            layer_of(module)
        except KeyError:
            missing.append(module)
    assert not missing, f"declare the layer of {missing} in tests/test_layers.py and docs/architecture.md"


def test_imports_point_down():
    upward = [f"{src} ({LAYERS[layer_of(src)][0]}) imports {dst} ({LAYERS[layer_of(dst)][0]})"
              for src, targets in GRAPH.items() for dst in sorted(targets) if layer_of(dst) > layer_of(src)]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_loops():
    edges = {src: {dst for dst in targets if dst != src}
             for src, targets in GRAPH.items()}
    # a package's __init__ re-exporting its submodules is not a loop
    edges = {src: {dst for dst in targets if not src.startswith(dst + ".")} for src, targets in edges.items()}
    loops = []
    for start in edges:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    loops.append(" -> ".join(trail + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
    assert not loops, "import loops:\n" + "\n".join(sorted(set(loops)))


def test_the_architecture_doc_names_every_module():
    text = ARCHITECTURE.read_text()
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.count("|") >= 4}
    missing = []
    for module in MODULES:
        parts = module.split(".")[1:]
        if parts and f"`{parts[0]}`" not in rows and not (f"`{parts[0]}/`" in rows and (
                len(parts) == 1 or f"`{parts[-1]}`" in rows[f"`{parts[0]}/`"])):
            missing.append(module)
    assert not missing, f"docs/architecture.md does not describe {missing}"


@pytest.mark.parametrize("src, dst", [("pcclip.world.dataset", "pcclip.models"),
                                      ("pcclip.datasets.pairs", "pcclip.evaluation.difference"),
                                      ("pcclip.synthesis.cub", "pcclip.evaluation.difference"),
                                      ("pcclip.finetune", "pcclip.runs")])
def test_the_check_sees_an_upward_import(src, dst):
    assert layer_of(dst) > layer_of(src)
