"""Attribute ranking tasks for both sources: AwA2's continuous predicate matrix read from the rehearsal
fixtures, AwA2 classes ranked by it, and DiffWorld's test images as notebook 03 ranked them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from pcclip.cache import embed_split
from pcclip.datasets import load_dataset, load_predicate_strengths
from pcclip.datasets.awa2 import ATTRIBUTES_FILE
from pcclip.evaluation.diffworld_sets import direction_texts
from pcclip.evaluation.headroom import class_means
from pcclip.evaluation.prompts import load_ranking_texts
from pcclip.evaluation.ranking import ranking_table
from pcclip.evaluation.tasks import ranking_tasks
from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.rehearsal import fixtures
from pcclip.rehearsal.draw import object_extent
from pcclip.resources import load_json
from pcclip.world import CONTINUOUS, build_split

PREDICATES = list(load_json(ATTRIBUTES_FILE)["predicates"])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The rehearsal's AwA2 only, two images per class."""
    path = tmp_path_factory.mktemp("rehearsal_awa2")
    fixtures.write_fixtures(path, seed=0, sizes=fixtures.FixtureSizes(awa2=2), datasets=("awa2",))
    return path


def _rehearsal(root, **overrides):
    return load_profile("rehearsal", {"data_root": str(root), **overrides})


def test_continuous_matrix_follows_the_loaders_class_order(root):
    data = load_dataset("awa2", root, transform=np.asarray)
    strengths = load_predicate_strengths(data.folder)
    assert strengths.classes == data.raw_names and strengths.predicates == tuple(PREDICATES)
    assert list(data.raw_names) != sorted(data.raw_names)  # classes.txt order, not the authors' folder order
    # the sizes the fixture drew per class (its awa2 generator's first draw), in label order
    drawn = np.random.default_rng([0, fixtures.DATASETS.index("awa2")]).permutation(np.linspace(0, 1, 50))
    assert strengths.column("big") == pytest.approx(100 * drawn, abs=0.006)
    assert strengths.column("small") == pytest.approx(100 * (1 - drawn), abs=0.006)
    area = np.array([object_extent(data.dataset[i][0]) for i in range(len(data))])
    class_area = np.array([area[data.labels == c].mean() for c in range(50)])
    assert kendalltau(strengths.column("big"), class_area)[0] > 0.7  # the pixels agree with the matrix


def test_bad_continuous_matrix_names_the_file(tmp_path, root):
    folder = tmp_path / "Animals_with_Attributes2"
    folder.mkdir()
    for name in ("classes.txt", "predicates.txt"):
        (folder / name).write_text((root / "Animals_with_Attributes2" / name).read_text())
    with pytest.raises(FileNotFoundError, match="predicate-matrix-continuous.txt"):
        load_predicate_strengths(folder)
    np.savetxt(folder / "predicate-matrix-continuous.txt", np.zeros((50, 84)))
    with pytest.raises(ValueError, match=r"continuous.txt: expected a real matrix of shape \(50, 85\)"):
        load_predicate_strengths(folder)


def test_rehearsal_ranks_awa2_classes_by_the_big_predicate(root, tiny_bundle):
    profile = _rehearsal(root)
    [task] = ranking_tasks(profile, run_paths("rehearsal"), tiny_bundle)
    data = load_dataset("awa2", root)
    strengths = load_predicate_strengths(data.folder)
    predicate, positive, negative = load_ranking_texts("awa2")["size"]
    assert (task.dataset, task.split, task.attribute, predicate) == ("awa2", "all", "size", "big")
    assert task.items == data.classnames and tuple(task.image_emb.shape) == (50, 128)
    assert task.truth.tolist() == strengths.column("big").tolist()
    assert (task.positive, task.negative) == (positive, negative) and "larger" in positive[0]
    # one item per class: the mean of that class's normalised image embeddings
    images = torch.stack([tiny_bundle.preprocess(data.dataset[i][0]) for i in np.flatnonzero(data.labels == 7)])
    with torch.no_grad():
        emb = torch.nn.functional.normalize(tiny_bundle.model.encode_image(images).float(), dim=-1)
    assert task.image_emb[7].tolist() == pytest.approx(emb.mean(0).tolist(), abs=1e-4)
    table, _ = ranking_table({"base": tiny_bundle}, [task])
    assert table[["dataset", "split", "attribute", "model"]].values.tolist() == [["awa2", "all", "size", "base"]]
    assert -1 <= table.kendall_tau[0] <= 1


def test_paper_ranking_is_empty_without_awa2(root, tiny_bundle):
    profile = _rehearsal(root, **{"eval.datasets": "cifar100"})
    with pytest.warns(UserWarning, match="'awa2' is not in eval.datasets"):
        assert ranking_tasks(profile, run_paths("rehearsal"), tiny_bundle) == []


def test_diffworld_tasks_are_notebook_03s_texts_truth_and_images(tiny_bundle, text_tower):
    profile = load_profile("smoke", {"world.n_train": 64, "world.n_val": 30, "world.n_test": 40,
                                     "world.n_holdout": 20})
    paths = run_paths("smoke")
    tasks = ranking_tasks(profile, paths, tiny_bundle)
    test = build_split(profile.world, "test")
    emb = embed_split(tiny_bundle, test, paths.cache, profile.cache, profile.model.precision)
    assert [t.attribute for t in tasks] == list(CONTINUOUS)
    for task in tasks:
        assert (task.dataset, task.split, task.items) == ("diffworld", "test", None)
        texts = direction_texts(task.attribute, profile.eval.direction_texts, profile.seed)
        assert (task.positive, task.negative) == texts
        assert task.truth.tolist() == getattr(test.records, task.attribute).tolist()
        assert torch.equal(task.image_emb, emb)
    # notebook 03 encoded every attribute's (positive + negative) texts in one call, in CONTINUOUS order
    tower = text_tower(default=[1.0] + [0.0] * 127)
    tower.table = {t: torch.randn(128) for task in tasks for t in task.positive + task.negative}
    ranking_table({"m": tower}, tasks)
    assert tower.calls == [list(dict.fromkeys(t for task in tasks for t in task.positive + task.negative))]
