"""Allowed ranges and relations of every numeric profile setting, and the values of each switch, checked
by `load_profile`.

A bad value fails before any notebook runs, naming the key, the value and what is allowed,
instead of training 0 steps or dividing by zero deep inside a notebook. Each rule is one row of
a table; `test_profiles` checks that every numeric field has one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Range:
    """low <= value <= high (strict where *_open); None is unbounded. NaN and inf never pass."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(p for p in (lo, hi) if p) or "finite"


COUNT = Range(1)  # sizes, batch sizes, intervals
NON_NEGATIVE = Range(0)  # seeds, warmups, 0-means-off settings
POSITIVE = Range(0, low_open=True)  # learning rates, temperatures, timeouts
FRACTION = Range(0, 1)

RULES: dict[str, Range] = {
    "seed": NON_NEGATIVE,
    "world.seed": NON_NEGATIVE, "world.image_size": Range(8), "world.n_train": COUNT, "world.n_val": COUNT,
    "world.n_test": COUNT, "world.n_holdout": COUNT,
    "pretrain.steps": COUNT, "pretrain.batch_size": Range(2), "pretrain.lr": POSITIVE,
    "pretrain.weight_decay": NON_NEGATIVE, "pretrain.warmup": NON_NEGATIVE, "pretrain.seed": NON_NEGATIVE,
    "pretrain.log_every": COUNT, "pretrain.relational_captions": FRACTION,
    "cache.batch_size": COUNT, "cache.shard_size": COUNT, "cache.num_workers": NON_NEGATIVE,
    "synthesis.n_pairs": COUNT, "synthesis.seed": NON_NEGATIVE, "synthesis.n_images": NON_NEGATIVE,
    "synthesis.contrast_fraction": FRACTION, "synthesis.contrast_gap": Range(0, 1, low_open=True),
    "synthesis.subject_first": FRACTION,
    "synthesis.captions_per_image": COUNT, "synthesis.max_facts": COUNT, "synthesis.max_words": COUNT,
    "synthesis.oracle_gap": FRACTION, "synthesis.max_copies": NON_NEGATIVE, "synthesis.batch_size": COUNT,
    "synthesis.max_new_tokens": COUNT, "synthesis.temperature": NON_NEGATIVE,
    "synthesis.top_p": Range(0, 1, low_open=True), "synthesis.concurrency": COUNT, "synthesis.timeout_s": POSITIVE,
    "synthesis.retries": NON_NEGATIVE, "synthesis.backoff_s": NON_NEGATIVE,
    "finetune.temperature": POSITIVE, "finetune.caption_weight": NON_NEGATIVE,
    "finetune.relational_captions": FRACTION,
    "finetune.caption_temperature": POSITIVE, "finetune.caption_term_batch": NON_NEGATIVE, "finetune.lr": POSITIVE,
    "finetune.weight_decay": NON_NEGATIVE,
    "finetune.gamma": Range(0, 1, low_open=True), "finetune.warmup": NON_NEGATIVE, "finetune.steps": NON_NEGATIVE,
    "finetune.epochs": NON_NEGATIVE, "finetune.batch_size": Range(2), "finetune.accum_steps": COUNT,
    "finetune.length_buckets": COUNT, "finetune.grad_clip": NON_NEGATIVE, "finetune.seed": NON_NEGATIVE,
    "finetune.log_every": COUNT, "finetune.save_every": COUNT, "finetune.caption_lr": POSITIVE,
    "finetune.caption_steps": NON_NEGATIVE, "finetune.caption_epochs": NON_NEGATIVE,
    "finetune.caption_batch_size": Range(2), "finetune.wa_alpha": FRACTION, "finetune.wa_points": Range(2),
    "finetune.rewritten_lr": POSITIVE, "finetune.rewritten_steps": NON_NEGATIVE, "finetune.rewritten_epochs": NON_NEGATIVE,
    "finetune.negatives_per_text": COUNT,
    "eval.n_images": COUNT, "eval.seeds": COUNT, "eval.phrasings": COUNT, "eval.direction_texts": COUNT,
    "eval.alpha": FRACTION, "eval.alpha_steps": Range(2), "eval.val_images": NON_NEGATIVE, "eval.se_ddof": Range(0, 1),
    "eval.awa2_max_attributes": NON_NEGATIVE, "eval.split_seed": NON_NEGATIVE,
    "geometry.n_objects": COUNT, "geometry.delta": Range(0, 1, low_open=True), "geometry.base_spread": Range(0, 0.5),
    "geometry.lambda_max": POSITIVE, "geometry.lambda_steps": Range(2), "geometry.umap_neighbors": Range(2),
    "geometry.seed": NON_NEGATIVE,
}

# Settings that name one of a few behaviours; a misspelt one would otherwise fall through to a default.
CHOICES: dict[str, tuple[str, ...]] = {
    "model.precision": ("fp32", "bf16"), "finetune.precision": ("fp32", "bf16"),
    "eval.pairs": ("ordered", "unordered"), "eval.awa2_predicates": ("ours", "authors"),
    "eval.split_scheme": ("ours", "paper_random10"),
    "eval.comparatives": ("handwritten", "llm"), "eval.descriptions": ("handwritten", "llm"),
}


def _divides(total: str, part: str) -> tuple[tuple[str, ...], Callable[[Callable], bool], str]:
    return ((total, part), lambda get: get(total) % get(part) == 0,
            f"{total} must be a multiple of {part} (each step splits the batch into {part} micro-batches)")


def _steps_or_epochs(steps: str, epochs: str) -> tuple[tuple[str, ...], Callable[[Callable], bool], str]:
    return ((steps, epochs), lambda get: get(steps) > 0 or get(epochs) > 0,
            f"{steps}=0 means 'train {epochs} passes', so {epochs} must then be > 0")


RELATIONS = [
    _steps_or_epochs("finetune.steps", "finetune.epochs"),
    _steps_or_epochs("finetune.caption_steps", "finetune.caption_epochs"),
    _steps_or_epochs("finetune.rewritten_steps", "finetune.rewritten_epochs"),
    _divides("finetune.batch_size", "finetune.accum_steps"),
    _divides("finetune.caption_batch_size", "finetune.accum_steps"),
    _divides("finetune.caption_term_batch", "finetune.accum_steps"),
    (("finetune.hard_negatives", "finetune.loss"),
     lambda get: not get("finetune.hard_negatives") or get("finetune.loss") == "contrastive",
     "finetune.hard_negatives=true needs finetune.loss='contrastive': a hard negative is one more text each "
     "difference is contrasted with"),
    (("finetune.relational_captions", "source"),
     lambda get: not get("finetune.relational_captions") or get("source") == "diffworld",
     "finetune.relational_captions draws DiffWorld's relational captions, and this profile's caption term is "
     "COCO's captions: leave it at 0"),
    (("eval.comparatives_per_model", "eval.comparatives"),
     lambda get: not get("eval.comparatives_per_model") or get("eval.comparatives") == "llm",
     "eval.comparatives_per_model=true needs eval.comparatives='llm': the hand-written comparatives are one set "
     "for every model"),
]


# Settings that list seeds: at least one, none repeated (a repeat would run the same finetune twice), each >= 0.
SEED_LISTS: tuple[str, ...] = ("finetune.seeds",)


def _seed_list_problems(key: str, seeds: tuple[int, ...]) -> list[str]:
    if not seeds:
        return [f"{key}=() (list at least one seed, e.g. {key}=0,1,2)"]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    negative = [s for s in seeds if s < 0]
    return ([f"{key}={seeds!r} (seed {repeated} repeated: each seed once)"] if repeated else []) + (
        [f"{key}={seeds!r} (seeds must be >= 0; {negative} are not)"] if negative else [])


def check(config: Any, name: str) -> None:
    """Raise ValueError listing every setting of `config` (a Profile) outside its range, choices or relation."""
    def get(dotted: str) -> Any:
        value = config
        for part in dotted.split("."):
            value = getattr(value, part)
        return value

    problems = [f"{key}={get(key)!r} (allowed: {rule})" for key, rule in RULES.items() if not rule.allows(get(key))]
    problems += [f"{key}={get(key)!r} (choose one of {', '.join(options)})" for key, options in CHOICES.items()
                 if get(key) not in options]
    problems += [p for key in SEED_LISTS for p in _seed_list_problems(key, get(key))]
    problems += [f"{', '.join(f'{k}={get(k)!r}' for k in keys)}: {why}"
                 for keys, holds, why in RELATIONS if not problems and not holds(get)]
    if problems:
        raise ValueError(f"profile {name!r} has settings out of range: " + "; ".join(problems))
