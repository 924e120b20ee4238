"""Every paper dataset loader on a tiny fixture in the dataset's real on-disk format, written by
`pcclip.rehearsal.layouts` (the rehearsal's writers) or, for datasets the rehearsal does not
provide, here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pcclip.cache import DatasetSource
from pcclip.datasets import (DATASETS, DatasetNotFound, class_table, cub_pair_list, difference_pairs,
                             dataset_spec, load_attribute_table, load_dataset, load_groups, random_split,
                             visual_attributes)
from pcclip.datasets.awa2 import ATTRIBUTES_FILE
from pcclip.rehearsal import layouts
from pcclip.resources import load_json


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())


def write_jpg(path, value: int, size: int = 4) -> None:
    layouts.write_jpg(path, np.full((size, size, 3), value, dtype=np.uint8))


def cifar_batch(labels) -> tuple[np.ndarray, list[int]]:
    return np.random.default_rng(len(labels)).integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8), labels


def test_cifar10(tmp_path):
    test = cifar_batch([9, 3, 3])
    layouts.write_cifar10(tmp_path, list(class_table("cifar10")), [cifar_batch([i, 0]) for i in range(1, 6)], test)
    data = load_dataset("cifar10", tmp_path, transform=to_tensor)
    assert data.labels.tolist() == [9, 3, 3] and data.classnames[9] == "truck" and data.key == "cifar10-test-n3"
    image, label = data.dataset[0]
    assert label == 9 and torch.equal(image, torch.from_numpy(test[0][0]))
    assert load_dataset("cifar10", tmp_path, split="train").labels.tolist() == [1, 0, 2, 0, 3, 0, 4, 0, 5, 0]


def write_cifar100(root, labels, names=None) -> None:
    layouts.write_cifar100(root, names or list(class_table("cifar100")), cifar_batch([0, 1]), cifar_batch(labels))


def test_cifar100_and_its_size_pairs(tmp_path):
    labels = [15, 36, 42, 65, 3, 97, 74, 80, 43, 0]  # eight size classes and two others
    write_cifar100(tmp_path, labels)
    data = load_dataset("cifar100", tmp_path)
    assert data.labels.tolist() == labels and data.classnames[15] == "camel" and data.classnames[1] == "aquarium fish"
    pairs = difference_pairs("cifar100_size", data, n_images=8, seed=0)
    assert len(pairs) == 2 * 4 * 4  # every ordered (larger, smaller) pair of the 8 eligible images
    larger = {15, 42, 43, 97}
    for a, b, text in zip(pairs.idx1, pairs.idx2, pairs.texts):
        first_larger = labels[a] in larger
        assert first_larger != (labels[b] in larger)
        assert text == ("The first image contains a larger animal, while the second contains a smaller animal."
                        if first_larger else
                        "The first image contains a smaller animal, while the second contains a larger animal.")
    assert pairs.sign.tolist() == [1 if labels[a] in larger else -1 for a in pairs.idx1]
    assert pairs.reversed_texts == [t.replace("larger", "X").replace("smaller", "larger").replace("X", "smaller")
                                    for t in pairs.texts]


def test_class_order_mismatch_fails_loudly(tmp_path):
    names = list(class_table("cifar100"))
    names[15], names[16] = names[16], names[15]
    write_cifar100(tmp_path, [0, 1], names)
    with pytest.raises(ValueError, match=r"label 15 on disk is 'can'.*'camel'"):
        load_dataset("cifar100", tmp_path)


def test_corrupt_cifar_names_the_dataset(tmp_path):
    write_cifar100(tmp_path, [0, 1])
    test = tmp_path / "cifar-100-python" / "test"
    test.write_bytes(test.read_bytes()[:1000])  # a download cut short
    with pytest.raises(DatasetNotFound, match=r"(?s)CIFAR-100 .*incomplete or corrupt.*pickle.*cs.toronto.edu"):
        load_dataset("cifar100", tmp_path)
    (tmp_path / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DatasetNotFound, match=r"(?s)CIFAR-100 .*incomplete or corrupt"):
        load_dataset("cifar100", tmp_path)


def test_corrupt_flowers_names_the_dataset(tmp_path):
    layouts.write_flowers102(tmp_path, [np.zeros((4, 4, 3), np.uint8)], [0], {"train": [1], "val": [1], "test": [1]})
    (tmp_path / "flowers-102" / "setid.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetNotFound, match=r"(?s)Flowers-102 .*incomplete or corrupt.*setid.mat"):
        load_dataset("flowers102", tmp_path)


def test_flowers102_and_its_colour_pairs(tmp_path):
    labels = [2, 7, 4, 2, 53, 41, 27, 24]  # canterbury bells, bird of paradise, ..., sunflower, daffodil
    images = [np.full((4, 4, 3), 10 * i, dtype=np.uint8) for i in range(1, len(labels) + 1)]
    layouts.write_flowers102(tmp_path, images, labels, {"train": [1, 2], "val": [3, 4], "test": [5, 6, 7, 8, 1, 2]})
    data = load_dataset("flowers102", tmp_path, transform=to_tensor)
    assert data.labels.tolist() == [53, 41, 27, 24, 2, 7]
    assert [data.classnames[i] for i in data.labels[:4]] == ["sunflower", "daffodil", "stemless gentian",
                                                              "grape hyacinth"]
    assert data.dataset[1][0].shape == (4, 4, 3) and abs(int(data.dataset[1][0][0, 0, 0]) - 60) <= 2
    pairs = difference_pairs("flowers102_colour", data, n_images=4, seed=3)  # only 4 images are blue/yellow
    assert len(pairs) == 8
    assert {(int(data.labels[a]), t.split()[5]) for a, t in zip(pairs.idx1, pairs.texts)} == {
        (53, "yellow"), (41, "yellow"), (27, "blue"), (24, "blue")}


def test_food101(tmp_path):
    folder = tmp_path / "food-101"
    meta = {c: [] for c in class_table("food101")}
    meta["waffles"], meta["apple_pie"] = ["waffles/7"], ["apple_pie/3", "apple_pie/4"]
    (folder / "meta").mkdir(parents=True)
    for split in ("train", "test"):
        (folder / "meta" / f"{split}.json").write_text(json.dumps(meta))
    for rel in ("waffles/7", "apple_pie/3", "apple_pie/4"):
        write_jpg(folder / "images" / f"{rel}.jpg", 50)
    data = load_dataset("food101", tmp_path)
    assert sorted(data.labels.tolist()) == [0, 0, 100] and data.classnames[100] == "waffles"
    assert data.classnames.index("cheese plate") < data.classnames.index("cheesecake")  # torchvision sorts keys


def test_eurosat(tmp_path):
    names = list(class_table("eurosat"))
    layouts.write_eurosat(tmp_path, names, [np.full((4, 4, 3), 20 * k, np.uint8) for k in range(10)], range(10))
    assert (tmp_path / "eurosat" / "2750" / "SeaLake" / "SeaLake_1.jpg").is_file()
    data = load_dataset("eurosat", tmp_path)
    assert data.split == "all" and data.labels.tolist() == list(range(10))
    assert data.classnames[9] == "sea or lake" and data.raw_names[9] == "SeaLake"


def test_eurosat_paper_random10_is_a_seeded_disjoint_tenth(tmp_path):
    """eval.split_scheme="paper_random10": the authors' rule (torch.manual_seed(seed); torch.randperm(n); the
    last 10% are test), deterministic, disjoint from train, together every image; its own cache key."""
    labels = [k % 10 for k in range(60)]
    layouts.write_eurosat(tmp_path, list(class_table("eurosat")),
                          [np.full((4, 4, 3), 4 * k, np.uint8) for k in range(60)], labels)
    whole = load_dataset("eurosat", tmp_path)
    test = load_dataset("eurosat", tmp_path, transform=to_tensor, scheme="paper_random10")  # its evaluation split
    train = load_dataset("eurosat", tmp_path, "train", scheme="paper_random10")
    assert (test.split, len(whole), len(train), len(test)) == ("test", 60, 54, 6)
    torch.manual_seed(0)
    authors = sorted(torch.randperm(60)[54:].tolist())
    assert np.array_equal(test.labels, whole.labels[authors])
    every = load_dataset("eurosat", tmp_path, transform=to_tensor)
    assert all(torch.equal(test.dataset[j][0], every.dataset[i][0]) for j, i in enumerate(authors))  # same items
    again = load_dataset("eurosat", tmp_path, "test", scheme="paper_random10")
    other = load_dataset("eurosat", tmp_path, "test", scheme="paper_random10", split_seed=1)
    assert np.array_equal(again.labels, test.labels) and again.key == test.key == "eurosat-test-random10s0-n6"
    assert other.key == "eurosat-test-random10s1-n6" and whole.key == "eurosat-all-n60"
    assert sorted(random_split(60, "train", 0).tolist() + random_split(60, "test", 0).tolist()) == list(range(60))
    assert set(random_split(60, "test", 0).tolist()) != set(random_split(60, "test", 1).tolist())
    spec = dataset_spec("eurosat", "paper_random10")
    assert (spec.eval_split, spec.val_split) == ("test", "train") and DATASETS["eurosat"].val_split is None
    assert dataset_spec("cifar100", "paper_random10") is DATASETS["cifar100"]  # only EuroSAT and SUN397 change
    with pytest.raises(ValueError, match="eval.split_scheme"):
        load_dataset("eurosat", tmp_path, scheme="random10")


def test_sun397_reads_the_partition_files(tmp_path):
    folder = tmp_path / "SUN397"
    folder.mkdir()
    (folder / "ClassName.txt").write_text("\n".join(class_table("sun397")) + "\n")
    test_files = ["/y/youth_hostel/sun_b.jpg", "/a/abbey/sun_a.jpg", "/a/apartment_building/outdoor/sun_c.jpg"]
    (folder / "Testing_01.txt").write_text("\n".join(test_files) + "\n")
    (folder / "Training_01.txt").write_text("/a/abbey/sun_d.jpg\n")
    for rel in test_files + ["/a/abbey/sun_d.jpg", "/a/abbey/sun_unlisted.jpg"]:
        write_jpg(folder / rel.lstrip("/"), 90)
    data = load_dataset("sun397", tmp_path)
    assert data.labels.tolist() == [396, 0, 8]
    assert [data.classnames[i] for i in data.labels] == ["youth hostel", "abbey", "apartment building outdoor"]
    assert load_dataset("sun397", tmp_path, split="train").labels.tolist() == [0]


def test_sun397_paper_random10_splits_every_image(tmp_path):
    """paper_random10 on SUN397: every image under the class folders (not only partition 01), class by class in
    ClassName.txt order, split 90/10 at random; the partition files are not read."""
    folder = tmp_path / "SUN397"
    folder.mkdir()
    (folder / "ClassName.txt").write_text("\n".join(class_table("sun397")) + "\n")
    counts = {"/y/youth_hostel": 7, "/a/abbey": 8, "/a/apartment_building/outdoor": 5}
    for cls in class_table("sun397"):  # every class folder exists; these three hold images
        (folder / cls.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for cls, n in counts.items():
        for k in range(n):
            write_jpg(folder / cls.lstrip("/") / f"sun_{k}.jpg", 10 * k)
    every = load_dataset("sun397", tmp_path, "all")
    assert every.labels.tolist() == [0] * 8 + [8] * 5 + [396] * 7
    test, train = (load_dataset("sun397", tmp_path, split, scheme="paper_random10") for split in ("test", "train"))
    assert (len(test), len(train)) == (2, 18) and test.key == "sun397-test-random10s0-n2"
    assert np.array_equal(test.labels, every.labels[random_split(20, "test", 0)])
    assert np.array_equal(train.labels, every.labels[random_split(20, "train", 0)])
    assert not set(test.dataset.indices) & set(train.dataset.indices)


def test_dtd(tmp_path):
    folder = tmp_path / "dtd" / "dtd"
    names = list(class_table("dtd"))
    lines = [f"{c}/{c}_0001.jpg" for c in reversed(names)]
    for line in lines:
        write_jpg(folder / "images" / line, 30)
    (folder / "labels").mkdir()
    (folder / "labels" / "test1.txt").write_text("\n".join(lines) + "\n")
    data = load_dataset("dtd", tmp_path)
    assert data.labels.tolist() == list(range(46, -1, -1)) and data.classnames[30] == "polka-dotted"


def test_oxford_pet(tmp_path):
    folder = tmp_path / "oxford-iiit-pet"
    names = list(class_table("oxford_pet"))
    (folder / "annotations").mkdir(parents=True)
    ids = [f"{name.replace(' ', '_')}_{k + 100}" for k, name in enumerate(names)]
    rows = [f"{image_id} {k + 1} {1 + (k % 2)} 1" for k, image_id in enumerate(ids)]
    (folder / "annotations" / "test.txt").write_text("\n".join(rows[::-1]) + "\n")
    for image_id in ids:
        write_jpg(folder / "images" / f"{image_id}.jpg", 70)
    data = load_dataset("oxford_pet", tmp_path)
    assert data.labels.tolist() == list(range(36, -1, -1))
    assert data.classnames[1] == "American Bulldog" and data.dataset[0][1] == 36


AWA2 = list(class_table("awa2"))
PREDICATES = list(load_json(ATTRIBUTES_FILE)["predicates"])


def write_awa2(root, images: dict[str, int]):
    """AwA2 with `images[class]` images per class; elephant is big, hamster small, dalmatian neither.
    Columns 14 ('big') and 15 ('small') differ so an off-by-one shows."""
    matrix = np.zeros((len(AWA2), len(PREDICATES)))
    matrix[AWA2.index("elephant"), [4, 13, 14, 24]] = 90  # gray, toughskin, big, longneck
    matrix[AWA2.index("hamster"), [3, 11, 15, 33]] = 80  # brown, furry, small, smelly (non-visual)
    matrix[AWA2.index("dalmatian"), [0, 1, 9, 11]] = 70  # black, white, spots, furry
    matrix[AWA2.index("dalmatian"), 14] = 40  # below the threshold: not 'big' in the binary matrix
    labels = [AWA2.index(name) for name, k in images.items() for _ in range(k)]
    jpgs = [np.full((4, 4, 3), 40, np.uint8)] * len(labels)
    return layouts.write_awa2(root, AWA2, PREDICATES, matrix, jpgs, labels, threshold=50.0)


def test_awa2_labels_follow_classes_txt_not_folder_order(tmp_path):
    write_awa2(tmp_path, {"elephant": 2, "hamster": 1, "dalmatian": 1})
    data = load_dataset("awa2", tmp_path)
    elephant = AWA2.index("elephant")
    assert elephant == 18 and sorted(AWA2).index("elephant") == 13  # the two orders differ for this class
    assert data.labels.tolist() == [4, 18, 18, 25] and data.classnames[elephant] == "elephant"
    assert data.classnames[1] == "grizzly bear" and data.raw_names[1] == "grizzly+bear"


def test_awa2_big_attribute_by_name(tmp_path):
    table = load_attribute_table(write_awa2(tmp_path, {}))
    assert table.predicates[14] == "big" and table.predicates[15] == "small"
    assert np.flatnonzero(table.column("big")).tolist() == [AWA2.index("elephant")]
    assert np.flatnonzero(table.column("small")).tolist() == [AWA2.index("hamster")]
    groups = load_groups("awa2_size", tuple(AWA2), table)
    assert groups.groups == {"larger": (AWA2.index("elephant"),), "smaller": (AWA2.index("hamster"),)}


def test_awa2_difference_sets(tmp_path):
    write_awa2(tmp_path, {"elephant": 1, "hamster": 1, "dalmatian": 1})
    data = load_dataset("awa2", tmp_path)  # labels: dalmatian 4, elephant 18, hamster 25
    size = difference_pairs("awa2_size", data, n_images=2, seed=0)  # 2 images are big/small
    assert [(data.labels[a], data.labels[b]) for a, b in zip(size.idx1, size.idx2)] == [(18, 25), (25, 18)]
    attrs = difference_pairs("awa2_attributes", data, n_images=3, seed=0)
    text = dict(zip(zip(data.labels[attrs.idx1].tolist(), data.labels[attrs.idx2].tolist()), attrs.texts))
    assert len(attrs) == 6 and attrs.sign.tolist() == [0] * 6
    assert attrs.reversed_texts == [text[(b, a)] for a, b in text]
    assert text[(18, 25)] == ("The first image has attributes of grey, tough skin, big, long neck, "
                              "while the second image has attributes of brown, furry, small.")  # smelly removed
    assert text[(4, 25)] == ("The first image has attributes of black, white, spots, "
                             "while the second image has attributes of brown, small.")


def test_awa2_authors_predicates_and_cap(tmp_path):
    """eval.awa2_predicates="authors": the 16 predicates their code removes (their 1-based numbers in a 0-based
    list: "flys" and "walks" go, "smelly" stays), bare predicate names, and every differing attribute with
    max_attributes=0; pairs="unordered" keeps each pair of the draw once."""
    write_awa2(tmp_path, {"elephant": 1, "hamster": 1, "dalmatian": 1})
    data = load_dataset("awa2", tmp_path)  # labels: dalmatian 4, elephant 18, hamster 25
    table = load_attribute_table(data.folder)
    ours, authors = visual_attributes(table), visual_attributes(table, "authors")
    assert (len(table.predicates), len(ours.predicates), len(authors.predicates)) == (85, 53, 69)
    assert {"smelly", "tunnels", "solitary"} <= set(authors.predicates) and "smelly" not in ours.predicates
    assert not {"flys", "walks", "newworld"} & set(authors.predicates) and "walks" in ours.predicates
    assert authors.phrases == authors.predicates and "tough skin" in ours.phrases
    attrs = difference_pairs("awa2_attributes", data, n_images=3, seed=0, pairs="unordered", predicates="authors",
                             max_attributes=0)
    assert sorted(zip(attrs.idx1.tolist(), attrs.idx2.tolist())) == [(0, 1), (0, 2), (1, 2)]
    text = dict(zip(zip(data.labels[attrs.idx1].tolist(), data.labels[attrs.idx2].tolist()), attrs.texts))
    assert text[(18, 25)] == ("The first image has attributes of gray, toughskin, big, longneck, "
                              "while the second image has attributes of brown, furry, small, smelly.")
    with pytest.raises(ValueError, match="eval.awa2_predicates"):
        visual_attributes(table, "paper")


def write_cub(root) -> None:
    labels, is_train = [0, 0, 58, 61, 61, 199], [1, 0, 0, 1, 0, 0]  # image ids 1..6
    images = [np.full((4, 4, 3), 20 * i, np.uint8) for i in range(1, 7)]
    layouts.write_cub200(root, list(class_table("cub200")), images, labels, is_train)


def test_cub200_splits_and_pair_list(tmp_path):
    write_cub(tmp_path)
    data = load_dataset("cub200", tmp_path, transform=to_tensor)
    assert data.labels.tolist() == [0, 58, 61, 199] and data.classnames[58] == "California Gull"
    assert abs(int(data.dataset[1][0][0, 0, 0]) - 60) <= 2  # image id 3
    assert load_dataset("cub200", tmp_path, split="train").labels.tolist() == [0, 61]
    assert len(load_dataset("cub200", tmp_path, split="all")) == 6
    rows = cub_pair_list(data, n_pairs=12, seed=1)  # 4 images of 4 species: 12 ordered pairs exist
    assert len({(r["idx1"], r["idx2"]) for r in rows}) == 12
    assert all(r["class1"] == data.classnames[data.labels[r["idx1"]]] != r["class2"] for r in rows)
    assert cub_pair_list(data, n_pairs=5, seed=1) == cub_pair_list(data, n_pairs=5, seed=1)


def test_draw_is_a_seeded_subset_with_its_own_cache_key(tmp_path):
    write_cub(tmp_path)
    data = load_dataset("cub200", tmp_path, split="all", transform=to_tensor)
    drawn = data.draw(3, seed=4)
    assert len(drawn) == 3 and drawn.key == "cub200-all-draw4-n3" != data.key
    assert drawn.labels.tolist() == [int(drawn.dataset[k][1]) for k in range(3)]  # items and labels stay paired
    assert set(drawn.labels.tolist()) <= set(data.labels.tolist())
    assert data.draw(3, seed=4).labels.tolist() == drawn.labels.tolist()
    assert data.draw(6, seed=4) is data and data.draw(60, seed=4) is data  # nothing left out: the split itself
    with pytest.raises(ValueError, match="draw at least 1"):
        data.draw(0, seed=4)


def test_alpha_is_tuned_on_a_split_that_is_never_evaluated():
    tuned = {name: spec.val_split for name, spec in DATASETS.items()}
    assert tuned == {"cifar10": "train", "cifar100": "train", "flowers102": "val", "food101": "train",
                     "eurosat": None, "sun397": "train", "dtd": "val", "oxford_pet": "trainval", "awa2": None,
                     "cub200": "train"}
    assert all(split != DATASETS[name].eval_split for name, split in tuned.items())


def test_incomplete_cub_names_the_missing_file(tmp_path):
    write_cub(tmp_path)
    (tmp_path / "CUB_200_2011" / "train_test_split.txt").unlink()
    with pytest.raises(DatasetNotFound, match=r"(?s)CUB-200-2011 .*train_test_split.txt.*caltech"):
        load_dataset("cub200", tmp_path)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_missing_dataset_names_layout_and_download_page(tmp_path, name):
    spec = DATASETS[name]
    with pytest.raises(DatasetNotFound) as err:
        load_dataset(name, tmp_path)
    message = str(err.value)
    assert spec.title in message and spec.layout in message and spec.url in message
    assert str(tmp_path / spec.folder) in message


def test_source_needs_the_model_transform(tmp_path):
    write_cub(tmp_path)
    with pytest.raises(ValueError, match="transform=bundle.preprocess"):
        load_dataset("cub200", tmp_path).preprocess_key
    data = load_dataset("cub200", tmp_path, transform=lambda im: torch.zeros(3))
    source = DatasetSource(data.dataset, data.key, data.preprocess_key)
    assert source.key == "cub200-test-n4" and "0x" not in source.preprocess_key
    assert torch.cat(list(source.batches(0, 4, batch_size=3))).shape == (4, 3)


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar1000'"):
        load_dataset("cifar1000", tmp_path)
    with pytest.raises(ValueError, match="splits"):
        load_dataset("eurosat", tmp_path, split="test")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_jpeg_names_the_file(tmp_path, damage):
    from pcclip.datasets.files import ImageFiles

    path = tmp_path / "img_1.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a jpeg at all")
    with pytest.raises(OSError, match=f"cannot read image {path} .*truncated or corrupt"):
        ImageFiles([path], np.array([0]))[0]
