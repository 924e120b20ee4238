"""Readers for the datasets torchvision already parses (always with download=False).

Each returns a `Read`: the torch Dataset, the label names exactly as the dataset gives
them, and the label of every item (so evaluations never decode images to get labels).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
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


def read_cifar10(root: Path, split: str, transform: Callable | None) -> Read:
    ds = tv.CIFAR10(str(root), train=split == "train", transform=transform, download=False)
    return Read(ds, list(ds.classes), _labels(ds))


def read_cifar100(root: Path, split: str, transform: Callable | None) -> Read:
    ds = tv.CIFAR100(str(root), train=split == "train", transform=transform, download=False)
    return Read(ds, list(ds.classes), _labels(ds))


def read_flowers102(root: Path, split: str, transform: Callable | None) -> Read:
    """Names: torchvision's list for labels 1..102 of imagelabels.mat (the .mat files carry no names)."""
    ds = tv.Flowers102(str(root), split=split, transform=transform, download=False)
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
