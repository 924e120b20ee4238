"""Readers for the datasets torchvision already parses (always with download=False).

Each returns a `Read`: the torch Dataset, the label names exactly as the dataset gives
them, and the label of every item (so evaluations never decode images to get labels).

CIFAR and Flowers-102 files are checked by their content, not by torchvision's md5 of the
published archive files: a file that does not unpickle (or load as a .mat) is reported as
corrupt, and the class names are checked against pcclip's class lists, but a copy written
by other tools (the rehearsal fixtures, a re-packed mirror) reads like the download.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from scipy.io.matlab import MatReadError
from torchvision import datasets as tv


class Read(NamedTuple):
    dataset: torch.utils.data.Dataset
    raw_names: list[str]
    labels: np.ndarray


def _labels(ds: Any) -> np.ndarray:
    """Item labels without loading images: `targets` (CIFAR, ImageFolder) or `_labels` (the others in
    torchvision 0.29, pinned; the loader tests check the values on every fixture)."""
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = getattr(ds, "_labels", None)
    if labels is None:
        raise RuntimeError(f"{type(ds).__name__}: torchvision no longer exposes item labels as targets/_labels; "
                           "pin torchvision==0.29.1 or update pcclip.datasets.torchvision_sets._labels")
    return np.asarray(labels, dtype=np.int64)


def _no_md5(files: list[list[str]]) -> list[list[str | None]]:
    return [[name, None] for name, _ in files]  # check_integrity(path, None) only asks that the file exists


class _CIFAR10(tv.CIFAR10):
    train_list, test_list = _no_md5(tv.CIFAR10.train_list), _no_md5(tv.CIFAR10.test_list)
    meta = {**tv.CIFAR10.meta, "md5": None}


class _CIFAR100(tv.CIFAR100):
    train_list, test_list = _no_md5(tv.CIFAR100.train_list), _no_md5(tv.CIFAR100.test_list)
    meta = {**tv.CIFAR100.meta, "md5": None}


class _Flowers102(tv.Flowers102):
    _file_dict = {key: (name, None) for key, (name, _) in tv.Flowers102._file_dict.items()}


_CORRUPT = (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError)


def _read_cifar(cls: type, root: Path, split: str, transform: Callable | None) -> Read:
    try:
        ds = cls(str(root), train=split == "train", transform=transform, download=False)
        ds.data.reshape(len(ds.targets), 32, 32, 3)  # every row must be a 32x32 RGB image
    except _CORRUPT as err:
        raise RuntimeError(f"a file does not read as a CIFAR python pickle ({type(err).__name__}: {err})") from None
    return Read(ds, list(ds.classes), _labels(ds))


def read_cifar10(root: Path, split: str, transform: Callable | None) -> Read:
    return _read_cifar(_CIFAR10, root, split, transform)


def read_cifar100(root: Path, split: str, transform: Callable | None) -> Read:
    return _read_cifar(_CIFAR100, root, split, transform)


def read_flowers102(root: Path, split: str, transform: Callable | None) -> Read:
    """Names: torchvision's list for labels 1..102 of imagelabels.mat (the .mat files carry no names)."""
    try:
        ds = _Flowers102(str(root), split=split, transform=transform, download=False)
    except (*_CORRUPT, MatReadError) as err:
        raise RuntimeError(f"imagelabels.mat or setid.mat does not read as a .mat file ({err})") from None
    return Read(ds, list(tv.Flowers102.classes), _labels(ds))


def read_food101(root: Path, split: str, transform: Callable | None) -> Read:
    ds = tv.Food101(str(root), split=split, transform=transform, download=False)
    return Read(ds, list(ds.classes), _labels(ds))


def read_eurosat(root: Path, split: str, transform: Callable | None) -> Read:
    """EuroSAT ships no split: "all" is every image, in ImageFolder's sorted order."""
    ds = tv.EuroSAT(str(root), transform=transform, download=False)
    return Read(ds, list(ds.classes), _labels(ds))


def read_dtd(root: Path, split: str, transform: Callable | None) -> Read:
    """Partition 1 of the ten official DTD splits, as CLIP-style evaluations use."""
    ds = tv.DTD(str(root), split=split, partition=1, transform=transform, download=False)
    return Read(ds, list(ds.classes), _labels(ds))


def read_oxford_pet(root: Path, split: str, transform: Callable | None) -> Read:
    ds = tv.OxfordIIITPet(str(root), split=split, target_types="category", transform=transform, download=False)
    return Read(ds, list(ds.classes), _labels(ds))
