"""Notebook 00's library: the same calls describe a DiffWorld and a paper profile."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pcclip.base_overview import base_rows, data_overview, training_sample, zero_shot_overview, ZeroShotSet
from pcclip.evaluation.tasks import ClassificationTask
from pcclip.profiles import load_profile


def test_data_overview_and_training_sample_of_diffworld():
    smoke = load_profile("smoke")
    table = data_overview(smoke).set_index("set")
    assert table.loc["diffworld train", "images"] == smoke.world.n_train
    assert table.loc["diffworld holdout", "note"].startswith("held out: ")
    assert table.loc["diffworld holdout", "note"].count(":") == 1 + len(smoke.world.holdout)
    images, captions = training_sample(smoke, n=4)
    assert images.shape == (4, smoke.world.image_size, smoke.world.image_size, 3) and images.dtype == np.uint8
    assert len(captions) == 4 and all(isinstance(c, str) and c for c in captions)


def test_zero_shot_overview_scores_each_set_and_its_rows_carry_identity(text_tower):
    # two classes whose prompts embed along the two axes; images on the axes (one of class 1 misplaced)
    bundle = text_tower({"a photo of a cat": [1.0, 0.0], "a photo of a dog": [0.0, 1.0]})
    emb = torch.tensor([[1.0, 0.1], [0.9, 0.0], [0.1, 1.0], [1.0, 0.2]])
    task = ClassificationTask("pets", emb, np.array([0, 0, 1, 1]), ["cat", "dog"], ["a photo of a {}"], [], None)
    summary, per_class, predictions = zero_shot_overview(bundle, [ZeroShotSet("pets", "test", "", task)])
    assert summary.acc1.tolist() == [0.75] and summary.worst_class.tolist() == [0.5]
    assert summary.worst_class_name.tolist() == ["dog"] and predictions[0].tolist() == [0, 0, 1, 0]
    assert per_class.set_index("class").acc.to_dict() == {"cat": 1.0, "dog": 0.5}
    rows = base_rows(summary, n_params=10, history=None).set_index(["task", "dataset", "split", "metric"])
    assert rows.loc[("zero_shot", "pets", "test", "acc1"), "value"] == 0.75
    assert rows.loc[("zero_shot", "pets", "test", "acc1"), "n"] == 4
    assert rows.loc[("pretrain", "", "", "n_params"), "value"] == 10
    assert np.isnan(rows.loc[("pretrain", "", "", "final_loss"), "value"])  # loaded weights: no pretraining
    assert set(rows.model) == {"base"}


def test_paper_overview_needs_its_data_root(tmp_path):
    paper = load_profile("paper", {"data_root": str(tmp_path / "absent")})
    with pytest.raises(FileNotFoundError, match="data root"):
        data_overview(paper)
