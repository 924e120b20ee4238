"""What notebooks 03 and 04 evaluate, for either world: image embeddings, labels and prompts.

DiffWorld: shape classification (by the world's shape names, and by technical labels the
world never uses) and ground-truth difference pairs on its test and holdout splits. Paper: the
real datasets of `eval.datasets` (zero-shot; comparative prompting where hand-written
comparatives exist; eval.comparatives / eval.descriptions = "llm" take the synthesis LLM's, cached) and the paper's difference sets (AwA2, AwA2 size, CIFAR-100 size,
Flowers-102 colour). Attribute ranking: DiffWorld's test images by their continuous attributes;
paper: AwA2's classes by its continuous attribute matrix. Image embeddings always come from the
base model's cache.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..cache import DatasetSource, embed_images, embed_split
from ..datasets import (COMPARATIVE_DATASETS, PAIR_SETS, DatasetNotFound, LabeledDataset, dataset_spec,
                        difference_pairs, load_dataset, load_predicate_strengths)
from ..datasets.downloads import fetch_dataset
from ..datasets.names import display_names
from ..datasets.pairset import PairSet
from ..models import ClipBundle
from ..paths import RunPaths
from ..profiles import Profile, data_root
from ..synthesis.class_texts import (DESCRIBED_DATASETS, comparatives_path, descriptions_path, llm_comparatives,
                                     llm_descriptions)
from ..synthesis.cub import CUB_SET, CUB_SPLIT, cub_differences_path, cub_pair_sets
from ..world import CONTINUOUS, SHAPES, build_split
from .comparative import Comparative
from .diffworld_sets import difference_sets, direction_texts, frame_sets, structure_sets
from .headroom import class_means
from .prompts import (load_comparatives, load_descriptions, load_ranking_texts, load_templates, parse_comparatives,
                      parse_descriptions)
from .ranking import RankingTask

PAPER_TEMPLATES = "paper"  # data/zeroshot/paper.json: the paper's single prompt
# The same DiffWorld shapes under labels no DiffWorld text uses ("pentagram" for the star): the case where
# comparatives carry knowledge a class label lacks (data/classnames/diffworld_technical.json).
TECHNICAL = "diffworld_technical"
DIFFWORLD_SPLITS = ("test", "holdout")
RANKING_DATASET = "awa2"  # the paper dataset with a continuous attribute per class (data/ranking/awa2.json)


@dataclass
class ClassificationTask:
    """One labelled image set with its prompts; `comparatives` may be empty, `descriptions` None.
    `fit_emb`/`fit_labels`: other labelled images of the same classes (DiffWorld's train split) for the
    headroom references of `pcclip.evaluation.headroom`; `val_emb`/`val_labels`: a labelled split disjoint
    from both (DiffWorld's val) on which each model's comparative-prompting alpha is chosen. None where none
    is embedded (paper datasets without comparatives, or without a split besides the evaluated one).
    `model_comparatives`: each model's own set (eval.comparatives_per_model), used instead of `comparatives`."""

    name: str
    image_emb: torch.Tensor
    labels: np.ndarray
    classnames: list[str]
    templates: list[str]
    comparatives: list[Comparative]
    descriptions: dict[str, str] | None
    fit_emb: torch.Tensor | None = None
    fit_labels: np.ndarray | None = None
    val_emb: torch.Tensor | None = None
    val_labels: np.ndarray | None = None
    model_comparatives: dict[str, list[Comparative]] = field(default_factory=dict)


def task_comparatives(profile: Profile, paths: RunPaths, dataset: str, classnames: list[str],
                      models: Sequence[str] = ("base",)) -> tuple[list[Comparative], dict[str, list[Comparative]]]:
    """(comparatives, each model's own set) of `dataset`: the shipped ones (eval.comparatives="handwritten"),
    or those the synthesis LLM writes, once for all models or, with eval.comparatives_per_model, one set per
    model of `models` (the first model's set is then the task's own)."""
    if profile.eval.comparatives == "handwritten":  # load_profile checked the value and per_model's relation
        return load_comparatives(dataset, classnames), {}

    def written(model: str = "") -> list[Comparative]:
        raw = llm_comparatives(profile.synthesis, paths, dataset, classnames, model)
        return parse_comparatives(raw, classnames, str(comparatives_path(paths, dataset, model)))

    if not profile.eval.comparatives_per_model:
        return written(), {}
    own = {model: written(model) for model in models}
    return own[models[0]], own


def task_descriptions(profile: Profile, paths: RunPaths, dataset: str, classnames: list[str]) -> dict[str, str] | None:
    """Extended class descriptions of `dataset`, None where it has none: the shipped ones (DiffWorld only), or
    with eval.descriptions="llm" the synthesis LLM's for DiffWorld and the authors' datasets (DESCRIBED_DATASETS)."""
    if profile.eval.descriptions == "handwritten":
        return load_descriptions(dataset, classnames) if dataset == "diffworld" else None
    if dataset != "diffworld" and dataset not in DESCRIBED_DATASETS:
        return None
    raw = llm_descriptions(profile.synthesis, paths, dataset, classnames)
    return parse_descriptions(raw, classnames, str(descriptions_path(paths, dataset)))


def _embed(profile: Profile, paths: RunPaths, base: ClipBundle, data: LabeledDataset) -> torch.Tensor:
    source = DatasetSource(data.dataset, data.key, data.preprocess_key, profile.cache.num_workers)
    return embed_images(base, source, paths.cache, profile.cache, profile.model.precision)


def _load(profile: Profile, name: str, split: str | None, base: ClipBundle) -> LabeledDataset:
    """A paper dataset split, fetched first when `data.download` is on and torchvision can."""
    root = data_root(profile)
    if profile.data.download:
        fetch_dataset(name, root)
    return load_dataset(name, root, split=split, transform=base.preprocess, scheme=profile.eval.split_scheme,
                        split_seed=profile.eval.split_seed)


def _embed_dataset(profile: Profile, paths: RunPaths, base: ClipBundle, name: str, split: str | None = None):
    data = _load(profile, name, split, base)
    return data, _embed(profile, paths, base, data)


def _validation(profile: Profile, paths: RunPaths, base: ClipBundle, name: str
                ) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """(embeddings, labels) of eval.val_images images drawn (profile seed) from the dataset's val or train
    split, which never overlaps its test images; (None, None) where it has no such split or val_images is 0."""
    if profile.eval.val_images < 0:
        raise ValueError(f"eval.val_images={profile.eval.val_images} must be >= 0 (0: the paper's fixed alpha only)")
    split = dataset_spec(name, profile.eval.split_scheme, profile.eval.split_seed).val_split
    if split is None or profile.eval.val_images == 0:
        return None, None
    try:
        data = _load(profile, name, split, base)
    except DatasetNotFound as err:
        raise DatasetNotFound(f"{err}\nIts {split!r} split is read to choose the comparative-prompting alpha; "
                              "set eval.val_images=0 to report the paper's fixed alpha only.") from err
    data = data.draw(profile.eval.val_images, profile.seed)
    return _embed(profile, paths, base, data), data.labels


def classification_tasks(profile: Profile, paths: RunPaths, base: ClipBundle,
                         models: Sequence[str] = ("base",)) -> list[ClassificationTask]:
    """DiffWorld: shapes of the test split, by their names and by technical labels, with the train split
    as headroom fitting data and the val split for choosing alpha. Paper: every dataset of
    `eval.datasets` (a missing one fails with its download page; drop it from eval.datasets to skip it),
    with a draw of its val or train split for choosing alpha where it has comparatives. `models`: the names
    that get their own comparatives under eval.comparatives_per_model."""
    if profile.source == "diffworld":
        test, train, val = (build_split(profile.world, name) for name in ("test", "train", "val"))
        emb, fit, val_emb = (embed_split(base, s, paths.cache, profile.cache, profile.model.precision, progress=False)
                             for s in (test, train, val))
        classes, templates = list(SHAPES), load_templates("diffworld")
        labelled = list(display_names(TECHNICAL, "DiffWorld shapes", SHAPES))
        shared = dict(fit_emb=fit, fit_labels=train.records.shape, val_emb=val_emb, val_labels=val.records.shape)
        tasks = []
        for name, names in (("diffworld", classes), (TECHNICAL, labelled)):
            comps, own = task_comparatives(profile, paths, name, names, models)
            tasks.append(ClassificationTask(name, emb, test.records.shape, names, templates, comps,
                                            task_descriptions(profile, paths, name, names), model_comparatives=own,
                                            **shared))
        return tasks
    return [paper_task(profile, paths, base, name, models=models) for name in profile.eval.datasets]


def paper_task(profile: Profile, paths: RunPaths, base: ClipBundle, name: str,
               class_texts: bool = True, models: Sequence[str] = ("base",)) -> ClassificationTask:
    """Paper dataset `name`: its evaluation split with the paper's prompt and, with `class_texts`, its
    comparatives (`task_comparatives`) with a draw of its val or train split to choose alpha on, and its
    extended descriptions (`task_descriptions`)."""
    data, emb = _embed_dataset(profile, paths, base, name)
    classes = list(data.classnames)
    comps, own = (task_comparatives(profile, paths, name, classes, models)
                  if class_texts and name in COMPARATIVE_DATASETS else ([], {}))
    val_emb, val_labels = _validation(profile, paths, base, name) if comps else (None, None)
    described = task_descriptions(profile, paths, name, classes) if class_texts else None
    return ClassificationTask(name, emb, data.labels, classes, load_templates(PAPER_TEMPLATES), comps, described,
                              val_emb=val_emb, val_labels=val_labels, model_comparatives=own)


def ground_truth_sets(profile: Profile, paths: RunPaths, base: ClipBundle, names: tuple[str, ...], seeds: int
                      ) -> tuple[dict[str, list[PairSet]], dict[str, torch.Tensor]]:
    """Paper difference sets `names` (of `PAIR_SETS`): `seeds` draws of eval.n_images images each (seeds
    0, 1, ...) paired and described as eval.pairs and eval.awa2_* say, and the image embeddings of each set's
    split, both keyed by set name."""
    sets, embeddings, cfg = {}, {}, profile.eval
    for set_name in names:
        spec = PAIR_SETS[set_name]
        data, embeddings[set_name] = _embed_dataset(profile, paths, base, spec.dataset, spec.split)
        n = min(profile.eval.n_images, len(data))
        sets[set_name] = [difference_pairs(set_name, data, n, seed, cfg.pairs, cfg.awa2_predicates,
                                           cfg.awa2_max_attributes) for seed in range(seeds)]
    return sets, embeddings


def difference_tasks(profile: Profile, paths: RunPaths, base: ClipBundle
                     ) -> tuple[dict[tuple[str, str, str], list[PairSet]], dict[str, torch.Tensor]]:
    """(sets, image embeddings) for `difference_table`, keyed (split, phrasing, attribute).

    DiffWorld: every attribute with held-out ("eval") phrasings on the test and holdout splits, and
    with the training phrasings on the test split (to see what memorised wording adds). Paper: one
    key (set, "ground_truth", set) per difference set of the paper (its images embedded as `set`),
    and ("cub200_llm", "llm", "cub200_llm") when cub200 is in eval.datasets.
    """
    cfg = profile.eval
    if profile.source == "diffworld":
        splits = {name: build_split(profile.world, name) for name in DIFFWORLD_SPLITS}
        embeddings = {name: embed_split(base, s, paths.cache, profile.cache, profile.model.precision)
                      for name, s in splits.items()}
        sets = difference_sets(splits, cfg, phrasing_splits=("eval",))
        return {**sets, **difference_sets({"test": splits["test"]}, cfg, phrasing_splits=("train",))}, embeddings
    drawn, embeddings = ground_truth_sets(profile, paths, base, tuple(PAIR_SETS), cfg.seeds)
    sets = {(set_name, "ground_truth", set_name): draws for set_name, draws in drawn.items()}
    if "cub200" in cfg.datasets:  # LLM-written descriptions, from notebook 01
        _, embeddings[CUB_SET] = _embed_dataset(profile, paths, base, "cub200", CUB_SPLIT)
        sets[(CUB_SET, "llm", CUB_SET)] = cub_pair_sets(cub_differences_path(paths), cfg.seeds)
    return sets, embeddings


def structure_tasks(profile: Profile, per_frame: bool = False) -> dict[tuple[str, str, str], list[PairSet]]:
    """DiffWorld: the test split's pairs described in every evaluation family of the grammar (`structure_sets`),
    keyed (split, family, attribute), or with `per_frame` in each held-out frame on its own (`frame_sets`, keyed
    by the frame's id); scored with the image embeddings of `difference_tasks`. Paper profiles have no grammar:
    empty."""
    if profile.source != "diffworld":
        return {}
    return (frame_sets if per_frame else structure_sets)(build_split(profile.world, "test"), profile.eval)


def difference_places(profile: Profile, sets: dict[tuple[str, str, str], list[PairSet]]
                      ) -> dict[str, tuple[str, str]]:
    """(dataset, split) of the images behind each first element of `difference_tasks`' keys: DiffWorld keys
    are its splits; paper keys are set names, whose images come from the set's own dataset and split."""
    if profile.source == "diffworld":
        return {key: ("diffworld", key) for key, _, _ in sets}
    places = {name: (spec.dataset, spec.split) for name, spec in PAIR_SETS.items()}
    places[CUB_SET] = ("cub200", CUB_SPLIT)
    return {key: places[key] for key, _, _ in sets}


def _awa2_ranking(profile: Profile, paths: RunPaths, base: ClipBundle) -> list[RankingTask]:
    """AwA2's classes (the class means of its evaluated split) by each attribute of data/ranking/awa2.json."""
    data, emb = _embed_dataset(profile, paths, base, RANKING_DATASET)
    strengths = load_predicate_strengths(data.folder)
    if list(strengths.classes) != list(data.raw_names):
        raise ValueError(f"{data.folder}: predicate-matrix-continuous.txt rows (classes.txt) do not follow the "
                         "image labels; use the official AwA2 files")
    means = class_means(emb, data.labels, len(data.classnames))
    return [RankingTask(RANKING_DATASET, data.split, attribute, means, strengths.column(predicate), positive,
                        negative, items=tuple(data.classnames))
            for attribute, (predicate, positive, negative) in load_ranking_texts(RANKING_DATASET).items()]


def ranking_tasks(profile: Profile, paths: RunPaths, base: ClipBundle) -> list[RankingTask]:
    """What `ranking_table` orders. DiffWorld: the test images by every continuous attribute, along
    `eval.direction_texts` held-out phrasings. Paper: AwA2's classes by its continuous attribute matrix,
    when awa2 is in eval.datasets; otherwise none (with a warning saying so)."""
    if profile.source == "diffworld":
        test = build_split(profile.world, "test")
        emb = embed_split(base, test, paths.cache, profile.cache, profile.model.precision, progress=False)
        return [RankingTask("diffworld", "test", a, emb, getattr(test.records, a),
                            *direction_texts(a, profile.eval.direction_texts, profile.seed)) for a in CONTINUOUS]
    if RANKING_DATASET not in profile.eval.datasets:
        warnings.warn(f"no attribute ranking: it orders AwA2's classes by its continuous attribute matrix, and "
                      f"{RANKING_DATASET!r} is not in eval.datasets {list(profile.eval.datasets)}; add it to rank",
                      stacklevel=2)
        return []
    return _awa2_ranking(profile, paths, base)
