"""Synthesise a profile's difference data: plan pairs, write, filter, store; resumable.

The plan is a pure function of the profile, so a rerun after a crash or Ctrl-C sees
the same pair ids, skips those already on disk and writes the rest; pairs are written
in plan order, so a resumed run produces the same file as an uninterrupted one. Pairs a
writer defers (transient failures) stay unwritten for the next run to retry; a run that ends
with some raises SynthesisIncomplete, so its notebook fails, unless `synthesis.allow_partial`.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..paths import RunPaths
from ..profiles import Profile, SynthesisConfig
from .batches import write_batch
from .filtering import WRITER_ERROR, DescriptionFilter, load_rules
from .pairs import PairPlan, contrast_attribute, sample_pairs
from .report import mentioned_attributes
from .sources import ImageSource, image_source
from .store import DifferenceStore
from .template import GRAMMAR_SWITCHES
from .registry import make_writer
from .rewriting import rewrite_captions, rewritten_path
from .writer import Generation, PairInput, Writer

# Settings that change how fast, not what, a run writes: they may differ between a run and its resume.
EXECUTION_FIELDS = ("batch_size", "concurrency", "timeout_s", "retries", "backoff_s", "base_url", "api_key_env",
                    "llm_device", "allow_partial")
# Settings newer than stores already on disk: recorded only when they differ from their default, so a store written
# before they existed (an LLM's, perhaps GPU hours) still matches and is resumed instead of set aside.
ADDED_LATER = ("subject_first", "broad_frames", "order_frames")


class SynthesisIncomplete(RuntimeError):
    """Pairs were deferred after transient writer errors: a rerun retries them (or set synthesis.allow_partial)."""


def differences_path(paths: RunPaths) -> Path:
    return paths.data / "differences.jsonl"


def plan_pairs(cfg: SynthesisConfig, source: ImageSource) -> PairPlan:
    return sample_pairs(len(source), cfg.n_pairs, cfg.seed, cfg.n_images, source.records, cfg.contrast_fraction,
                        cfg.contrast_gap, source.image_ids)


def pair_input(plan: PairPlan, k: int, source: ImageSource, cfg: SynthesisConfig) -> PairInput:
    i, j = int(plan.idx1[k]), int(plan.idx2[k])
    oracle = cfg.writer == "template" and cfg.mode == "oracle"
    return PairInput(pair_id=plan.ids[k], idx1=i, idx2=j, captions1=source.captions[i], captions2=source.captions[j],
                     seed=(cfg.seed, i, j), focus=contrast_attribute(plan.kind[k]),
                     truth1=source.truth(i) if oracle else None, truth2=source.truth(j) if oracle else None)


def _record(pair: PairInput, k: int, plan: PairPlan, source: ImageSource, gen: Generation, reason: str,
            writer: Writer) -> dict[str, Any]:
    attributes = gen.attributes if gen.attributes is not None else mentioned_attributes(gen.text)
    return {"pair_id": pair.pair_id, "index": k, "kind": plan.kind[k], "idx1": pair.idx1, "idx2": pair.idx2,
            "image_id1": int(source.image_ids[pair.idx1]), "image_id2": int(source.image_ids[pair.idx2]),
            "captions1": list(pair.captions1), "captions2": list(pair.captions2), "text": gen.text,
            "accepted": not reason, "reason": reason, "error": gen.error, "attributes": list(attributes),
            "phrasings": list(gen.phrasings), "words": list(gen.words),
            "negatives": list(gen.negatives), "writer": writer.name, "model": writer.model,
            "prompt_version": writer.prompt_version}


def _error_kind(error: str) -> str:
    """'HTTP 503: busy (after 3 attempts)' -> 'HTTP 503': what to count deferred pairs by."""
    return error.split(" (after")[0].split(":")[0]


class _BatchWriter:
    """Writes batches of pairs into the store (`batches.write_batch`), counting the deferred ones."""

    def __init__(self, store: DifferenceStore, plan: PairPlan, source: ImageSource, cfg: SynthesisConfig) -> None:
        self.store, self.plan, self.source, self.cfg = store, plan, source, cfg
        self.writer = make_writer(cfg)
        self.keep = DescriptionFilter(load_rules(), cfg.max_copies, store.accepted_texts)
        self.deferred: Counter[str] = Counter()  # by kind of error

    def __call__(self, chunk: list[int]) -> None:
        inputs = [pair_input(self.plan, k, self.source, self.cfg) for k in chunk]

        def keep(i: int, gen: Generation) -> None:
            reason = WRITER_ERROR if gen.error else self.keep(gen.text)
            self.store.append(_record(inputs[i], chunk[i], self.plan, self.source, gen, reason, self.writer))

        for gen in write_batch(self.writer, inputs, self.store, keep):
            if gen.deferred:
                self.deferred[_error_kind(gen.error)] += 1


def _write_all(store: DifferenceStore, todo: list[int], plan: PairPlan, source: ImageSource, cfg: SynthesisConfig,
               progress: bool) -> Counter[str]:
    """Write every pending pair; returns the deferred ones counted by kind of error."""
    write = _BatchWriter(store, plan, source, cfg)
    quiet = not progress or bool(os.environ.get("TQDM_DISABLE"))  # tqdm reads it only at import time
    with tqdm(total=len(plan), initial=len(plan) - len(todo), disable=quiet, desc="synthesis") as bar:
        for start in range(0, len(todo), cfg.batch_size):
            chunk = todo[start:start + cfg.batch_size]
            write(chunk)
            bar.update(len(chunk))
    return write.deferred


def check_settings(cfg: SynthesisConfig, source: ImageSource) -> None:
    """Fail before any pair is planned or written when the settings cannot work for `source`."""
    if cfg.batch_size < 1:
        raise ValueError(f"synthesis.batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.writer == "template" and source.records is None:
        raise ValueError(f"the template writer only reads DiffWorld captions, not {source.key!r}: "
                         "set synthesis.writer to 'hf' or 'openai'")
    for switch in GRAMMAR_SWITCHES.values():
        if getattr(cfg, switch) and cfg.writer != "template":
            raise ValueError(f"synthesis.{switch} draws the template writer's grammar, but synthesis.writer is "
                             f"{cfg.writer!r}: set synthesis.{switch} to false, or synthesis.writer to 'template'")


def write_store(path: Path, meta: dict[str, Any], plan: PairPlan, source: ImageSource, cfg: SynthesisConfig,
                progress: bool) -> Path:
    """Write (or resume) the pairs of `plan` into the JSONL store at `path`; returns `path`.

    Raises SynthesisIncomplete when pairs are still missing at the end, unless cfg.allow_partial."""
    with DifferenceStore(path, meta) as store:
        todo = [k for k in range(len(plan)) if plan.ids[k] not in store.finished]
        kinds = _write_all(store, todo, plan, source, cfg, progress) if todo else Counter()
        missing = sum(pid not in store.finished for pid in plan.ids)
    if missing:
        why = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) or "not written"
        _incomplete(cfg, f"{missing} of {len(plan)} pairs were deferred after transient writer errors ({why}); the "
                         f"other {len(plan) - missing} are stored in {path}")
    return path


def _incomplete(cfg: SynthesisConfig, message: str) -> None:
    """Raise SynthesisIncomplete with `message`, or only warn under synthesis.allow_partial."""
    message += ". Rerun to retry only the missing ones"
    if not cfg.allow_partial:
        raise SynthesisIncomplete(f"{message}, or set synthesis.allow_partial=true to go on without them")
    print(f"synthesis: {message} (synthesis.allow_partial=true: going on without them)", file=sys.stderr)


def content_fields(cfg: SynthesisConfig) -> dict[str, Any]:
    """The settings that decide what a run writes (a change starts a new file)."""
    default = SynthesisConfig()
    return {k: v for k, v in asdict(cfg).items()
            if k not in EXECUTION_FIELDS and not (k in ADDED_LATER and v == getattr(default, k))}


def synthesize(profile: Profile, paths: RunPaths, progress: bool = True) -> Path:
    """Write (or resume) paths.data/differences.jsonl for the profile and return its path; with
    finetune.rewritten_captions, also the rewritten captions of the pairs' images (`rewriting`)."""
    cfg = profile.synthesis
    source = image_source(profile)
    check_settings(cfg, source)
    plan = plan_pairs(cfg, source)
    meta = {"source": source.key, "synthesis": content_fields(cfg)}
    path = write_store(differences_path(paths), meta, plan, source, cfg, progress)
    if profile.finetune.rewritten_captions:
        store = rewritten_path(paths)
        if missing := rewrite_captions(cfg, store, meta, plan, source):
            _incomplete(cfg, f"{missing} captions of {store} were deferred after transient writer errors")
    return path
