"""Where each paper dataset lives under the data root and what must be inside it, known without torch.

The loaders (`pcclip.datasets.registry`) and the preflight both ask here, so a missing dataset is named
the same way by both, and the preflight answers from the file system alone (importing torch and
torchvision to read the datasets took ~5-8 s of a 0.5 s check). It lives beside `pcclip.datasets`, not in
it, because importing that package imports every loader.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AWA2_FOLDER, CUB_FOLDER, SUN_FOLDER = "Animals_with_Attributes2", "CUB_200_2011", "SUN397"


@dataclass(frozen=True)
class Layout:
    name: str  # registry key
    title: str
    folder: str  # top folder under the data root
    layout: str  # what must be inside it, for the error message
    url: str  # download page
    required: tuple[str, ...]  # paths under `folder` every published copy has (the loaders need those of a split)
    server: str = ""  # a URL of the server torchvision's own download reads from; "" when fetched by hand


LAYOUTS: dict[str, Layout] = {s.name: s for s in (
    Layout("cifar10", "CIFAR-10", "cifar-10-batches-py",
           "cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta} (the python version)",
           "https://www.cs.toronto.edu/~kriz/cifar.html",
           (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
           "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    Layout("cifar100", "CIFAR-100", "cifar-100-python", "cifar-100-python/{train, test, meta} (the python version)",
           "https://www.cs.toronto.edu/~kriz/cifar.html", ("train", "test", "meta"),
           "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    Layout("flowers102", "Flowers-102", "flowers-102", "flowers-102/{jpg/image_00001.jpg ..., imagelabels.mat, setid.mat}",
           "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/", ("jpg", "imagelabels.mat", "setid.mat"),
           "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"),
    Layout("food101", "Food-101", "food-101", "food-101/{images/<class>/<id>.jpg, meta/train.json, meta/test.json}",
           "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/",
           ("images", "meta/train.json", "meta/test.json"), "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz"),
    Layout("eurosat", "EuroSAT", "eurosat", "eurosat/2750/<ClassName>/<ClassName>_<n>.jpg (EuroSAT RGB)",
           "https://github.com/phelber/EuroSAT", ("2750",), "https://huggingface.co/datasets/torchgeo/eurosat"),
    Layout("sun397", "SUN397", SUN_FOLDER,
           "SUN397/{ClassName.txt, Training_01.txt, Testing_01.txt, a/abbey/sun_*.jpg, ...} "
           "(SUN397.tar.gz and Partitions.zip both unpacked into SUN397/)",
           "https://vision.princeton.edu/projects/2010/SUN/", ("ClassName.txt", "Training_01.txt", "Testing_01.txt")),
    Layout("dtd", "DTD", "dtd", "dtd/dtd/{images/<class>/<name>.jpg, labels/train1.txt, val1.txt, test1.txt}",
           "https://www.robots.ox.ac.uk/~vgg/data/dtd/",
           ("dtd/images", "dtd/labels/train1.txt", "dtd/labels/val1.txt", "dtd/labels/test1.txt"),
           "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"),
    Layout("oxford_pet", "Oxford-IIIT Pet", "oxford-iiit-pet",
           "oxford-iiit-pet/{images/<Breed>_<n>.jpg, annotations/trainval.txt, annotations/test.txt}",
           "https://www.robots.ox.ac.uk/~vgg/data/pets/", ("images", "annotations/trainval.txt", "annotations/test.txt"),
           "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"),
    Layout("awa2", "AwA2", AWA2_FOLDER,
           "Animals_with_Attributes2/{JPEGImages/<class>/<class>_<n>.jpg, classes.txt, predicates.txt, "
           "predicate-matrix-binary.txt}", "https://cvml.ista.ac.at/AwA2/",
           ("JPEGImages", "classes.txt", "predicates.txt", "predicate-matrix-binary.txt")),
    Layout("cub200", "CUB-200-2011", CUB_FOLDER,
           "CUB_200_2011/{images/<NNN.Class_Name>/<name>.jpg, images.txt, image_class_labels.txt, "
           "train_test_split.txt, classes.txt}", "https://www.vision.caltech.edu/datasets/cub_200_2011/",
           ("images", "images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")),
)}


class DatasetNotFound(FileNotFoundError):
    """A paper dataset is absent or incomplete under the data root."""


def layout_of(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def not_found_message(layout: Layout, root: Path, detail: str) -> str:
    return (f"{layout.title} ({layout.name!r}) {detail}. Expected under the data root {root}:\n  {layout.layout}\n"
            f"Download it from {layout.url} and unpack it there (data.download=true fetches CIFAR, Flowers, Food, "
            "EuroSAT, DTD and Pets through torchvision).")


def require_folder(layout: Layout, root: Path) -> Path:
    """The dataset's folder under `root`; DatasetNotFound naming the layout and URL when it is absent."""
    folder = Path(root) / layout.folder
    if not folder.is_dir():
        raise DatasetNotFound(not_found_message(layout, Path(root), f"not found: no folder {folder}"))
    return folder


def require_layout(layout: Layout, root: Path) -> Path:
    """The dataset's folder once it and every required path in it exist (only looked at, nothing read)."""
    folder = require_folder(layout, root)
    missing = [rel for rel in layout.required if not (folder / rel).exists()]
    if missing:
        raise DatasetNotFound(not_found_message(layout, Path(root), f"is incomplete in {folder} (missing "
                                                                    f"{', '.join(missing)})"))
    return folder
