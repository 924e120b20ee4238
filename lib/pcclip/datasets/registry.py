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

from ..fingerprint import transform_key
from . import folder_sets as fs
from . import torchvision_sets as tvs
from .names import display_names


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # registry key, also the name of its data files (classnames/<name>.json, ...)
    title: str
    folder: str  # top folder under the data root
    layout: str  # what must be inside it, for the error message
    url: str  # download page
    splits: tuple[str, ...]
    eval_split: str  # the split zero-shot and difference evaluations use
    read: Callable[[Path, str, Callable | None], tvs.Read]
    scheme: str = ""  # "" for the dataset's own splits; "random10s<seed>" for a seeded random split (`dataset_spec`)

    @property
    def val_split(self) -> str | None:
        """The split to tune on (comparative prompting's alpha): "val" where the dataset has one, else
        its training split; None where the evaluation split holds every image (EuroSAT, AwA2)."""
        return next((s for s in ("val", "train", "trainval") if s in self.splits and s != self.eval_split), None)


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("cifar10", "CIFAR-10", "cifar-10-batches-py",
                "cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta} (the python version)",
                "https://www.cs.toronto.edu/~kriz/cifar.html", ("train", "test"), "test", tvs.read_cifar10),
    DatasetSpec("cifar100", "CIFAR-100", "cifar-100-python",
                "cifar-100-python/{train, test, meta} (the python version)",
                "https://www.cs.toronto.edu/~kriz/cifar.html", ("train", "test"), "test", tvs.read_cifar100),
    DatasetSpec("flowers102", "Flowers-102", "flowers-102",
                "flowers-102/{jpg/image_00001.jpg ..., imagelabels.mat, setid.mat}",
                "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/", ("train", "val", "test"), "test",
                tvs.read_flowers102),
    DatasetSpec("food101", "Food-101", "food-101",
                "food-101/{images/<class>/<id>.jpg, meta/train.json, meta/test.json}",
                "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/", ("train", "test"), "test",
                tvs.read_food101),
    DatasetSpec("eurosat", "EuroSAT", "eurosat", "eurosat/2750/<ClassName>/<ClassName>_<n>.jpg (EuroSAT RGB)",
                "https://github.com/phelber/EuroSAT", ("all",), "all", tvs.read_eurosat),
    DatasetSpec("sun397", "SUN397", fs.SUN_FOLDER,
                "SUN397/{ClassName.txt, Training_01.txt, Testing_01.txt, a/abbey/sun_*.jpg, ...} "
                "(SUN397.tar.gz and Partitions.zip both unpacked into SUN397/)",
                "https://vision.princeton.edu/projects/2010/SUN/", ("train", "test", "all"), "test", fs.read_sun397),
    DatasetSpec("dtd", "DTD", "dtd", "dtd/dtd/{images/<class>/<name>.jpg, labels/train1.txt, val1.txt, test1.txt}",
                "https://www.robots.ox.ac.uk/~vgg/data/dtd/", ("train", "val", "test"), "test", tvs.read_dtd),
    DatasetSpec("oxford_pet", "Oxford-IIIT Pet", "oxford-iiit-pet",
                "oxford-iiit-pet/{images/<Breed>_<n>.jpg, annotations/trainval.txt, annotations/test.txt}",
                "https://www.robots.ox.ac.uk/~vgg/data/pets/", ("trainval", "test"), "test", tvs.read_oxford_pet),
    DatasetSpec("awa2", "AwA2", fs.AWA2_FOLDER,
                "Animals_with_Attributes2/{JPEGImages/<class>/<class>_<n>.jpg, classes.txt, predicates.txt, "
                "predicate-matrix-binary.txt}", "https://cvml.ista.ac.at/AwA2/", ("all",), "all", fs.read_awa2),
    DatasetSpec("cub200", "CUB-200-2011", fs.CUB_FOLDER,
                "CUB_200_2011/{images/<NNN.Class_Name>/<name>.jpg, images.txt, image_class_labels.txt, "
                "train_test_split.txt, classes.txt}",
                "https://www.vision.caltech.edu/datasets/cub_200_2011/", ("train", "test", "all"), "test",
                fs.read_cub200),
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


class DatasetNotFound(FileNotFoundError):
    """A paper dataset is absent or incomplete under the data root."""


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
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name]


def not_found_message(spec: DatasetSpec, root: Path, detail: str) -> str:
    return (f"{spec.title} ({spec.name!r}) {detail}. Expected under the data root {root}:\n  {spec.layout}\n"
            f"Download it from {spec.url} and unpack it there (data.download=true fetches CIFAR, Flowers, Food, "
            "EuroSAT, DTD and Pets through torchvision).")


def load_dataset(name: str, root: str | Path, split: str | None = None, transform: Callable | None = None,
                 scheme: str = "ours", split_seed: int = 0) -> LabeledDataset:
    """Dataset `name` from the data root (`pcclip.profiles.data_root(profile)`); split defaults to the
    evaluation split of `scheme` (eval.split_scheme, see `dataset_spec`). Pass transform=bundle.preprocess
    to embed it."""
    spec, root = dataset_spec(name, scheme, split_seed), Path(root)
    split = split or spec.eval_split
    if split not in spec.splits:
        raise ValueError(f"{spec.title} has splits {spec.splits}, not {split!r}")
    folder = root / spec.folder
    if not folder.is_dir():
        raise DatasetNotFound(not_found_message(spec, root, f"not found: no folder {folder}"))
    try:
        read = spec.read(root, split, transform)
    except (RuntimeError, FileNotFoundError) as err:  # torchvision says RuntimeError for missing/corrupt files
        detail = str(err).replace(" You can use download=True to download it", "")  # we never download
        message = not_found_message(spec, root, f"is incomplete or corrupt in {folder} ({detail})")
        raise DatasetNotFound(message) from err
    if len(read.labels) == 0:
        raise DatasetNotFound(not_found_message(spec, root, f"has no images for split {split!r} in {folder}"))
    classnames = display_names(spec.name, spec.title, read.raw_names)
    return LabeledDataset(spec.name, split, read.dataset, classnames, tuple(read.raw_names), read.labels,
                          folder, transform, scheme=spec.scheme)
