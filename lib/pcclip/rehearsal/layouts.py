"""Writers of the paper datasets' on-disk layouts: the inverse of `pcclip.datasets`' readers.

Each takes images (uint8 (H, W, 3) arrays, any size) and labels and writes the files exactly
where and how the published archive has them, so the readers cannot tell a fixture from a
download. The rehearsal data and the loader tests both write through these functions.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io
from PIL import Image

from ..datasets.folder_sets import AWA2_FOLDER, CUB_FOLDER

JPEG_QUALITY = 90


def write_jpg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, quality=JPEG_QUALITY)


def _numbered(names: Sequence[str], sep: str = " ") -> str:
    return "".join(f"{i}{sep}{name}\n" for i, name in enumerate(names, 1))


def _cifar_batch(path: Path, images: np.ndarray, labels: Sequence[int], label_key: str) -> None:
    """A CIFAR python pickle: rows of 3072 bytes (R plane, G plane, B plane of a 32x32 image)."""
    images = np.asarray(images, dtype=np.uint8)
    if images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
        raise ValueError(f"{path.name}: CIFAR needs (n, 32, 32, 3) images and n labels, got {images.shape} "
                         f"and {len(labels)}")
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    with open(path, "wb") as fh:
        pickle.dump({"data": data, label_key: [int(x) for x in labels]}, fh)


def write_cifar100(root: Path, names: Sequence[str], train: tuple[np.ndarray, Sequence[int]],
                   test: tuple[np.ndarray, Sequence[int]]) -> Path:
    """cifar-100-python/{train, test, meta}; `train`/`test` are (images (n, 32, 32, 3), fine labels)."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    _cifar_batch(folder / "train", *train, "fine_labels")
    _cifar_batch(folder / "test", *test, "fine_labels")
    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": list(names)}, fh)
    return folder


def write_cifar10(root: Path, names: Sequence[str], train: Sequence[tuple[np.ndarray, Sequence[int]]],
                  test: tuple[np.ndarray, Sequence[int]]) -> Path:
    """cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}; `train` holds the five batches."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    if len(train) != 5:
        raise ValueError(f"CIFAR-10 has 5 training batches, got {len(train)}")
    for i, batch in enumerate(train, 1):
        _cifar_batch(folder / f"data_batch_{i}", *batch, "labels")
    _cifar_batch(folder / "test_batch", *test, "labels")
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(names)}, fh)
    return folder


def write_flowers102(root: Path, images: Sequence[np.ndarray], labels: Sequence[int],
                     splits: dict[str, Sequence[int]]) -> Path:
    """flowers-102/{jpg/image_00001.jpg ..., imagelabels.mat, setid.mat}: `labels` 0-based (stored
    1-based, as published), `splits` maps train/val/test to 1-based image numbers."""
    folder = Path(root) / "flowers-102"
    for i, image in enumerate(images, 1):
        write_jpg(folder / "jpg" / f"image_{i:05d}.jpg", image)
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": np.array([[int(x) + 1 for x in labels]])})
    keys = {"train": "trnid", "val": "valid", "test": "tstid"}
    scipy.io.savemat(folder / "setid.mat", {keys[s]: np.array([list(ids)]) for s, ids in splits.items()})
    return folder


def write_eurosat(root: Path, names: Sequence[str], images: Sequence[np.ndarray], labels: Sequence[int]) -> Path:
    """eurosat/2750/<ClassName>/<ClassName>_<n>.jpg (n from 1 within each class)."""
    folder = Path(root) / "eurosat" / "2750"
    count: dict[int, int] = {}
    for image, label in zip(images, labels):
        count[label] = count.get(label, 0) + 1
        write_jpg(folder / names[label] / f"{names[label]}_{count[label]}.jpg", image)
    return folder


def write_awa2(root: Path, classes: Sequence[str], predicates: Sequence[str], continuous: np.ndarray,
               images: Sequence[np.ndarray], labels: Sequence[int], threshold: float = 50.0) -> Path:
    """Animals_with_Attributes2/{JPEGImages/<class>/<class>_<n>.jpg, classes.txt, predicates.txt,
    predicate-matrix-continuous.txt, predicate-matrix-binary.txt}; the binary matrix is the continuous
    one (0..100) above `threshold`, which is how the published binary matrix was derived."""
    folder = Path(root) / AWA2_FOLDER
    continuous = np.asarray(continuous, dtype=float)
    if continuous.shape != (len(classes), len(predicates)):
        raise ValueError(f"AwA2 continuous matrix must be ({len(classes)}, {len(predicates)}), got {continuous.shape}")
    for name in classes:
        (folder / "JPEGImages" / name).mkdir(parents=True, exist_ok=True)
    count: dict[int, int] = {}
    for image, label in zip(images, labels):
        count[label] = count.get(label, 0) + 1
        write_jpg(folder / "JPEGImages" / classes[label] / f"{classes[label]}_{10000 + count[label]}.jpg", image)
    (folder / "classes.txt").write_text(_numbered(classes, "\t"))
    (folder / "predicates.txt").write_text(_numbered(predicates, "\t"))
    np.savetxt(folder / "predicate-matrix-continuous.txt", continuous, fmt="%.2f")
    np.savetxt(folder / "predicate-matrix-binary.txt", (continuous > threshold).astype(int), fmt="%d")
    return folder


def write_cub200(root: Path, classes: Sequence[str], images: Sequence[np.ndarray], labels: Sequence[int],
                 is_train: Sequence[bool], captions: Sequence[Sequence[str]] | None = None) -> Path:
    """CUB_200_2011/{images/<NNN.Class>/<name>.jpg, images.txt, image_class_labels.txt,
    train_test_split.txt, classes.txt} (image ids 1..n in the given order), plus Reed et al.'s
    captions cvpr2016_cub/text_c10/<class folder>/<name>.txt when `captions` are given."""
    folder = Path(root) / CUB_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[str]] = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": []}
    for image_id, (image, label, train) in enumerate(zip(images, labels, is_train), 1):
        rel = f"{classes[label]}/{classes[label].split('.', 1)[-1]}_{image_id:04d}.jpg"
        write_jpg(folder / "images" / rel, image)
        rows["images.txt"].append(f"{image_id} {rel}")
        rows["image_class_labels.txt"].append(f"{image_id} {label + 1}")
        rows["train_test_split.txt"].append(f"{image_id} {int(train)}")
        if captions is not None:
            text = Path(root) / "cvpr2016_cub" / "text_c10" / Path(rel).with_suffix(".txt")
            text.parent.mkdir(parents=True, exist_ok=True)
            text.write_text("".join(f"{c}\n" for c in captions[image_id - 1]))
    for name, lines in rows.items():
        (folder / name).write_text("".join(f"{line}\n" for line in lines))
    (folder / "classes.txt").write_text(_numbered(classes))
    return folder


def write_coco_split(root: Path, split: str, images: Sequence[np.ndarray], captions: Sequence[Sequence[str]],
                     first_id: int = 1) -> Path:
    """coco/{<split>2017/<id:012d>.jpg, annotations/captions_<split>2017.json} (the 2017 captions format);
    image ids run from `first_id`, at most 10 captions per image."""
    folder = Path(root) / "coco"
    entries, annotations = [], []
    for k, (image, texts) in enumerate(zip(images, captions)):
        image_id = first_id + k
        name = f"{image_id:012d}.jpg"
        write_jpg(folder / f"{split}2017" / name, image)
        h, w = np.asarray(image).shape[:2]
        entries.append({"id": image_id, "file_name": name, "height": int(h), "width": int(w)})
        annotations += [{"id": image_id * 10 + j, "image_id": image_id, "caption": t} for j, t in enumerate(texts)]
    path = folder / "annotations" / f"captions_{split}2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": {"description": "pcclip rehearsal fixture"}, "licenses": [],
                                "images": entries, "annotations": annotations}))
    return path
