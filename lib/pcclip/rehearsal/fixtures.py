"""The rehearsal data: every paper dataset the rehearsal evaluates, drawn with DiffWorld, in its
published on-disk layout, with the real class lists and a few images per class.

    write_fixtures(root, seed=0)   # or: python -m pcclip.rehearsal DIR

Deterministic from the seed; each dataset draws from its own seeded generator, so changing
one dataset's sizes leaves the others' pixels as they were.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..datasets.awa2 import ATTRIBUTES_FILE
from ..datasets.groups import load_groups
from ..datasets.names import class_table
from ..datasets.registry import DATASETS as REGISTRY
from ..resources import load_json
from ..world import COLORS, captions, render, sample_records
from . import layouts
from .draw import LARGE, SMALL, Look, draw_records, random_looks, render_varied

DATASETS = ("coco", "cifar100", "flowers102", "eurosat", "awa2", "cub200")  # in the order they are written
# COCO's five captions per image: five independent DiffWorld caption draws (each drops attributes at random)
COCO_CAPTIONS = 5


@dataclass(frozen=True)
class FixtureSizes:
    """Images per class and split: small enough to write in seconds (a few MB in all), with more test
    images for the classes of the size and colour sets, so that a difference-set draw of the paper's
    100 images (eval.n_images) finds them, as in the real test splits."""

    coco_train: int = 400
    coco_val: int = 100
    cifar_train: int = 2  # per class
    cifar_test: int = 5
    cifar_group_test: int = 13  # the 8 classes of cifar100_size: 104 images
    flowers_train: int = 1
    flowers_val: int = 1
    flowers_test: int = 3
    flowers_group_test: int = 8  # the 13 classes of flowers102_colour: 104 images
    eurosat: int = 10
    awa2: int = 4
    cub_train: int = 1
    cub_test: int = 2


def _labels(n_classes: int, per_class: int, group: tuple[int, ...] = (), per_group_class: int = 0) -> np.ndarray:
    """Labels in class order, `per_class` images per class, `per_group_class` for the classes in `group`."""
    counts = np.full(n_classes, per_class)
    counts[list(group)] = per_group_class
    return np.repeat(np.arange(n_classes), counts)


def _groups(dataset: str, set_name: str) -> dict[str, tuple[int, ...]]:
    """Group name -> class labels of difference set `set_name` (data/groups/<set_name>.json)."""
    return load_groups(set_name, list(class_table(dataset).values())).groups


def _members(dataset: str, set_name: str) -> tuple[int, ...]:
    return tuple(c for members in _groups(dataset, set_name).values() for c in members)


def _rng(seed: int, dataset: str) -> np.random.Generator:
    return np.random.default_rng([seed, DATASETS.index(dataset)])


def _grouped_looks(dataset: str, set_name: str, rng: np.random.Generator, group_looks: dict[str, dict],
                   colors: tuple[str, ...] = COLORS) -> list[Look]:
    """Random looks (colours among `colors`) for every class of `dataset`; the classes of each group of
    `set_name` get the Look fields in `group_looks[group]`."""
    looks = random_looks(len(class_table(dataset)), rng, colors)
    for group, members in _groups(dataset, set_name).items():
        for c in members:
            looks[c] = replace(looks[c], **group_looks[group])
    return looks


def write_coco(root: Path, sizes: FixtureSizes, seed: int) -> None:
    """COCO 2017 train and val: random DiffWorld objects, five captions each in DiffWorld's words."""
    rng = _rng(seed, "coco")
    first = 1
    for split, n in (("train", sizes.coco_train), ("val", sizes.coco_val)):
        records = sample_records(n, rng)
        draws = [captions(records, rng) for _ in range(COCO_CAPTIONS)]
        layouts.write_coco_split(root, split, render_varied(records, rng), list(zip(*draws)), first_id=first)
        first += 10 * n  # ids of the two splits never overlap, with gaps as in COCO


def write_cifar100(root: Path, sizes: FixtureSizes, seed: int) -> None:
    """CIFAR-100 at 32 px; the size set's larger animals drawn large, its smaller ones small."""
    rng = _rng(seed, "cifar100")
    looks = _grouped_looks("cifar100", "cifar100_size", rng, {"larger": {"size": LARGE}, "smaller": {"size": SMALL}})
    group = _members("cifar100", "cifar100_size")
    splits = []
    for labels in (_labels(len(looks), sizes.cifar_train),
                   _labels(len(looks), sizes.cifar_test, group, sizes.cifar_group_test)):
        splits.append((render(draw_records(looks, labels, rng), 32), labels))
    layouts.write_cifar100(root, list(class_table("cifar100")), *splits)


def write_flowers102(root: Path, sizes: FixtureSizes, seed: int) -> None:
    """Flowers-102; the colour set's blue flowers drawn blue, its yellow ones yellow, the rest in other colours."""
    rng = _rng(seed, "flowers102")
    group_looks = {g: {"color": COLORS.index(g)} for g in ("blue", "yellow")}
    others = tuple(c for c in COLORS if c not in group_looks)
    looks = _grouped_looks("flowers102", "flowers102_colour", rng, group_looks, others)
    group = _members("flowers102", "flowers102_colour")
    per_split = [_labels(len(looks), sizes.flowers_train), _labels(len(looks), sizes.flowers_val),
                 _labels(len(looks), sizes.flowers_test, group, sizes.flowers_group_test)]
    labels = np.concatenate(per_split)
    ends = np.cumsum([0] + [len(x) for x in per_split])
    order = rng.permutation(len(labels))  # image numbers do not follow the splits, as in the real set
    splits = {s: sorted((order[ends[i]:ends[i + 1]] + 1).tolist()) for i, s in enumerate(("train", "val", "test"))}
    images = render_varied(draw_records(looks, labels[np.argsort(order)], rng), rng)
    layouts.write_flowers102(root, images, labels[np.argsort(order)], splits)


def write_eurosat(root: Path, sizes: FixtureSizes, seed: int) -> None:
    rng = _rng(seed, "eurosat")
    names = list(class_table("eurosat"))
    labels = _labels(len(names), sizes.eurosat)
    records = draw_records(random_looks(len(names), rng), labels, rng)
    layouts.write_eurosat(root, names, list(render(records, 64)), labels)  # EuroSAT RGB is 64x64


def awa2_matrix(class_size: np.ndarray, class_color: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(classes, 85) continuous predicate strengths (0..100) that agree with the drawings: 'big' is 100 x
    the class's drawn size, 'small' 100 x (1 - size), the drawn colour's predicate (where AwA2 has one)
    strong, the other colour predicates weak; the remaining predicates are random."""
    predicates = list(load_json(ATTRIBUTES_FILE)["predicates"])
    matrix = rng.uniform(0, 100, (len(class_size), len(predicates)))
    matrix[:, predicates.index("big")] = 100 * class_size
    matrix[:, predicates.index("small")] = 100 * (1 - class_size)
    for c, color in enumerate(class_color.tolist()):
        for name in COLORS:
            if name in predicates:
                strong = name == COLORS[color]
                matrix[c, predicates.index(name)] = rng.uniform(70, 100) if strong else rng.uniform(0, 20)
    return np.round(matrix, 2)


def write_awa2(root: Path, sizes: FixtureSizes, seed: int) -> None:
    """AwA2: each animal at its own size (spread over the whole range), the continuous and binary
    predicate matrices stating it; 'big' above 60, 'small' below 40 in the binary matrix."""
    rng = _rng(seed, "awa2")
    names = list(class_table("awa2"))
    class_size = rng.permutation(np.linspace(0.0, 1.0, len(names)))
    looks = [Look(k.shape, k.color, (max(s - 0.01, 0.0), min(s + 0.01, 1.0)))
             for k, s in zip(random_looks(len(names), rng), class_size)]
    labels = _labels(len(names), sizes.awa2)
    matrix = awa2_matrix(class_size, np.array([k.color for k in looks]), rng)
    images = render_varied(draw_records(looks, labels, rng), rng)
    predicates = list(load_json(ATTRIBUTES_FILE)["predicates"])
    layouts.write_awa2(root, names, predicates, matrix, images, labels, threshold=60.0)


def write_cub200(root: Path, sizes: FixtureSizes, seed: int) -> None:
    """CUB-200-2011 with Reed et al.-style captions (ten DiffWorld captions per image)."""
    rng = _rng(seed, "cub200")
    names = list(class_table("cub200"))
    per_class = sizes.cub_train + sizes.cub_test
    labels = _labels(len(names), per_class)
    is_train = np.tile(np.arange(per_class) < sizes.cub_train, len(names))
    records = draw_records(random_looks(len(names), rng), labels, rng)
    texts = list(zip(*[captions(records, rng) for _ in range(10)]))
    layouts.write_cub200(root, names, render_varied(records, rng), labels, is_train, texts)


WRITERS = {"coco": write_coco, "cifar100": write_cifar100, "flowers102": write_flowers102,
           "eurosat": write_eurosat, "awa2": write_awa2, "cub200": write_cub200}


def present(root: str | Path, datasets: tuple[str, ...] = DATASETS) -> list[str]:
    """The datasets whose top folder (the registry's; "coco" for COCO) exists under `root`."""
    return [name for name in datasets
            if (Path(root) / (REGISTRY[name].folder if name in REGISTRY else name)).is_dir()]


def write_fixtures(root: str | Path, seed: int = 0, sizes: FixtureSizes = FixtureSizes(),
                   datasets: tuple[str, ...] = DATASETS) -> dict[str, float]:
    """Write the rehearsal datasets under `root` (refusing a root that already holds any of them);
    returns the seconds each took."""
    root = Path(root)
    unknown = sorted(set(datasets) - set(WRITERS))
    if unknown:
        raise ValueError(f"no rehearsal fixture for {unknown}; known: {list(WRITERS)}")
    taken = present(root, datasets)
    if taken:
        raise FileExistsError(f"{root} already holds {taken}: write the rehearsal data into an empty "
                              "folder (delete the old one to rewrite it)")
    seconds = {}
    for name in datasets:
        start = time.perf_counter()
        WRITERS[name](root, sizes, seed)
        seconds[name] = time.perf_counter() - start
    return seconds

