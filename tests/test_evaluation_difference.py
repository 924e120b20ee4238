"""Difference-based classification against hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pcclip.datasets.pairset import PairSet
from pcclip.embeddings import difference_vectors, normalize
from pcclip.evaluation.difference import (_batch, _hits, difference_accuracy, difference_scores, difference_table,
                                          encode_texts, mean_and_stderr, two_way_accuracy)


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_scores_follow_the_normalised_difference():
    # difference of [3,0] and [0,1] is normalize([1,-1]) whatever the scales
    e1, e2 = t([[3, 0]] * 3), t([[0, 1]] * 3)
    scores = difference_scores(t([[1, 0], [0, 1], [1, 1]]), e1, e2)
    assert scores.tolist() == pytest.approx([math.sqrt(0.5), -math.sqrt(0.5), 0.0], abs=1e-6)


def test_accuracy_counts_only_strictly_positive_cosines():
    e1, e2 = t([[3, 0]] * 3), t([[0, 1]] * 3)
    # one right, one wrong, one exactly orthogonal (a tie counts as wrong)
    assert difference_accuracy(t([[1, 0], [0, 1], [1, 1]]), e1, e2) == pytest.approx(1 / 3)


def test_identical_images_have_no_direction_and_score_wrong():
    e = t([[1, 2]])
    assert difference_scores(t([[1, 0]]), e, 2 * e).tolist() == [0.0]
    assert difference_accuracy(t([[1, 0]]), e, e) == 0.0


def test_two_way_needs_the_true_text_to_beat_its_twin():
    e1, e2 = t([[1, 0], [1, 0]]), t([[0, 1], [0, 1]])
    true, rev = t([[1, 0], [1, 0]]), t([[0, 1], [1, 0]])  # second pair: twin identical -> tie -> wrong
    assert two_way_accuracy(true, rev, e1, e2) == 0.5


def test_degenerate_inputs_raise_clear_errors():
    empty = torch.zeros(0, 2)
    with pytest.raises(ValueError, match="empty pair list"):
        difference_accuracy(empty, empty, empty)
    with pytest.raises(ValueError, match="NaN"):
        difference_accuracy(t([[1, 0]]), t([[float("nan"), 0]]), t([[0, 1]]))
    with pytest.raises(ValueError, match="same"):
        difference_accuracy(t([[1, 0]]), t([[1, 0], [0, 1]]), t([[0, 1], [1, 0]]))


def test_mean_and_standard_error():
    mean, se = mean_and_stderr([0.5, 0.7])
    assert mean == pytest.approx(0.6) and se == pytest.approx(0.1)
    mean, se = mean_and_stderr([0.8])
    assert mean == 0.8 and math.isnan(se)
    with pytest.raises(ValueError, match="at least one seed"):
        mean_and_stderr([])
    assert mean_and_stderr([0.5, 0.7], ddof=0) == pytest.approx((0.6, 0.1 / math.sqrt(2)))  # the authors' np.std
    assert mean_and_stderr([0.8], ddof=0) == (0.8, 0.0)
    with pytest.raises(ValueError, match="se_ddof=2: use 1 .* or 0"):
        mean_and_stderr([0.5, 0.7], ddof=2)


def test_pairset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="must match"):
        PairSet(np.array([0, 1]), np.array([1, 0]), ["a"], np.array([1, -1]), attribute="size")


def test_encode_texts_encodes_each_distinct_text_once(text_tower):
    bundle = text_tower({"a": [1, 0], "b": [0, 2]})
    emb, rows = encode_texts(bundle, ["a", "b", "a", "a"])
    assert bundle.calls == [["a", "b"]]
    assert rows == {"a": 0, "b": 1} and emb.tolist() == [[1, 0], [0, 1]]


def test_difference_table_means_over_seeds_per_model(text_tower):
    images = t([[1, 0], [0, 1], [1, 1]])
    more, less = "first has more", "first has less"
    good = text_tower({more: [1, -1], less: [-1, 1]})
    flipped = text_tower({more: [-1, 1], less: [1, -1]})
    seed0 = PairSet(np.array([0, 1]), np.array([1, 0]), [more, less], np.array([1, -1]), [less, more], "x")
    # seed 1: pair (0, 2) differs by [0,-1]: "more" -> [1,-1] . [0,-1]/1 > 0 right; (2, 0) with "less" right
    seed1 = PairSet(np.array([0, 2]), np.array([2, 0]), [more, more], np.array([1, 1]), [less, less], "x")
    table = difference_table({"good": good, "flipped": flipped}, {"test": images},
                             {("test", "eval", "x"): [seed0, seed1]})
    rows = table.set_index("model")
    # good: seed0 2/2, seed1: (2,0) differs by [0,1]; "more" [1,-1] -> negative -> 1/2
    assert rows.loc["good", "accuracy"] == pytest.approx(0.75)
    assert rows.loc["good", "accuracy_se"] == pytest.approx(0.25)
    authors = difference_table({"good": text_tower({more: [1, -1], less: [-1, 1]})}, {"test": images},
                               {("test", "eval", "x"): [seed0, seed1]}, se_ddof=0).set_index("model")
    assert authors.loc["good", "accuracy_se"] == pytest.approx(0.25 / np.sqrt(2))  # np.std of [1, .5] / sqrt 2
    assert rows.loc["flipped", "accuracy"] == pytest.approx(0.25)
    assert rows.loc["good", "two_way"] == pytest.approx(0.75)
    assert rows.loc["good", "pairs"] == 2.0
    assert len(good.calls) == 1  # one encoding per model for all sets and seeds


def test_difference_table_names_a_missing_split(text_tower):
    pairs = PairSet(np.array([0]), np.array([1]), ["a"], np.array([1]))
    with pytest.raises(KeyError, match="holdout"):
        difference_table({"m": text_tower({"a": [1, 0]})}, {"test": t([[1, 0], [0, 1]])},
                         {("holdout", "eval", "x"): [pairs]})


def test_batched_table_equals_scoring_each_set_alone(text_tower):
    gen = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(6)]
    bundle = text_tower({w: torch.randn(4, generator=gen).tolist() for w in words})
    embeddings = {"a": torch.randn(10, 4, generator=gen), "b": torch.randn(7, 4, generator=gen)}
    rng = np.random.default_rng(0)

    def draw(n_images: int, n: int, twins: bool) -> PairSet:
        texts = [words[k] for k in rng.integers(0, 6, n)]
        return PairSet(rng.integers(0, n_images, n), rng.integers(0, n_images, n), texts, np.ones(n, dtype=int),
                       [words[(words.index(t) + 1) % 6] for t in texts] if twins else None)

    sets = {("a", "eval", "size"): [draw(10, 9, True), draw(10, 5, True)], ("b", "eval", "x"): [draw(7, 4, False)]}
    table = difference_table({"m": bundle}, embeddings, sets).set_index("split")
    for split, key in (("a", ("a", "eval", "size")), ("b", ("b", "eval", "x"))):
        emb, draws = embeddings[split], sets[key]
        expected = [difference_accuracy(bundle.encode_text(p.texts), emb[p.idx1], emb[p.idx2]) for p in draws]
        assert table.loc[split, "accuracy"] == pytest.approx(np.mean(expected))
    two = [two_way_accuracy(bundle.encode_text(p.texts), bundle.encode_text(p.reversed_texts),
                            embeddings["a"][p.idx1], embeddings["a"][p.idx2]) for p in sets[("a", "eval", "size")]]
    assert table.loc["a", "two_way"] == pytest.approx(np.mean(two))
    assert math.isnan(table.loc["b", "two_way"])  # no reversed texts: no two-way test


def test_difference_table_refuses_an_empty_draw(text_tower):
    empty = PairSet(np.array([], dtype=int), np.array([], dtype=int), [], np.array([], dtype=int))
    with pytest.raises(ValueError, match="empty pair list for \\('test', 'eval', 'x'\\)"):
        difference_table({"m": text_tower({})}, {"test": t([[1, 0]])}, {("test", "eval", "x"): [empty]})


def test_difference_table_names_nan_embeddings(text_tower):
    pairs = PairSet(np.array([0]), np.array([1]), ["a"], np.array([1]))
    with pytest.raises(ValueError, match="image embeddings of 'test' contains NaN"):
        difference_table({"m": text_tower({"a": [1, 0]})}, {"test": t([[1, 0], [float("nan"), 1]])},
                         {("test", "eval", "x"): [pairs]})
    with pytest.raises(ValueError, match="text embeddings of model 'm' contains NaN"):
        difference_table({"m": text_tower({"a": [float("nan"), 0]})}, {"test": t([[1, 0], [0, 1]])},
                         {("test", "eval", "x"): [pairs]})


def test_sets_describing_the_same_pairs_share_their_differences_and_chunks_change_nothing(text_tower):
    """Families and frames describe the same pairs in other words: each pair is differenced once for all sets and
    models, and scoring in chunks of any size gives the same hits."""
    gen = torch.Generator().manual_seed(1)
    words = [f"w{i}" for i in range(4)]
    bundle = text_tower({w: torch.randn(3, generator=gen).tolist() for w in words})
    images = torch.randn(6, 3, generator=gen)
    idx1, idx2 = np.array([0, 1, 2, 3, 4]), np.array([5, 4, 3, 2, 1])
    sets = {("test", phrasing, "x"): [PairSet(idx1, idx2, [words[k], words[k + 1]] * 2 + [words[k]], np.ones(5, int),
                                              [words[3 - k]] * 5, "x")] for k, phrasing in enumerate(("a", "b", "c"))}
    batch = _batch(sets, {"test": images})
    assert len(batch.diffs) == 5 and len(batch.pairs) == 15
    torch.testing.assert_close(batch.diffs[batch.pairs], difference_vectors(images[np.tile(idx1, 3)],
                                                                            images[np.tile(idx2, 3)]))
    text_emb = normalize(bundle.encode_text(batch.unique))
    whole = _hits(batch, text_emb)
    for chunk in (1, 2, 4, 7):
        for part, reference in zip(_hits(batch, text_emb, chunk=chunk), whole):
            np.testing.assert_array_equal(part, reference)
