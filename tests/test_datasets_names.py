"""Classes, groups, attributes and comparatives resolve by name against each dataset's own names."""
from __future__ import annotations

import numpy as np
import pytest

from pcclip.datasets import (COMPARATIVE_DATASETS, DATASETS, AttributeTable, UnknownName, class_table,
                             load_groups, normalize_name, resolve_names, visual_attributes)
from pcclip.datasets.awa2 import ATTRIBUTES_FILE, attribute_difference_text
from pcclip.datasets.names import display_names
from pcclip.evaluation.prompts import load_comparatives
from pcclip.resources import load_json

# published class counts of each dataset
COUNTS = {"cifar10": 10, "cifar100": 100, "flowers102": 102, "food101": 101, "eurosat": 10, "sun397": 397,
          "dtd": 47, "oxford_pet": 37, "awa2": 50, "cub200": 200}


def names(dataset: str) -> list[str]:
    return list(class_table(dataset).values())


def test_normalize_and_resolve():
    assert normalize_name(" Black-footed_Albatross ") == "black footed albatross"
    assert normalize_name("grizzly+bear") == "grizzly bear"
    assert normalize_name("apartment_building/outdoor") == "apartment building outdoor"
    assert resolve_names(["Lion", "sea_lion", "wolf"], ["wolf", "lion", "sea lion"], "zoo") == [1, 2, 0]


def test_unknown_name_lists_every_miss_with_closest_names():
    with pytest.raises(UnknownName, match=r"zoo: 2 name\(s\) not found: 'lions' \(closest: \['lion'\]\); 'zebra'"):
        resolve_names(["lions", "wolf", "zebra"], ["wolf", "lion", "tiger"], "zoo")


def test_names_equal_after_normalisation_are_refused():
    with pytest.raises(ValueError, match="same after normalisation"):
        resolve_names(["a b"], ["a_b", "A B"], "x")


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_shipped_class_lists(dataset):
    table = class_table(dataset)
    assert len(table) == COUNTS[dataset] and len(set(table)) == len(table)
    resolve_names(list(table.values()), list(table.values()), dataset)  # unique and self-resolving
    assert display_names(dataset, dataset, list(table)) == tuple(table.values())


def test_display_names_refuse_a_shorter_class_list():
    raw = list(class_table("cifar10"))[:9]
    with pytest.raises(ValueError, match=r"label 9 on disk is '<none>'.*'truck' \(9 classes on disk, 10 expected"):
        display_names("cifar10", "CIFAR-10", raw)


def test_cifar100_size_groups_are_the_papers_classes():
    groups = load_groups("cifar100_size", names("cifar100"))
    assert groups.groups == {"larger": (15, 42, 43, 97), "smaller": (36, 65, 74, 80)} and groups.ordered
    assert groups.text("larger", "smaller") == ("The first image contains a larger animal, "
                                                "while the second contains a smaller animal.")


def test_flowers_colour_groups_by_name_not_the_authors_indices():
    flowers = names("flowers102")
    assert [flowers[i] for i in (2, 7, 4, 6, 10, 19)] == ["canterbury bells", "bird of paradise", "english marigold",
                                                           "moon orchid", "snapdragon", "giant white arum lily"]
    groups = load_groups("flowers102_colour", flowers).groups
    assert 2 not in groups["blue"] and 7 not in groups["blue"]  # the authors' "blue" classes are not blue flowers
    assert not {4, 6, 10, 19} & set(groups["yellow"])
    assert {flowers.index("sunflower"), flowers.index("daffodil"), flowers.index("yellow iris")} == {53, 41, 14}
    assert {53, 41, 14} <= set(groups["yellow"]) and flowers.index("stemless gentian") in groups["blue"]


def test_a_group_name_that_does_not_resolve_fails_loudly():
    renamed = [("camels" if c == "camel" else c) for c in names("cifar100")]
    with pytest.raises(UnknownName, match=r"cifar100_size.*'camel' \(closest: \['camels'"):
        load_groups("cifar100_size", renamed)


def test_attribute_groups_need_the_table():
    with pytest.raises(ValueError, match="AttributeTable"):
        load_groups("awa2_size", names("awa2"))


@pytest.mark.parametrize("dataset", COMPARATIVE_DATASETS)
def test_shipped_comparatives_resolve_by_name(dataset):
    comparatives = load_comparatives(dataset, names(dataset))
    assert 10 <= len(comparatives) <= 40
    assert all(c.first != c.second and c.text.startswith("The first image shows ") for c in comparatives)
    assert len({(c.first, c.second) for c in comparatives}) == len(comparatives)


def test_eurosat_comparatives_cover_every_class():
    comparatives = load_comparatives("eurosat", names("eurosat"))
    assert {k for c in comparatives for k in (c.first, c.second)} == set(range(10))


def test_shipped_predicates_and_nonvisual_list():
    data = load_json(ATTRIBUTES_FILE)
    predicates = list(data["predicates"])
    assert len(predicates) == 85 and predicates[14] == "big" and predicates[15] == "small"
    resolve_names(data["nonvisual"], predicates, "nonvisual")
    assert {"smelly", "fast", "meat", "nocturnal"} <= set(data["nonvisual"])
    assert not {"big", "small", "black", "stripes", "spots"} & set(data["nonvisual"])


def small_table() -> AttributeTable:
    matrix = np.array([[1, 0, 1, 1, 0],   # cat: black, big, smelly
                       [0, 1, 0, 1, 1],   # dog: white, smelly, small
                       [1, 0, 0, 1, 0]], dtype=bool)  # crow: black, smelly
    return AttributeTable(("cat", "dog", "crow"), ("black", "white", "big", "smelly", "small"),
                          ("black", "white", "big", "smelly", "small"), matrix)


def test_attribute_table_by_name():
    table = small_table()
    assert table.column("big").tolist() == [True, False, False]
    reduced = table.without(["smelly"])
    assert reduced.predicates == ("black", "white", "big", "small") and reduced.matrix.shape == (3, 4)
    with pytest.raises(UnknownName, match="'smell'"):
        table.without(["smell"])


def test_visual_attributes_drop_the_listed_predicates_by_name():
    predicates = tuple(load_json(ATTRIBUTES_FILE)["predicates"])
    table = AttributeTable(("a",), predicates, predicates, np.ones((1, 85), dtype=bool))
    visual = visual_attributes(table)
    assert set(visual.predicates) == set(predicates) - set(load_json(ATTRIBUTES_FILE)["nonvisual"])
    assert visual.matrix.shape == (1, len(visual.predicates))


def test_attribute_difference_text():
    table = small_table()
    assert attribute_difference_text(table, 0, 1) == ("The first image has attributes of black, big, "
                                                      "while the second image has attributes of white, small.")
    assert attribute_difference_text(table, 0, 1, max_attributes=1) == (
        "The first image has attributes of black, while the second image has attributes of white.")
    assert attribute_difference_text(table, 0, 2) is None  # crow has nothing cat lacks
