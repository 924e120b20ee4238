"""The paper's difference-classification sets on real datasets, by name.

    data = load_dataset(PAIR_SETS["cifar100_size"].dataset, root, transform=bundle.preprocess)
    pairs = difference_pairs("cifar100_size", data, n_images=100, seed=s)   # a PairSet; s = 0..4
    # the authors' settings: pairs="unordered", predicates="authors", max_attributes=0

CUB-200 pairs get their descriptions from an LLM (pcclip.synthesis writers); `cub_pair_list`
gives them the 5,000 image pairs to describe.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .awa2 import load_attribute_table, visual_attributes
from .groups import load_groups
from .pairset import PairSet
from .pairs import attribute_pairs, group_pairs, random_pairs
from .registry import LabeledDataset


@dataclass(frozen=True)
class PairSetSpec:
    dataset: str  # registry name of the dataset the pairs index
    split: str
    kind: str  # "groups" (data/groups/<name>.json) or "attributes" (AwA2 attribute descriptions)


PAIR_SETS: dict[str, PairSetSpec] = {
    "awa2_attributes": PairSetSpec("awa2", "all", "attributes"),
    "awa2_size": PairSetSpec("awa2", "all", "groups"),
    "cifar100_size": PairSetSpec("cifar100", "test", "groups"),
    "flowers102_colour": PairSetSpec("flowers102", "test", "groups"),
}


def difference_pairs(set_name: str, data: LabeledDataset, n_images: int, seed: int, pairs: str = "ordered",
                     predicates: str = "ours", max_attributes: int = 5) -> PairSet:
    """Pairs of set `set_name` among `n_images` images of `data` drawn with `seed` (all pairs of
    different classes or groups, in both orders or once: `pairs`, eval.pairs), with their ground-truth
    and reversed descriptions; AwA2 attribute sets describe with `predicates` and `max_attributes`
    (eval.awa2_predicates, eval.awa2_max_attributes; see `visual_attributes`)."""
    if set_name not in PAIR_SETS:
        raise ValueError(f"unknown difference set {set_name!r}; known: {sorted(PAIR_SETS)}")
    spec = PAIR_SETS[set_name]
    if data.name != spec.dataset:
        raise ValueError(f"difference set {set_name!r} is built on {spec.dataset!r}, got a {data.name!r} dataset")
    table = load_attribute_table(data.folder) if spec.dataset == "awa2" else None
    if spec.kind == "attributes":
        return attribute_pairs(data.labels, visual_attributes(table, predicates), n_images, seed, max_attributes,
                               pairs=pairs)
    return group_pairs(data.labels, load_groups(set_name, data.classnames, table), n_images, seed, pairs)


def cub_pair_list(data: LabeledDataset, n_pairs: int = 5000, seed: int = 0) -> list[dict[str, Any]]:
    """`n_pairs` random ordered image pairs of different CUB-200 species (seeded), as rows
    {"idx1", "idx2", "class1", "class2"} for the LLM writers to describe."""
    if data.name != "cub200":
        raise ValueError(f"cub_pair_list needs the cub200 dataset, got {data.name!r}")
    idx1, idx2 = random_pairs(data.labels, n_pairs, seed)
    names = data.classnames
    return [{"idx1": int(a), "idx2": int(b), "class1": names[data.labels[a]], "class2": names[data.labels[b]]}
            for a, b in zip(idx1, idx2)]
