"""The quick check notebook 02 scores every finetuned model on (and each weight-averaging alpha):
difference accuracy on a few held-out-phrasing pair sets and zero-shot top-1, in one place so the
notebook holds no evaluation code of its own."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..cache import embed_split
from ..models import ClipBundle
from ..paths import RunPaths
from ..profiles import Profile
from ..results import metric_rows
from ..world import SHAPES, build_split
from .difference import PairSet, difference_accuracy, encode_texts
from .diffworld_sets import attribute_pairs
from .zeroshot import classification_metrics, zero_shot_classifier

CHECK_ATTRIBUTES = ("size", "x", "brightness")  # one relative size, one position, one photometric attribute
CHECK_TEMPLATES = ["a photo of a {}"]  # notebook 00's prompt, so base scores match its zero-shot table


@dataclass(frozen=True)
class FinetuneCheck:
    dataset: str
    split: str
    image_emb: torch.Tensor
    pair_sets: dict[str, PairSet]  # attribute -> pairs among image_emb's rows (seed 0, held-out phrasings)
    labels: np.ndarray  # class index per image, for the zero-shot score
    classnames: list[str]
    labelled_by: str  # the attribute the classes name


def finetune_check(profile: Profile, paths: RunPaths, base: ClipBundle) -> FinetuneCheck:
    """DiffWorld's test split: size, x and brightness pairs among eval.n_images images, shapes for zero-shot."""
    if profile.source != "diffworld":
        raise ValueError(f"profile {profile.name!r}: the finetuning check is defined on DiffWorld only so far; "
                         "paper profiles are scored by notebooks 03 and 04")
    test = build_split(profile.world, "test")
    emb = embed_split(base, test, paths.cache, profile.cache, profile.model.precision)
    n = min(profile.eval.n_images, len(test))
    sets = {a: attribute_pairs(test, a, n, seed=0) for a in CHECK_ATTRIBUTES}
    return FinetuneCheck("diffworld", "test", emb, sets, test.records.shape, list(SHAPES), "shape")


def check_scores(bundle: ClipBundle, check: FinetuneCheck) -> dict[str, float]:
    """{'diff_<attribute>': difference accuracy, ..., 'zero_shot_acc1': top-1} of one model."""
    out = {}
    for attribute, pairs in check.pair_sets.items():
        text_emb, row = encode_texts(bundle, pairs.texts)  # each distinct phrasing once
        out[f"diff_{attribute}"] = difference_accuracy(text_emb[[row[t] for t in pairs.texts]],
                                                       check.image_emb[pairs.idx1], check.image_emb[pairs.idx2])
    classifier = zero_shot_classifier(bundle, check.classnames, CHECK_TEMPLATES)
    out["zero_shot_acc1"] = float(classification_metrics(check.image_emb, check.labels, classifier,
                                                         check.classnames)["acc1"])
    return out


def check_rows(scores: pd.DataFrame, check: FinetuneCheck) -> pd.DataFrame:
    """Metric rows of `check_scores` per model (`scores` indexed by model name, one column per score)."""
    table = scores.rename_axis("model").reset_index()
    parts = [metric_rows(table.rename(columns={f"diff_{a}": "accuracy"}), ["accuracy"], task="difference",
                         dataset=check.dataset, split=check.split, variant="eval", attribute=a, n=len(p))
             for a, p in check.pair_sets.items()]
    parts.append(metric_rows(table.rename(columns={"zero_shot_acc1": "acc1"}), ["acc1"], task="zero_shot",
                             dataset=check.dataset, split=check.split, attribute=check.labelled_by))
    return pd.concat(parts, ignore_index=True)
