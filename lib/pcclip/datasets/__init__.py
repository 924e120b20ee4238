"""The paper profile's real datasets: loaders, class names, groups, comparatives and difference pair sets.

Typical use in an evaluation (paper profile):

    data = load_dataset("cifar100", data_root(cfg), transform=bundle.preprocess)
    source = DatasetSource(data.dataset, data.key, data.preprocess_key)  # pcclip.cache
    emb = embed_images(bundle, source, paths.cache, cfg.cache, cfg.model.precision)
    classifier = zero_shot_classifier(bundle, list(data.classnames), templates)
    comparatives = load_comparatives("cifar100", list(data.classnames))  # pcclip.evaluation.prompts
    pairs = difference_pairs("cifar100_size", data, n_images=100, seed=0)  # datasets.pairset.PairSet

Every class, group, attribute and comparative is looked up by name (see `names`).
"""
from .awa2 import (AttributeTable, PredicateStrengths, load_attribute_table, load_predicate_strengths,
                   visual_attributes)
from .groups import ClassGroups, load_groups
from .names import UnknownName, class_table, normalize_name, resolve_names
from .pairs import attribute_pairs, class_pairs, draw_images, group_pairs, random_pairs
from .pairset import PairSet
from .paper_sets import PAIR_SETS, cub_pair_list, difference_pairs
from .registry import (DATASETS, SPLIT_SCHEMES, DatasetNotFound, DatasetSpec, LabeledDataset, dataset_spec,
                       load_dataset, random_split)

# datasets with hand-written comparatives in data/comparatives/<name>.json (read by evaluation.prompts)
COMPARATIVE_DATASETS = ("cifar100", "eurosat", "flowers102", "food101", "sun397", "cub200")

__all__ = [
    "COMPARATIVE_DATASETS", "DATASETS", "PAIR_SETS", "SPLIT_SCHEMES", "AttributeTable", "ClassGroups",
    "DatasetNotFound", "DatasetSpec", "LabeledDataset", "PairSet", "PredicateStrengths", "UnknownName",
    "attribute_pairs", "class_pairs", "class_table", "cub_pair_list", "dataset_spec", "difference_pairs",
    "draw_images", "group_pairs", "load_attribute_table", "load_dataset", "load_groups", "load_predicate_strengths",
    "normalize_name", "random_pairs", "random_split", "resolve_names", "visual_attributes",
]
