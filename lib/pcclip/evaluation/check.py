"""The quick check notebook 02 scores every finetuned model on (and each weight-averaging alpha):
difference accuracy on a few pair sets and zero-shot top-1 on one dataset, in one place so the notebook
holds no evaluation code of its own and runs unchanged for either source.

DiffWorld: size, x and brightness pairs of the test split with held-out phrasings, shapes for zero-shot.
Paper: the first draw of each of the paper's ground-truth difference sets, and the first dataset of
`eval.datasets` for zero-shot.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from ..cache import embed_split
from ..datasets import DATASETS, PAIR_SETS, dataset_spec
from ..models import ClipBundle
from ..paths import RunPaths
from ..profiles import Profile
from ..results import metric_rows
from ..world import SHAPES, build_split
from .difference import PairSet, difference_accuracy, encode_texts
from .diffworld_sets import attribute_pairs
from .tasks import ClassificationTask, ground_truth_sets, paper_task
from .zeroshot import classification_metrics, zero_shot_classifier

CHECK_ATTRIBUTES = ("size", "x", "brightness")  # one relative size, one position, one photometric attribute
ATTRIBUTE_LABELS = {"size": "size", "x": "position (x)", "brightness": "brightness"}
CHECK_TEMPLATES = ["a photo of a {}"]  # notebook 00's prompt, so base scores match its zero-shot table
# Every ground-truth set of the paper, the size and colour sets first: the first two are the figure's.
CHECK_SETS = ("cifar100_size", "flowers102_colour", "awa2_size", "awa2_attributes")


@dataclass(frozen=True)
class CheckSet:
    """One difference set of the check: its pairs among its own images, the identity of its rows and
    the label its score gets in figures."""

    pairs: PairSet
    image_emb: torch.Tensor  # the rows pairs.idx1 / idx2 index
    dataset: str
    split: str
    variant: str  # the phrasing: "eval" (DiffWorld's held-out templates) or "ground_truth" (the paper's sets)
    attribute: str
    label: str

    def __len__(self) -> int:
        return len(self.pairs)


@dataclass(frozen=True)
class FinetuneCheck:
    pair_sets: dict[str, CheckSet]  # name -> set, scored as "diff_<name>"
    zero_shot: ClassificationTask  # scored as "zero_shot_acc1"
    split: str  # of the zero-shot images
    labelled_by: str  # what its classes name (the rows' attribute)
    zero_shot_label: str

    @property
    def figure_metrics(self) -> dict[str, str]:
        """Score -> label for `alpha_sweep_figure`: the first set against zero-shot (its trade-off
        panel), then the second set."""
        sets = [(f"diff_{name}", s.label) for name, s in self.pair_sets.items()]
        return dict([sets[0], ("zero_shot_acc1", self.zero_shot_label), *sets[1:2]])


def finetune_check(profile: Profile, paths: RunPaths, base: ClipBundle) -> FinetuneCheck:
    """The check of the profile's source, on the base model's image embeddings (the image tower never trains)."""
    if profile.source == "paper":
        return _paper_check(profile, paths, base)
    if profile.source != "diffworld":
        raise ValueError(f"profile {profile.name!r} has unknown source {profile.source!r}; expected diffworld or paper")
    test = build_split(profile.world, "test")
    emb = embed_split(base, test, paths.cache, profile.cache, profile.model.precision)
    n = min(profile.eval.n_images, len(test))
    sets = {a: CheckSet(attribute_pairs(test, a, n, seed=0, pairs=profile.eval.pairs), emb, "diffworld", "test",
                        "eval", a, f"{ATTRIBUTE_LABELS[a]} difference accuracy") for a in CHECK_ATTRIBUTES}
    shapes = ClassificationTask("diffworld", emb, test.records.shape, list(SHAPES), CHECK_TEMPLATES, [], None)
    return FinetuneCheck(sets, shapes, "test", "shape", "zero-shot shape accuracy")


def _paper_check(profile: Profile, paths: RunPaths, base: ClipBundle) -> FinetuneCheck:
    """The first draw (seed 0) of every ground-truth set, and the first dataset of eval.datasets."""
    if not profile.eval.datasets:
        raise ValueError(f"profile {profile.name!r}: eval.datasets is empty; name at least one dataset for the "
                         "zero-shot check")
    drawn, embeddings = ground_truth_sets(profile, paths, base, CHECK_SETS, seeds=1)
    sets = {}
    for name, (pairs,) in drawn.items():
        spec = PAIR_SETS[name]
        title, what = DATASETS[spec.dataset].title, name.removeprefix(f"{spec.dataset}_")
        sets[name] = CheckSet(pairs, embeddings[name], spec.dataset, spec.split, "ground_truth", name,
                              f"{title} {what} difference accuracy")
    first = profile.eval.datasets[0]
    task = paper_task(profile, paths, base, first, class_texts=False)
    zero_shot = dataset_spec(first, profile.eval.split_scheme, profile.eval.split_seed)
    return FinetuneCheck(sets, task, zero_shot.eval_split, "class", f"zero-shot {zero_shot.title} accuracy")


def check_scores(bundle: ClipBundle, check: FinetuneCheck) -> dict[str, float]:
    """{'diff_<set>': difference accuracy, ..., 'zero_shot_acc1': top-1} of one model."""
    out = {}
    for name, s in check.pair_sets.items():
        text_emb, row = encode_texts(bundle, s.pairs.texts)  # each distinct phrasing once
        out[f"diff_{name}"] = difference_accuracy(text_emb[[row[t] for t in s.pairs.texts]],
                                                  s.image_emb[s.pairs.idx1], s.image_emb[s.pairs.idx2])
    task = check.zero_shot
    classifier = zero_shot_classifier(bundle, task.classnames, task.templates)
    out["zero_shot_acc1"] = float(classification_metrics(task.image_emb, task.labels, classifier,
                                                         task.classnames)["acc1"])
    return out


def check_rows(scores: pd.DataFrame, check: FinetuneCheck) -> pd.DataFrame:
    """Metric rows of `check_scores` per model (`scores` indexed by model name, one column per score)."""
    table = scores.rename_axis("model").reset_index()
    parts = [metric_rows(table.rename(columns={f"diff_{name}": "accuracy"}), ["accuracy"], task="difference",
                         dataset=s.dataset, split=s.split, variant=s.variant, attribute=s.attribute, n=len(s))
             for name, s in check.pair_sets.items()]
    parts.append(metric_rows(table.rename(columns={"zero_shot_acc1": "acc1"}), ["acc1"], task="zero_shot",
                             dataset=check.zero_shot.name, split=check.split, attribute=check.labelled_by))
    return pd.concat(parts, ignore_index=True)


def check_summary(scores: pd.DataFrame, check: FinetuneCheck, before: str = "base", after: str = "pcclip") -> str:
    """'<first figure metric> base -> pcclip; <second> ...': the notebook's closing line."""
    return "; ".join(f"{label} {scores.loc[before, key]:.3f} -> {scores.loc[after, key]:.3f}"
                     for key, label in list(check.figure_metrics.items())[:2])
