"""The paper's evaluation datasets: one small spec each, one loader for all.

Loading never downloads: a dataset missing from the data root is an error that names the
dataset, the folder layout it expects and where to get it (`downloads.fetch_dataset` fetches
the ones torchvision can, when the profile's `data.download` is on).

Split schemes (eval.split_scheme): "ours" evaluates EuroSAT on every image and SUN397 on its
official partition 01; "paper_random10" gives both a seeded random 10% test split and the other
90% as train, as the authors did (`random_split`).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..dataset_layouts import (LAYOUTS, DatasetNotFound, Layout, layout_of,
                              not_found_message, require_folder)
from ..fingerprint import transform_key
from . import folder_sets as fs
from . import torchvision_sets as tvs
from .names import display_names


@dataclass(frozen=True)
class DatasetSpec:
    place: Layout  # name, title, folder, expected files and URL (`pcclip.dataset_layouts`, read without torch)
    splits: tuple[str, ...]
    eval_split: str  # the split zero-shot and difference evaluations use
    read: Callable[[Path, str, Callable | None], tvs.Read]
    scheme: str = ""  # "" for the dataset's own splits; "random10s<seed>" for a seeded random split (`dataset_spec`)

    @property
    def name(self) -> str:  # registry key, also the name of its data files (classnames/<name>.json, ...)
        return self.place.name

    @property
    def title(self) -> str:
        return self.place.title

    @property
    def folder(self) -> str:
        return self.place.folder

    @property
    def layout(self) -> str:
        return self.place.layout

    @property
    def url(self) -> str:
        return self.place.url

    @property
    def val_split(self) -> str | None:
        """The split to tune on (comparative prompting's alpha): "val" where the dataset has one, else
        its training split; None where the evaluation split holds every image (EuroSAT, AwA2)."""
        return next((s for s in ("val", "train", "trainval") if s in self.splits and s != self.eval_split), None)


DATASETS: dict[str, DatasetSpec] = {place.name: DatasetSpec(place, *rest) for place, *rest in (
    (LAYOUTS["cifar10"], ("train", "test"), "test", tvs.read_cifar10),
    (LAYOUTS["cifar100"], ("train", "test"), "test", tvs.read_cifar100),
    (LAYOUTS["flowers102"], ("train", "val", "test"), "test", tvs.read_flowers102),
    (LAYOUTS["food101"], ("train", "test"), "test", tvs.read_food101),
    (LAYOUTS["eurosat"], ("all",), "all", tvs.read_eurosat),
    (LAYOUTS["sun397"], ("train", "test", "all"), "test", fs.read_sun397),
    (LAYOUTS["dtd"], ("train", "val", "test"), "test", tvs.read_dtd),
    (LAYOUTS["oxford_pet"], ("trainval", "test"), "test", tvs.read_oxford_pet),
    (LAYOUTS["awa2"], ("all",), "all", fs.read_awa2),
    (LAYOUTS["cub200"], ("train", "test", "all"), "test", fs.read_cub200),
)}


SPLIT_SCHEMES = ("ours", "paper_random10")
RANDOM10_DATASETS = ("eurosat", "sun397")  # the datasets the authors split at random (90% train, 10% test)
RANDOM10_TRAIN_SHARE = 0.9


def random_split(n: int, split: str, seed: int) -> np.ndarray:
    """Sorted item indices of `split` ("train" or "test") of n items split at random, the authors' rule:
    train = the first int(0.9 n) of torch.randperm(n) seeded with `seed`, test = the rest (10%)."""
    if split not in ("train", "test"):
        raise ValueError(f"a random 90/10 split has splits 'train' and 'test', not {split!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    cut = int(n * RANDOM10_TRAIN_SHARE)
    return np.sort(perm[cut:] if split == "test" else perm[:cut])


def _read_random10(read: Callable[[Path, str, Callable | None], tvs.Read], seed: int, root: Path, split: str,
                   transform: Callable | None) -> tvs.Read:
    """`split` of a seeded random 90/10 split of every image `read` gives for "all"."""
    whole = read(root, "all", transform)
    idx = random_split(len(whole.labels), split, seed)
    return tvs.Read(torch.utils.data.Subset(whole.dataset, idx.tolist()), whole.raw_names, whole.labels[idx])


def dataset_spec(name: str, scheme: str = "ours", split_seed: int = 0) -> DatasetSpec:
    """The registry entry of `name` under split scheme `scheme` (eval.split_scheme): with "paper_random10",
    EuroSAT and SUN397 have "train" and "test" drawn at random (seeded with `split_seed`) from all their
    images, and are evaluated on "test"; every other dataset keeps its splits."""
    spec = _spec(name)
    if scheme not in SPLIT_SCHEMES:
        raise ValueError(f"split scheme {scheme!r}: use one of {SPLIT_SCHEMES} (eval.split_scheme)")
    if scheme == "ours" or name not in RANDOM10_DATASETS:
        return spec
    return replace(spec, splits=("train", "test"), eval_split="test", scheme=f"random10s{split_seed}",
                   read=partial(_read_random10, spec.read, split_seed))


@dataclass(frozen=True, eq=False)
class LabeledDataset:
    """A loaded split: items are (transform(image), label); `classnames` are prompt names in label order."""

    name: str
    split: str
    dataset: torch.utils.data.Dataset
    classnames: tuple[str, ...]
    raw_names: tuple[str, ...]  # the names as the dataset itself gives them
    labels: np.ndarray  # (n,) int64, the label of every item
    folder: Path
    transform: Callable | None
    draw_seed: int | None = None  # set by `draw`: the items are a seeded sample of the split
    scheme: str = ""  # its spec's scheme: the items are one split of a seeded random split

    @property
    def key(self) -> str:
        """Stable id for the embedding cache: dataset, split (and its scheme), draw and size."""
        drawn = "" if self.draw_seed is None else f"-draw{self.draw_seed}"
        scheme = f"-{self.scheme}" if self.scheme else ""
        return f"{self.name}-{self.split}{scheme}{drawn}-n{len(self.labels)}"

    def draw(self, n: int, seed: int) -> LabeledDataset:
        """`n` items drawn (seeded, without replacement, in split order); the whole split if it has at most n."""
        if n < 1:
            raise ValueError(f"cannot draw {n} images from {self.key}: draw at least 1")
        if n >= len(self.labels):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self.labels), size=n, replace=False))
        return replace(self, dataset=torch.utils.data.Subset(self.dataset, idx.tolist()), labels=self.labels[idx],
                       draw_seed=seed)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def preprocess_key(self) -> str:
        """Names the transform, for the embedding cache (`pcclip.cache.DatasetSource`); embedding needs the
        model's preprocess as transform."""
        if self.transform is None:
            raise ValueError(f"{self.key}: load it with transform=bundle.preprocess to embed its images")
        return transform_key(self.transform)


def _spec(name: str) -> DatasetSpec:
    return DATASETS[layout_of(name).name]


def load_dataset(name: str, root: str | Path, split: str | None = None, transform: Callable | None = None,
                 scheme: str = "ours", split_seed: int = 0) -> LabeledDataset:
    """Dataset `name` from the data root (`pcclip.profiles.data_root(profile)`); split defaults to the
    evaluation split of `scheme` (eval.split_scheme, see `dataset_spec`). Pass transform=bundle.preprocess
    to embed it."""
    spec, root = dataset_spec(name, scheme, split_seed), Path(root)
    split = split or spec.eval_split
    if split not in spec.splits:
        raise ValueError(f"{spec.title} has splits {spec.splits}, not {split!r}")
    folder = require_folder(spec.place, root)
    try:
        read = spec.read(root, split, transform)
    except (RuntimeError, FileNotFoundError) as err:  # torchvision says RuntimeError for missing/corrupt files
        detail = str(err).replace(" You can use download=True to download it", "")  # we never download
        message = not_found_message(spec.place, root, f"is incomplete or corrupt in {folder} ({detail})")
        raise DatasetNotFound(message) from err
    if len(read.labels) == 0:
        raise DatasetNotFound(not_found_message(spec.place, root, f"has no images for split {split!r} in {folder}"))
    classnames = display_names(spec.name, spec.title, read.raw_names)
    return LabeledDataset(spec.name, split, read.dataset, classnames, tuple(read.raw_names), read.labels,
                          folder, transform, scheme=spec.scheme)
