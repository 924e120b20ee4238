"""DiffWorld difference sets: pairs, signs and descriptions from the ground truth."""
from __future__ import annotations

import numpy as np
import pytest

from pcclip.evaluation import diffworld_sets
from pcclip.evaluation.diffworld_sets import MIN_GAP, attribute_pairs, difference_sets, direction_texts
from pcclip.profiles import EvalConfig, WorldConfig
from pcclip.world import WorldSplit, make_records


def split_of(**values) -> WorldSplit:
    n = max(len(np.atleast_1d(v)) for v in values.values())
    cols = {"shape": "circle", "color": "red", "size": 0.5, "x": 0.5, "y": 0.5, "brightness": 0.5, **values}
    records = make_records(**cols)
    assert len(records) == n
    return WorldSplit("test", WorldConfig(n_train=4, n_val=4, n_test=n, n_holdout=4), records)


def test_continuous_pairs_keep_nameable_gaps_with_true_signs():
    split = split_of(size=[0.0, 0.2, 0.9])
    pairs = attribute_pairs(split, "size", n_images=3, seed=0)
    got = {(int(a), int(b)): int(s) for a, b, s in zip(pairs.idx1, pairs.idx2, pairs.sign)}
    # gaps: |0-0.2| = 0.2 < 1/3 is dropped; (0,2) and (1,2) in both orders remain
    assert got == {(0, 2): -1, (2, 0): 1, (1, 2): -1, (2, 1): 1}
    assert MIN_GAP == pytest.approx(1 / 3)


def test_categorical_pairs_differ_in_value_and_have_no_sign():
    split = split_of(shape=["ring", "ring", "star"])
    pairs = attribute_pairs(split, "shape", n_images=3, seed=0)
    assert sorted(zip(pairs.idx1.tolist(), pairs.idx2.tolist())) == [(0, 2), (1, 2), (2, 0), (2, 1)]
    assert pairs.sign.tolist() == [0, 0, 0, 0]
    for a, text in zip(pairs.idx1, pairs.texts):
        first = "ring" if a < 2 else "star"
        assert first in text and ("star" if first == "ring" else "ring") in text


def test_twins_share_the_phrasing_and_flip_the_meaning(monkeypatch):
    calls = []

    def fake(attribute, direction, rng, split="train"):
        phrasing = int(rng.integers(1000))
        calls.append(split)
        return f"{attribute} {direction:+d} phrasing {phrasing}"

    monkeypatch.setattr(diffworld_sets, "attribute_sentence", fake)
    pairs = attribute_pairs(split_of(x=[0.0, 0.5, 1.0]), "x", n_images=3, seed=1, phrasing_split="train",
                            phrasings=3)
    for sign, text, twin in zip(pairs.sign, pairs.texts, pairs.reversed_texts):
        assert text.startswith(f"x {sign:+d}") and twin.startswith(f"x {-sign:+d}")
        assert text.split()[-1] == twin.split()[-1]
    assert set(calls) == {"train"}
    assert len(calls) == 2 * 2 * 3  # two signs x (text, twin) x 3 phrasings, however many pairs


def test_same_images_for_every_attribute_and_deterministic():
    rng = np.random.default_rng(0)
    split = split_of(size=rng.random(40), brightness=rng.random(40), shape=rng.integers(0, 8, 40))
    a = attribute_pairs(split, "size", 10, seed=3)
    b = attribute_pairs(split, "brightness", 10, seed=3)
    c = attribute_pairs(split, "shape", 10, seed=3)
    assert len(set(np.concatenate([p.idx1 for p in (a, b, c)] + [p.idx2 for p in (a, b, c)]))) <= 10
    again = attribute_pairs(split, "size", 10, seed=3)
    assert again.texts == a.texts and (again.idx1 == a.idx1).all()


def test_eval_and_train_phrasings_do_not_overlap():
    rng = np.random.default_rng(1)
    split = split_of(size=rng.random(30), shape=rng.integers(0, 8, 30))
    for attribute in ("size", "shape"):
        held = set(attribute_pairs(split, attribute, 30, 0, "eval").texts)
        seen = set(attribute_pairs(split, attribute, 30, 0, "train").texts)
        assert held and seen and not held & seen


def test_bad_arguments_raise():
    split = split_of(size=[0.0, 1.0])
    with pytest.raises(ValueError, match="unknown attribute"):
        attribute_pairs(split, "weight", 2, 0)
    with pytest.raises(ValueError, match=r"n_images=5 must lie in \[2, 2\]"):
        attribute_pairs(split, "size", 5, 0)
    with pytest.raises(ValueError, match="phrasing_split"):
        attribute_pairs(split, "size", 2, 0, phrasing_split="test")
    with pytest.raises(ValueError, match="continuous"):
        direction_texts("shape", 3)


def test_difference_sets_cover_splits_phrasings_attributes_and_seeds():
    split = split_of(size=[0.0, 0.5, 1.0], shape=["ring", "star", "cross"])
    sets = difference_sets({"test": split}, EvalConfig(n_images=50, seeds=2, phrasings=2), ("size", "shape"))
    assert sorted(sets) == [("test", p, a) for p in ("eval", "train") for a in ("shape", "size")]
    assert all(len(draws) == 2 for draws in sets.values())
    positive, negative = direction_texts("size", 4)
    assert len(positive) == len(negative) == 4 and all(p != n for p, n in zip(positive, negative))


def test_unordered_pairs_keep_each_pair_once_in_draw_order():
    """eval.pairs="unordered": one order per pair (the earlier image of the draw first, the authors' i < j);
    "ordered": both. The same images either way, and the ordered set is the unordered one plus its mirror."""
    split = split_of(size=[0.0, 0.2, 0.9, 0.5, 1.0], shape=["ring", "ring", "star", "cross", "star"])
    for attribute in ("size", "shape"):
        both = attribute_pairs(split, attribute, n_images=5, seed=3)
        once = attribute_pairs(split, attribute, n_images=5, seed=3, pairs="unordered")
        ordered = set(zip(both.idx1.tolist(), both.idx2.tolist()))
        unordered = list(zip(once.idx1.tolist(), once.idx2.tolist()))
        assert len(unordered) == len(set(unordered)) == len(ordered) // 2 > 0
        assert {frozenset(p) for p in unordered} == {frozenset(p) for p in ordered}
        assert set(unordered) | {(b, a) for a, b in unordered} == ordered
        drawn = np.random.default_rng([3, 7]).choice(5, size=5, replace=False).tolist()  # the draw's order
        assert all(drawn.index(a) < drawn.index(b) for a, b in unordered)
        if attribute == "size":  # signs follow the kept order
            size = np.array([0.0, 0.2, 0.9, 0.5, 1.0])
            assert once.sign.tolist() == np.sign(size[once.idx1] - size[once.idx2]).astype(int).tolist()
    sets = difference_sets({"test": split}, EvalConfig(n_images=5, seeds=2, phrasings=2, pairs="unordered"), ("size",))
    for (_, phrasing, _), draws in sets.items():  # difference_sets passes eval.pairs on
        for seed, got in enumerate(draws):
            want = attribute_pairs(split, "size", 5, seed, phrasing, phrasings=2, pairs="unordered")
            assert got.idx1.tolist() == want.idx1.tolist() and got.idx2.tolist() == want.idx2.tolist()
            assert len(got) < len(attribute_pairs(split, "size", 5, seed, phrasing, phrasings=2))
    with pytest.raises(ValueError, match="pairs='both'.*eval.pairs"):
        attribute_pairs(split, "size", n_images=5, seed=3, pairs="both")
