"""Readers for datasets torchvision does not parse the way the paper needs: AwA2, CUB-200-2011, SUN397."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..dataset_layouts import AWA2_FOLDER, CUB_FOLDER, SUN_FOLDER
from .files import ImageFiles, image_files, read_id_table, read_lines, read_numbered_names
from .torchvision_sets import Read


def read_awa2(root: Path, split: str, transform: Callable | None) -> Read:
    """Every image of AwA2 ("all"); label = the class's line in classes.txt, which is the row of
    the predicate matrix. (The authors' code labelled images by alphabetical folder order and
    then indexed the matrix with it, pairing most animals with another animal's attributes.)"""
    folder = root / AWA2_FOLDER
    classes = read_numbered_names(folder / "classes.txt")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = image_files(folder / "JPEGImages" / name)
        files += found
        labels += [label] * len(found)
    return Read(ImageFiles(files, np.array(labels), transform), classes, np.array(labels, dtype=np.int64))


def read_cub200(root: Path, split: str, transform: Callable | None) -> Read:
    """CUB-200-2011 in image-id order; split from train_test_split.txt (1 = train), or "all"."""
    folder = root / CUB_FOLDER
    classes = read_numbered_names(folder / "classes.txt")
    paths = read_id_table(folder / "images.txt")
    class_ids = read_id_table(folder / "image_class_labels.txt")
    is_train = read_id_table(folder / "train_test_split.txt")
    missing = [i for i in paths if i not in class_ids or i not in is_train]
    if missing:
        raise ValueError(f"{folder}: images {missing[:5]} have no entry in image_class_labels.txt or "
                         "train_test_split.txt; the annotation files do not belong together")
    keep = [i for i in sorted(paths) if split == "all" or (is_train[i] == "1") == (split == "train")]
    labels = np.array([int(class_ids[i]) - 1 for i in keep], dtype=np.int64)
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(classes):
        raise ValueError(f"{folder}/image_class_labels.txt: class ids outside 1..{len(classes)}")
    files = [folder / "images" / paths[i] for i in keep]
    return Read(ImageFiles(files, labels, transform), classes, labels)


def read_sun397(root: Path, split: str, transform: Callable | None) -> Read:
    """SUN397 partition 01 (Training_01.txt / Testing_01.txt, 50 images per class each), the split
    CLIP-style evaluations use; "all": every image, class by class in ClassName.txt order, sorted by
    name (for the authors' random split). torchvision's SUN397 has no split and lists files in
    filesystem order, so the file list is read here instead."""
    folder = root / SUN_FOLDER
    classes = read_lines(folder / "ClassName.txt")
    if split == "all":
        found = [image_files(folder / name.lstrip("/")) for name in classes]
        labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(f) for f in found])
        return Read(ImageFiles([p for f in found for p in f], labels, transform), classes, labels)
    index = {name: i for i, name in enumerate(classes)}
    listing = folder / f"{'Training' if split == 'train' else 'Testing'}_01.txt"
    files, labels = [], []
    for rel in read_lines(listing):
        cls = rel.rsplit("/", 1)[0]
        if cls not in index:
            raise ValueError(f"{listing}: {rel!r} is in class {cls!r}, which ClassName.txt does not list")
        files.append(folder / rel.lstrip("/"))
        labels.append(index[cls])
    labels = np.array(labels, dtype=np.int64)
    return Read(ImageFiles(files, labels, transform), classes, labels)
