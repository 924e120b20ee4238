"""Prompt data files, one loader each: zero-shot templates, class descriptions, class comparatives,
ranking phrasings.

Files live under pcclip/data/{zeroshot,comparatives,ranking}/<dataset>.json and name classes, never
class indices: every name is resolved against the dataset's own class list, and a name that
does not resolve fails loudly (the authors' code picked classes by index and got them wrong).
"""
from __future__ import annotations

from ..datasets.names import resolve_names
from ..resources import load_json
from .comparative import Comparative


def load_templates(dataset: str) -> list[str]:
    """Zero-shot templates of `dataset` (each with one '{}' for the class name)."""
    source = f"pcclip/data/zeroshot/{dataset}.json"
    templates = load_json(f"zeroshot/{dataset}.json").get("templates", [])
    bad = [t for t in templates if not isinstance(t, str) or t.count("{}") != 1]
    if not templates or bad:
        raise ValueError(f"{source}: 'templates' must be a non-empty list of strings with one '{{}}' each; bad: {bad}")
    return list(templates)


def parse_descriptions(raw: dict[str, str], classnames: list[str], source: str) -> dict[str, str]:
    """Class name -> description, every name resolved and every class covered."""
    rows = resolve_names(list(raw), classnames, f"{source} 'descriptions'")
    out = {classnames[row]: text for row, text in zip(rows, raw.values())}
    missing = [c for c in classnames if c not in out]
    if missing:
        raise ValueError(f"{source}: 'descriptions' has no entry for class(es) {missing}")
    return out


def load_descriptions(dataset: str, classnames: list[str]) -> dict[str, str]:
    """Descriptions of `dataset` for "This is a photo of a {label}. {description}"."""
    raw = load_json(f"zeroshot/{dataset}.json").get("descriptions", {})
    return parse_descriptions(raw, classnames, f"pcclip/data/zeroshot/{dataset}.json")


def parse_comparatives(raw: list[dict], classnames: list[str], source: str) -> list[Comparative]:
    """Entries {"first": class, "second": class, "text": ...} -> Comparatives of class indices;
    the text says how class `first` looks different from class `second`."""
    if not raw:
        raise ValueError(f"{source}: 'comparatives' is empty; list at least one {{first, second, text}} entry")
    for k, entry in enumerate(raw):
        if not (isinstance(entry, dict) and set(entry) == {"first", "second", "text"}
                and isinstance(entry["text"], str) and entry["text"].strip()):
            raise ValueError(f"{source}: entry {k} must be {{\"first\": class, \"second\": class, \"text\": "
                             f"non-empty string}}, got {entry!r}")
    rows = resolve_names([e[key] for e in raw for key in ("first", "second")], classnames, f"{source} 'comparatives'")
    out = []
    for k, (entry, first, second) in enumerate(zip(raw, rows[0::2], rows[1::2])):
        if first == second:
            raise ValueError(f"{source}: entry {k} compares class {entry['first']!r} with itself")
        out.append(Comparative(first, second, entry["text"]))
    return out


def load_comparatives(dataset: str, classnames: list[str]) -> list[Comparative]:
    """Comparatives of `dataset` (pcclip/data/comparatives/<dataset>.json), resolved against `classnames`."""
    raw = load_json(f"comparatives/{dataset}.json").get("comparatives", [])
    return parse_comparatives(raw, classnames, f"pcclip/data/comparatives/{dataset}.json")


def load_ranking_texts(dataset: str) -> dict[str, tuple[str, list[str], list[str]]]:
    """attribute -> (predicate, phrasings, their reversed twins) from pcclip/data/ranking/<dataset>.json:
    the column of the dataset's attribute matrix that orders its classes, and the sentences whose
    mean minus the twins' mean is the attribute's text direction."""
    source = f"pcclip/data/ranking/{dataset}.json"
    attributes = load_json(f"ranking/{dataset}.json").get("attributes", {})
    if not attributes:
        raise ValueError(f"{source}: 'attributes' is empty; give at least one {{predicate, phrasings}} entry")
    out = {}
    for name, entry in attributes.items():
        pairs = entry.get("phrasings", []) if isinstance(entry, dict) else []
        good = bool(pairs) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(t, str) and t.strip()
                                                                               for t in p) and p[0] != p[1]
                                   for p in pairs)
        if not (good and isinstance(entry.get("predicate"), str)):
            raise ValueError(f"{source}: attribute {name!r} needs a 'predicate' name and 'phrasings', a non-empty "
                             "list of [sentence, reversed sentence] pairs of two different strings")
        out[name] = (entry["predicate"], [p[0] for p in pairs], [p[1] for p in pairs])
    return out
