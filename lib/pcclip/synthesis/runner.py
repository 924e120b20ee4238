"""Synthesise a profile's difference data: plan pairs, write, filter, store; resumable.

The plan is a pure function of the profile, so a rerun after a crash or Ctrl-C sees
the same pair ids, skips those already on disk and writes the rest; pairs are written
in plan order, so a resumed run produces the same file as an uninterrupted one.
"""
from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..paths import RunPaths
from ..profiles import Profile, SynthesisConfig
from .filtering import WRITER_ERROR, DescriptionFilter, load_rules
from .pairs import PairPlan, contrast_attribute, sample_pairs
from .report import mentioned_attributes
from .sources import ImageSource, image_source
from .store import DifferenceStore
from .writer import Generation, PairInput, Writer, WriterUnavailable, make_writer

# Settings that change how fast, not what, a run writes: they may differ between a run and its resume.
EXECUTION_FIELDS = ("batch_size", "concurrency", "timeout_s", "retries", "backoff_s", "base_url", "api_key_env",
                    "llm_device")


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
            "phrasings": list(gen.phrasings), "writer": writer.name, "model": writer.model,
            "prompt_version": writer.prompt_version}


def _write_all(store: DifferenceStore, todo: list[int], plan: PairPlan, source: ImageSource, cfg: SynthesisConfig,
               progress: bool) -> int:
    """Write every pending pair; returns how many were deferred (transient writer failures)."""
    writer = make_writer(cfg)
    keep = DescriptionFilter(load_rules(), cfg.max_copies, store.accepted_texts)
    deferred = 0
    quiet = not progress or bool(os.environ.get("TQDM_DISABLE"))  # tqdm reads it only at import time
    with tqdm(total=len(plan), initial=len(plan) - len(todo), disable=quiet, desc="synthesis") as bar:
        for start in range(0, len(todo), cfg.batch_size):
            chunk = todo[start:start + cfg.batch_size]
            inputs = [pair_input(plan, k, source, cfg) for k in chunk]
            gens = writer.write(inputs)
            if all(g.deferred for g in gens):
                raise WriterUnavailable(f"writer {writer.name!r} failed on every pair of a batch ({gens[0].error}); "
                                        f"the {len(store.finished)} finished pairs are safe in {store.path}: "
                                        "fix the backend and rerun to continue")
            for k, pair, gen in zip(chunk, inputs, gens):
                if gen.deferred:
                    deferred += 1
                    continue
                reason = WRITER_ERROR if gen.error else keep(gen.text)
                store.append(_record(pair, k, plan, source, gen, reason, writer))
            bar.update(len(chunk))
    return deferred


def check_settings(cfg: SynthesisConfig, source: ImageSource) -> None:
    """Fail before any pair is planned or written when the settings cannot work for `source`."""
    if cfg.batch_size < 1:
        raise ValueError(f"synthesis.batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.writer == "template" and source.records is None:
        raise ValueError(f"the template writer only reads DiffWorld captions, not {source.key!r}: "
                         "set synthesis.writer to 'hf' or 'openai'")


def write_store(path: Path, meta: dict[str, Any], plan: PairPlan, source: ImageSource, cfg: SynthesisConfig,
                progress: bool) -> Path:
    """Write (or resume) the pairs of `plan` into the JSONL store at `path`; returns `path`."""
    with DifferenceStore(path, meta) as store:
        todo = [k for k in range(len(plan)) if plan.ids[k] not in store.finished]
        deferred = _write_all(store, todo, plan, source, cfg, progress) if todo else 0
    if deferred:
        print(f"synthesis: {deferred} pairs hit transient writer errors and were not written; rerun to retry them",
              file=sys.stderr)
    return path


def content_fields(cfg: SynthesisConfig) -> dict[str, Any]:
    """The settings that decide what a run writes (a change starts a new file)."""
    return {k: v for k, v in asdict(cfg).items() if k not in EXECUTION_FIELDS}


def synthesize(profile: Profile, paths: RunPaths, progress: bool = True) -> Path:
    """Write (or resume) paths.data/differences.jsonl for the profile and return its path."""
    cfg = profile.synthesis
    source = image_source(profile)
    check_settings(cfg, source)
    plan = plan_pairs(cfg, source)
    return write_store(differences_path(paths), {"source": source.key, "synthesis": content_fields(cfg)}, plan,
                       source, cfg, progress)
