"""Difference pair sets as pure functions of labels: hand-computed cases and invariances."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pcclip.datasets import AttributeTable, ClassGroups, attribute_pairs, class_pairs, draw_images, group_pairs
from pcclip.datasets import random_pairs
from pcclip.datasets.awa2 import attribute_difference_text
from pcclip.evaluation.difference import difference_accuracy

SIZE = ClassGroups("size", "The first image contains a {first} animal, while the second contains a {second} animal.",
                   {"larger": (0, 1), "smaller": (2,)}, ordered=True)


def test_draw_images_is_seeded_distinct_and_eligible():
    labels = np.array([0, 1, 2, 3] * 25)
    a = draw_images(labels, [1, 3], n_images=20, seed=4)
    assert np.array_equal(a, draw_images(labels, [1, 3], n_images=20, seed=4))
    assert len(set(a.tolist())) == 20 and set(labels[a].tolist()) <= {1, 3}
    assert not np.array_equal(a, draw_images(labels, [1, 3], n_images=20, seed=5))
    with pytest.raises(ValueError, match="cannot draw 51 images: 50 eligible"):
        draw_images(labels, [1, 3], n_images=51, seed=0)


def test_class_pairs_hand_computed():
    i1, i2 = class_pairs(np.array([0, 1, 2]), np.array([0, 0, 1]))
    assert list(zip(i1.tolist(), i2.tolist())) == [(0, 2), (1, 2), (2, 0), (2, 1)]


def test_group_pairs_hand_computed():
    labels = np.array([0, 2, 1, 3, 2])  # class 3 is in no group; classes 0 and 1 share "larger"
    pairs = group_pairs(labels, SIZE, n_images=4, seed=0)
    assert list(zip(pairs.idx1.tolist(), pairs.idx2.tolist())) == [(0, 1), (0, 4), (1, 0), (1, 2), (2, 1), (2, 4),
                                                                   (4, 0), (4, 2)]
    larger = "The first image contains a larger animal, while the second contains a smaller animal."
    smaller = "The first image contains a smaller animal, while the second contains a larger animal."
    assert pairs.texts == [larger, larger, smaller, smaller, larger, larger, smaller, smaller]
    assert pairs.reversed_texts == [smaller, smaller, larger, larger, smaller, smaller, larger, larger]
    assert pairs.sign.tolist() == [1, 1, -1, -1, 1, 1, -1, -1] and pairs.attribute == "size"


def test_unordered_groups_have_zero_sign():
    colour = ClassGroups("colour", "{first} vs {second}", {"blue": (0,), "yellow": (1,)})
    pairs = group_pairs(np.array([0, 1, 0, 1]), colour, n_images=4, seed=0)
    assert len(pairs) == 8 and pairs.sign.tolist() == [0] * 8 and set(pairs.texts) == {"blue vs yellow",
                                                                                      "yellow vs blue"}


def test_pair_sets_are_symmetric():
    labels = np.random.default_rng(0).integers(0, 3, 60)
    pairs = group_pairs(labels, SIZE, n_images=30, seed=1)
    forward = dict(zip(zip(pairs.idx1.tolist(), pairs.idx2.tolist()), pairs.texts))
    for (a, b), rev in zip(zip(pairs.idx1.tolist(), pairs.idx2.tolist()), pairs.reversed_texts):
        assert forward[(b, a)] == rev


def test_attribute_pairs_skip_classes_with_nothing_to_describe():
    table = AttributeTable(("cat", "dog", "crow"), ("black", "white", "big"), ("black", "white", "big"),
                           np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=bool))
    pairs = attribute_pairs(np.array([0, 1, 2]), table, n_images=3, seed=0)
    # cat-crow: crow has nothing cat lacks, so (0, 2) and (2, 0) are left out
    assert list(zip(pairs.idx1.tolist(), pairs.idx2.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert pairs.texts[0] == ("The first image has attributes of black, big, "
                              "while the second image has attributes of white.")
    assert pairs.reversed_texts[0] == pairs.texts[1] and pairs.sign.tolist() == [0, 0, 0, 0]


def test_random_pairs():
    labels = np.array([0, 0, 1, 2])
    a, b = random_pairs(labels, n_pairs=10, seed=3)  # 16 - (4 + 1 + 1) = 10 pairs exist: all of them
    assert sorted(zip(a.tolist(), b.tolist())) == sorted(
        (i, j) for i in range(4) for j in range(4) if labels[i] != labels[j])
    c, d = random_pairs(labels, n_pairs=4, seed=3)
    assert np.array_equal(c, random_pairs(labels, 4, 3)[0]) and np.array_equal(d, random_pairs(labels, 4, 3)[1])
    with pytest.raises(ValueError, match="only 10 exist"):
        random_pairs(labels, n_pairs=11, seed=0)


def test_unordered_pairs_keep_one_order_per_pair_and_let_an_order_bias_pass():
    """pairs="unordered" (the authors' i < j) keeps each pair once, the earlier image first; "ordered" adds the
    mirror. A model blind to the text whose embeddings drift with the image index scores exactly chance on
    ordered pairs and 1.0 on unordered ones: the bias the ordered default cancels."""
    labels = np.array([0, 2, 1, 0, 2, 1, 0, 2])
    both = group_pairs(labels, SIZE, n_images=8, seed=0)
    once = group_pairs(labels, SIZE, n_images=8, seed=0, pairs="unordered")
    ordered, unordered = (list(zip(p.idx1.tolist(), p.idx2.tolist())) for p in (both, once))
    assert all(a < b for a, b in unordered) and len(set(unordered)) == len(unordered) == len(ordered) // 2
    assert set(unordered) | {(b, a) for a, b in unordered} == set(ordered)
    assert dict(zip(unordered, once.texts)) == {p: t for p, t in zip(ordered, both.texts) if p in set(unordered)}
    angle = 0.1 * torch.arange(len(labels), dtype=torch.float32)
    images = torch.stack([angle.cos(), angle.sin()], dim=1)
    for pairs, want in ((both, 0.5), (once, 1.0)):
        text = torch.tensor([[1.0, 0.0]]).expand(len(pairs), 2)
        assert difference_accuracy(text, images[pairs.idx1], images[pairs.idx2]) == want
    with pytest.raises(ValueError, match="pairs='i<j'"):
        class_pairs(np.arange(3), np.arange(3), pairs="i<j")


def test_attribute_cap_names_at_most_max_attributes_per_side_and_0_names_all():
    table = AttributeTable(("a", "b"), tuple("pqrstuvw"), tuple("PQRSTUVW"),
                           np.array([[1, 1, 1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0, 1]], dtype=bool))
    capped, full = (attribute_difference_text(table, 0, 1, k) for k in (5, 0))
    assert capped == "The first image has attributes of P, Q, R, S, T, while the second image has attributes of W."
    assert full == ("The first image has attributes of P, Q, R, S, T, U, V, "
                    "while the second image has attributes of W.")
    assert attribute_difference_text(table, 0, 1, 2).startswith("The first image has attributes of P, Q, while")
    with pytest.raises(ValueError, match="0 for every differing attribute"):
        attribute_difference_text(table, 0, 1, -1)
