"""The rehearsal fixtures read back through pcclip's own loaders, with the signal the paper's sets test."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy.stats import kendalltau

from pcclip.datasets import difference_pairs, load_dataset, load_groups
from pcclip.datasets.awa2 import ATTRIBUTES_FILE
from pcclip.rehearsal.draw import object_extent, object_rgb
from pcclip.rehearsal.fixtures import FixtureSizes, write_fixtures
from pcclip.resources import load_json
from pcclip.synthesis.coco import load_coco_captions
from pcclip.synthesis.facts import parse_captions


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("rehearsal")
    write_fixtures(path, seed=0)
    return path


def _pixels(data) -> list[np.ndarray]:
    return [data.dataset[i][0] for i in range(len(data))]


@pytest.mark.parametrize("name,split,n_images,n_classes", [
    ("cifar100", "test", 564, 100), ("cifar100", "train", 200, 100), ("flowers102", "test", 371, 102),
    ("flowers102", "val", 102, 102), ("eurosat", "all", 100, 10), ("awa2", "all", 200, 50),
    ("cub200", "test", 400, 200), ("cub200", "train", 200, 200)])
def test_every_dataset_reads_back_through_the_registry(root, name, split, n_images, n_classes):
    data = load_dataset(name, root, split=split)
    assert len(data) == n_images and len(data.classnames) == n_classes
    assert sorted(set(data.labels.tolist())) == list(range(n_classes))  # every class has images


def test_cifar_larger_animals_are_drawn_larger(root):
    data = load_dataset("cifar100", root, transform=np.asarray)
    groups = load_groups("cifar100_size", data.classnames).groups
    area = np.array([object_extent(im) for im in _pixels(data)])
    larger, smaller = (area[np.isin(data.labels, groups[g])] for g in ("larger", "smaller"))
    rest = area[~np.isin(data.labels, groups["larger"] + groups["smaller"])]
    assert len(larger) == len(smaller) == 52
    assert smaller.max() < rest.mean() < larger.min()  # every larger animal outsizes every smaller one
    assert len(difference_pairs("cifar100_size", data, n_images=100, seed=0)) > 2 * 40 * 40  # paper's draw size


def test_flowers_blue_and_yellow_are_drawn_in_those_colours(root):
    data = load_dataset("flowers102", root, transform=np.asarray)
    groups = load_groups("flowers102_colour", data.classnames).groups
    rgb = {i: object_rgb(data.dataset[i][0]) for i in range(len(data))}
    for i, label in enumerate(data.labels.tolist()):
        r, g, b = rgb[i]
        blue, yellow = b > 1.5 * max(r, g), min(r, g) > 2 * b and g > 0.8 * r
        assert (blue, yellow) == (label in groups["blue"], label in groups["yellow"]), (i, label, rgb[i])
    n_blue, n_yellow = (8 * len(groups[g]) for g in ("blue", "yellow"))
    assert n_blue + n_yellow == 104
    assert len(difference_pairs("flowers102_colour", data, n_images=100, seed=0)) > 2 * 30 * 50


def test_awa2_continuous_predicates_agree_with_drawn_sizes(root):
    data = load_dataset("awa2", root, transform=np.asarray)
    folder = root / "Animals_with_Attributes2"
    continuous = np.loadtxt(folder / "predicate-matrix-continuous.txt")
    binary = np.loadtxt(folder / "predicate-matrix-binary.txt")
    predicates = list(load_json(ATTRIBUTES_FILE)["predicates"])
    area = np.array([object_extent(im) for im in _pixels(data)])
    class_area = np.array([area[data.labels == c].mean() for c in range(50)])
    big, small = predicates.index("big"), predicates.index("small")
    # classes 0.02 apart in drawn size, pixels and shapes blur neighbours' order; far apart it holds
    assert kendalltau(continuous[:, big], class_area)[0] > 0.7
    assert kendalltau(continuous[:, small], class_area)[0] < -0.7
    assert np.array_equal(binary, continuous > 60)
    assert class_area[binary[:, big] == 1].mean() > 1.3 * class_area[binary[:, small] == 1].mean()
    size = difference_pairs("awa2_size", data, n_images=100, seed=0)
    assert len(size) > 0 and len(difference_pairs("awa2_attributes", data, n_images=20, seed=0)) > 0


def test_coco_captions_state_the_drawn_sizes_and_images_vary_in_size(root):
    coco = load_coco_captions(root / "coco/annotations/captions_train2017.json", root / "coco/train2017")
    val = load_coco_captions(root / "coco/annotations/captions_val2017.json", root / "coco/val2017")
    assert len(coco) == 400 and len(val) == 100 and not set(coco.image_ids) & set(val.image_ids)
    assert all(len(c) == 5 for c in coco.captions)
    from PIL import Image
    shapes, area = set(), {"low": [], "high": []}
    for path, captions in zip(coco.files, coco.captions):
        with Image.open(path) as im:
            shapes.add(im.size)
            image = np.asarray(im.convert("RGB"))
        stated = parse_captions(captions).get("size")
        if stated in area:
            area[stated].append(object_extent(image))
    assert len(shapes) >= 6 and any(w != h for w, h in shapes)  # several sizes, some not square
    assert len(area["low"]) > 30 and np.mean(area["high"]) > 1.4 * np.mean(area["low"])


def test_cub_has_reed_captions_for_every_image(root):
    from pcclip.synthesis.cub import read_reed_captions

    data = load_dataset("cub200", root)
    captions = read_reed_captions(root, data, per_image=10)
    assert len(captions) == 400 and all(len(c) == 10 for c in captions)


def test_fixtures_are_deterministic_and_refuse_to_overwrite(root, tmp_path):
    sizes = FixtureSizes(coco_train=20, coco_val=5)
    write_fixtures(tmp_path / "a", seed=0, sizes=sizes, datasets=("coco", "awa2"))
    write_fixtures(tmp_path / "b", seed=0, sizes=sizes, datasets=("coco", "awa2"))
    write_fixtures(tmp_path / "c", seed=1, sizes=sizes, datasets=("coco", "awa2"))

    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    with pytest.raises(FileExistsError, match="already holds"):
        write_fixtures(tmp_path / "a", datasets=("coco",))
    with pytest.raises(ValueError, match="no rehearsal fixture for \\['sun397'\\]"):
        write_fixtures(tmp_path / "d", datasets=("sun397",))


def test_command_line_writes_the_data_root(tmp_path, capsys):
    from pcclip.rehearsal.__main__ import main

    assert main([str(tmp_path / "root"), "--no-model", "--seed", "2"]) == 0
    assert "cifar100" in capsys.readouterr().out
    assert len(load_dataset("eurosat", tmp_path / "root")) == 100
