"""Zero-shot classification: open_clip equality, metrics on hand-built cases, confusions."""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from pcclip.evaluation.zeroshot import (classification_metrics, confusion_matrix, described_classifier, predict,
                                        per_class_accuracy, top_confusions, zero_shot_classifier)

EYE = torch.eye(3)
NAMES = ["red", "green", "blue"]


def test_same_classifier_as_open_clip(tiny_bundle):
    classes, templates = ["circle", "ring", "star"], ["a {}", "a photo of a {}", "there is a big {}"]
    ours = zero_shot_classifier(tiny_bundle, classes, templates)
    theirs = open_clip.build_zero_shot_classifier(tiny_bundle.model, tiny_bundle.tokenizer, classes, templates,
                                                  num_classes_per_batch=2)
    assert ours.shape == (3, tiny_bundle.model.text_projection.shape[1])
    torch.testing.assert_close(ours, theirs.T, atol=1e-6, rtol=1e-5)


def test_ties_go_to_the_lower_class_index():
    classifier = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert predict(torch.tensor([[1.0, 0.0]]), classifier, k=3).tolist() == [[0, 1, 2]]


def test_metrics_on_a_hand_built_case():
    # image rows point at classes 0, 1, 1, 2, 0 ; labels 0, 1, 2, 2, 1
    images = torch.tensor([[5.0, 0, 0], [0, 1, 0], [0, 2, 1], [0, 0, 1], [1, 0.5, 0.2]])
    labels = np.array([0, 1, 2, 2, 1])
    m = classification_metrics(images, labels, EYE, NAMES)
    assert m["acc1"] == pytest.approx(3 / 5)
    assert m["acc5"] == 1.0  # min(5, 3) guesses cover every class
    assert (m["acc/red"], m["acc/green"], m["acc/blue"]) == (1.0, 0.5, 0.5)
    assert m["mean_per_class"] == pytest.approx(2 / 3)
    assert m["worst_class"] == 0.5 and m["worst_class_name"] == "green"  # tie -> first class


def test_per_class_accuracy_leaves_absent_classes_out():
    acc = per_class_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert acc[:2].tolist() == [1.0, 0.5] and np.isnan(acc[2])
    m = classification_metrics(torch.tensor([[1.0, 0, 0], [0, 1, 0]]), np.array([0, 1]), EYE, NAMES)
    assert "acc/blue" not in m and m["worst_class"] == 1.0


def test_degenerate_inputs_raise():
    with pytest.raises(ValueError, match="at least 2 classes"):
        classification_metrics(torch.ones(2, 3), np.array([0, 0]), EYE[:1], ["red"])
    with pytest.raises(ValueError, match="no labelled images"):
        classification_metrics(torch.ones(0, 3), np.array([], dtype=int), EYE, NAMES)
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics(torch.full((1, 3), float("nan")), np.array([0]), EYE, NAMES)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        classification_metrics(torch.ones(1, 3), np.array([3]), EYE, NAMES)
    with pytest.raises(ValueError, match="class names"):
        classification_metrics(torch.ones(1, 3), np.array([0]), EYE, NAMES[:2])


def test_confusion_matrix_and_top_confusions():
    cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    big = np.array([[5, 2, 0], [3, 4, 3], [0, 0, 7]])
    top = top_confusions(big, NAMES, k=4)
    # equal counts ordered by (true, predicted); only three cells hold errors
    assert top[["true", "predicted", "count"]].values.tolist() == [
        ["green", "red", 3], ["green", "blue", 3], ["red", "green", 2]]
    assert top["rate"].tolist() == pytest.approx([0.3, 0.3, 2 / 7])
    assert top_confusions(np.diag([3, 3, 3]), NAMES).empty


def test_described_classifier_uses_the_extended_prompt(text_tower):
    bundle = text_tower(default=[1.0, 1.0])
    described_classifier(bundle, ["ring"], {"ring": "A round outline."})
    assert bundle.texts == ["This is a photo of a ring. A round outline."]
    with pytest.raises(KeyError, match="star"):
        described_classifier(bundle, ["ring", "star"], {"ring": "A round outline."})
