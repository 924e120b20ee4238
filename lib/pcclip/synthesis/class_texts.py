"""Class comparatives and extended class descriptions written by the profile's LLM, cached as data files.

The authors had ChatGPT write 3 comparatives per dataset (a separate set for the base and for the
finetuned model) and one description per class for 5 datasets. pcclip ships hand-written ones
(pcclip/data/comparatives, data/zeroshot); with eval.comparatives / eval.descriptions = "llm" it asks
`synthesis.writer` (synthesis.llm at synthesis.base_url) with data/prompts/comparatives_v1.txt and
descriptions_v1.txt instead. Replies are parsed, checked against the dataset's class list and written
under results/<profile>/data/class_texts/ in the shipped files' format, with the settings that wrote
them ("generated_by"). A file whose settings still hold is read back without asking the LLM again, so a
file fixed by hand (keeping its "generated_by") is used as it is.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ..atomic import write_json
from ..datasets.names import resolve_names
from ..paths import RunPaths
from ..profiles import SynthesisConfig
from .registry import make_writer
from .writer import BatchInterrupted, TextRequest, WriterUnavailable

COMPARATIVES_PROMPT, DESCRIPTIONS_PROMPT = "comparatives_v1", "descriptions_v1"
COMPARATIVES_PER_DATASET = 3  # the authors' number
# Datasets the authors wrote extended descriptions for (eval.descriptions="llm" writes them for these).
DESCRIBED_DATASETS = ("cifar100", "cub200", "eurosat", "flowers102", "sun397")
TEXT_TOKENS = 512  # a JSON list of comparatives is longer than a difference description (synthesis.max_new_tokens)
MAX_DESCRIPTION_WORDS = 60  # longer is a paragraph, not a description: CLIP reads 77 tokens of the whole prompt


def comparatives_path(paths: RunPaths, dataset: str, model: str = "") -> Path:
    """results/<profile>/data/class_texts/comparatives/<dataset>[.<model>].json (a model's own set when named)."""
    return paths.data / "class_texts" / "comparatives" / (f"{dataset}.{model}.json" if model else f"{dataset}.json")


def descriptions_path(paths: RunPaths, dataset: str) -> Path:
    return paths.data / "class_texts" / "descriptions" / f"{dataset}.json"


def _seed(cfg: SynthesisConfig, *names: str) -> tuple[int, ...]:
    """A request's seed: synthesis.seed and stable hashes of what it is for (dataset, model, class)."""
    return (cfg.seed, *(zlib.crc32(n.encode()) for n in names))


def _settings(cfg: SynthesisConfig, prompt: str, seed: tuple[int, ...]) -> dict[str, Any]:
    return {"writer": cfg.writer, "llm": cfg.llm, "prompt": prompt, "temperature": cfg.temperature,
            "top_p": cfg.top_p, "seed": list(seed)}


def _cached(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The file's content when it was written with `settings`; None when absent or written otherwise."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if data.get("generated_by") == settings else None


def ask(cfg: SynthesisConfig, prompt: str, slots: tuple[str, ...], requests: Sequence[TextRequest],
        what: str) -> list[str]:
    """The writer's reply to every request, in order, in batches of synthesis.batch_size; any reply
    missing after the writer's retries stops the run (`what` names the texts in the message)."""
    if cfg.writer == "template":
        raise ValueError(f"{what} need an LLM: set synthesis.writer to 'openai' or 'hf' with synthesis.llm "
                         "(README 'Paper profile: difference data'), or use the hand-written texts")
    writer = make_writer(replace(cfg, max_new_tokens=max(cfg.max_new_tokens, TEXT_TOKENS)), prompt, slots)
    texts = []
    for start in range(0, len(requests), cfg.batch_size):
        chunk = requests[start:start + cfg.batch_size]
        try:
            gens = writer.write(chunk)
        except BatchInterrupted as stop:
            raise stop.cause from None
        failed = [(r.request_id, g.error) for r, g in zip(chunk, gens) if g.error]
        if failed:
            raise WriterUnavailable(f"{what}: writer {writer.name!r} ({writer.model!r}) gave no text for "
                                    f"{len(failed)} request(s), e.g. {failed[0]}; check the server and rerun "
                                    "(nothing was cached)")
        texts += [g.text for g in gens]
    return texts


def _fix(path: Path, shipped: str, switch: str) -> str:
    return (f"rerun with another synthesis.seed or synthesis.llm, write {path} by hand in the format of "
            f"pcclip/data/{shipped} (keeping its 'generated_by'), or set {switch}='handwritten'")


def parse_comparatives_reply(reply: str, classnames: Sequence[str], count: int, source: str) -> list[dict[str, str]]:
    """The first `count` {first, second, text} entries of a reply holding {"comparatives": [...]}, class names
    resolved to `classnames`; ValueError naming `source` and the reply when it is not that."""
    start, end = reply.find("{"), reply.rfind("}")
    try:
        entries = json.loads(reply[start:end + 1])["comparatives"] if start >= 0 else None
    except (json.JSONDecodeError, KeyError, TypeError):
        entries = None
    good = isinstance(entries, list) and all(
        isinstance(e, dict) and all(isinstance(e.get(k), str) and e[k].strip() for k in ("first", "second", "text"))
        for e in entries)
    if not good or len(entries) < count:
        raise ValueError(f"{source}: expected JSON {{\"comparatives\": [{{\"first\", \"second\", \"text\"}}, ...]}} "
                         f"with at least {count} entries of non-empty strings; the reply was {reply[:300]!r}")
    entries = entries[:count]
    rows = resolve_names([e[k] for e in entries for k in ("first", "second")], classnames, f"{source}, class names")
    out = []
    for entry, first, second in zip(entries, rows[0::2], rows[1::2]):
        if first == second:
            raise ValueError(f"{source}: a comparative compares {entry['first']!r} with itself: {entry['text']!r}")
        out.append({"first": classnames[first], "second": classnames[second], "text": entry["text"].strip()})
    return out


def llm_comparatives(cfg: SynthesisConfig, paths: RunPaths, dataset: str, classnames: Sequence[str],
                     model: str = "", count: int = COMPARATIVES_PER_DATASET) -> list[dict[str, str]]:
    """`count` comparatives of `dataset` ({first, second, text} entries as in pcclip/data/comparatives) from the
    writer, cached at `comparatives_path`; `model` names a model's own set (its own file and seed)."""
    path = comparatives_path(paths, dataset, model)
    seed = _seed(cfg, dataset, model)
    settings = {**_settings(cfg, COMPARATIVES_PROMPT, seed), "count": count}
    if (cached := _cached(path, settings)) is not None:
        return cached["comparatives"]
    request = TextRequest(f"{dataset}:{model or 'all'}", (("dataset", dataset), ("count", str(count)),
                                                          ("classes", "\n".join(f"- {c}" for c in classnames))), seed)
    what = f"LLM comparatives of {dataset}" + (f" for model {model!r}" if model else "")
    (reply,) = ask(cfg, COMPARATIVES_PROMPT, ("dataset", "count", "classes"), [request], what)
    try:
        entries = parse_comparatives_reply(reply, classnames, count, what)
    except ValueError as err:
        raise ValueError(f"{err}. Fix: {_fix(path, 'comparatives/<dataset>.json', 'eval.comparatives')}") from None
    write_json(path, {"dataset": dataset, "model": model, "generated_by": settings, "comparatives": entries})
    return entries


def check_description(reply: str, label: str, source: str) -> str:
    """A reply usable as "This is a photo of a {label}. {description}": one non-empty short text."""
    text = reply.strip()
    if not text or len(text.split()) > MAX_DESCRIPTION_WORDS:
        raise ValueError(f"{source}: the description of {label!r} must be 1 to {MAX_DESCRIPTION_WORDS} words, "
                         f"got {len(text.split())}: {text[:200]!r}")
    return text if text[-1] in ".!?" else text + "."


def llm_descriptions(cfg: SynthesisConfig, paths: RunPaths, dataset: str, classnames: Sequence[str]) -> dict[str, str]:
    """Class name -> one-sentence description of `dataset` from the writer (one request per class), cached at
    `descriptions_path`."""
    path = descriptions_path(paths, dataset)
    seed = _seed(cfg, dataset)
    settings = _settings(cfg, DESCRIPTIONS_PROMPT, seed)
    if (cached := _cached(path, settings)) is not None:
        return cached["descriptions"]
    requests = [TextRequest(f"{dataset}:{c}", (("dataset", dataset), ("label", c)), (*seed, k))
                for k, c in enumerate(classnames)]
    what = f"LLM descriptions of {dataset}"
    replies = ask(cfg, DESCRIPTIONS_PROMPT, ("dataset", "label"), requests, what)
    try:
        out = {c: check_description(r, c, what) for c, r in zip(classnames, replies)}
    except ValueError as err:
        raise ValueError(f"{err}. Fix: {_fix(path, 'zeroshot/<dataset>.json', 'eval.descriptions')}") from None
    write_json(path, {"dataset": dataset, "generated_by": settings, "descriptions": out})
    return out
