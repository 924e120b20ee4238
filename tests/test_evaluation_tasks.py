"""Evaluation tasks for both worlds: DiffWorld splits, and a paper dataset read from a fixture on disk."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pcclip.datasets import PAIR_SETS, DatasetNotFound, class_table
from pcclip.evaluation import tasks
from pcclip.evaluation.task_tables import comparative_tables, variant_tables
from pcclip.evaluation.difference import DIFFERENCE_COLUMNS, difference_table
from pcclip.evaluation.tables import difference_rows, structures_overview
from pcclip.evaluation.tasks import classification_tasks, difference_places, difference_tasks, structure_tasks
from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.rehearsal import chat_server, layouts
from pcclip.world import CONTINUOUS, SHAPES, build_split
from pcclip.world.phrasing import STRUCTURES, heldout_frame_ids

LARGER, SMALLER = ["camel", "leopard", "lion", "wolf"], ["hamster", "rabbit", "shrew", "squirrel"]


def write_cifar100(root, test_labels: list[int], train_labels: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> None:
    """The python-pickle layout of cifar-100-python (train, test, meta) with random pixels."""
    rng = np.random.default_rng(0)
    train, test = ((rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8), labels)
                   for labels in (train_labels, test_labels))
    layouts.write_cifar100(root, list(class_table("cifar100")), train, test)


def test_diffworld_tasks(tiny_bundle):
    profile = load_profile("smoke", {"world.n_train": 64, "world.n_val": 30, "world.n_test": 40,
                                     "world.n_holdout": 20, "eval.n_images": 10})
    task, technical = classification_tasks(profile, run_paths("smoke"), tiny_bundle)
    test, train = build_split(profile.world, "test"), build_split(profile.world, "train")
    assert tuple(task.fit_emb.shape) == (64, 128) and task.fit_labels.tolist() == train.records.shape.tolist()
    val = build_split(profile.world, "val")  # alpha is chosen on val, never on test
    assert tuple(task.val_emb.shape) == (30, 128)
    assert task.val_labels.tolist() == val.records.shape.tolist()
    assert technical.val_emb is task.val_emb and technical.fit_emb is task.fit_emb
    assert task.name == "diffworld" and task.classnames == list(SHAPES)
    assert task.labels.tolist() == test.records.shape.tolist() and tuple(task.image_emb.shape) == (40, 128)
    assert task.comparatives and set(task.descriptions) == set(SHAPES)
    # the same images under labels no DiffWorld text uses, with comparatives in the world's words
    assert technical.name == "diffworld_technical" and technical.image_emb is task.image_emb
    renamed = {SHAPES[i]: label for i, label in enumerate(technical.classnames) if label != SHAPES[i]}
    assert renamed == {"ring": "annulus", "star": "pentagram"}
    for c in technical.comparatives:
        first, second = SHAPES[c.first], SHAPES[c.second]  # labels index SHAPES in order
        assert c.text == f"The first image shows a {first}, while the second shows a {second}.", c
    variants = variant_tables({"m": tiny_bundle}, [task, technical], profile.eval)  # val-chosen ones too
    assert variants.groupby("dataset", sort=False).variant.apply(list).to_dict() == {
        name: ["paper", "scaled", "paper_tuned", "val_scaled"] for name in ("diffworld", "diffworld_technical")}
    assert set(variants.loc[variants.variant == "paper", "alpha"]) == {profile.eval.alpha}
    sets, emb = difference_tasks(profile, run_paths("smoke"), tiny_bundle)
    assert {k[:2] for k in sets} == {("test", "eval"), ("holdout", "eval"), ("test", "train")}
    assert len(sets) == 3 * 6 and all(len(draws) == profile.eval.seeds for draws in sets.values())
    assert {k: tuple(v.shape) for k, v in emb.items()} == {"test": (40, 128), "holdout": (20, 128)}
    structures = structure_tasks(profile)  # the test pairs in every family of the grammar
    assert {k[1] for k in structures} == set(STRUCTURES) and {k[0] for k in structures} == {"test"}
    assert {k[2] for k in structures} == set(CONTINUOUS)
    assert np.array_equal(structures[("test", "negation", "size")][0].idx1, sets[("test", "eval", "size")][0].idx1)
    by_frame = structure_tasks(profile, per_frame=True)  # the same pairs in each held-out frame on its own
    assert {k[1] for k in by_frame} == set(heldout_frame_ids()) and {k[0] for k in by_frame} == {"test"}
    assert np.array_equal(by_frame[("test", "negation:2", "size")][0].idx1, sets[("test", "eval", "size")][0].idx1)
    assert structure_tasks(load_profile("paper"), per_frame=True) == {}


def test_held_out_structures_of_a_profile_without_a_grammar_are_none_and_say_so(tiny_bundle):
    """Notebook 03 runs one code path for every profile: for the paper profiles (no grammar) the structures
    table is empty with its columns, gives no metric rows and the overview says why; for DiffWorld the overview
    shows each family's size description and its accuracy per family."""
    paper = load_profile("paper")
    assert structure_tasks(paper) == {}
    empty = difference_table({"m": tiny_bundle}, {}, {})
    assert empty.empty and list(empty.columns) == list(DIFFERENCE_COLUMNS)
    assert difference_rows(empty, difference_places(paper, {}), task="structures").empty
    assert structures_overview({}, empty).startswith("no held-out structures: only DiffWorld's difference grammar")
    profile = load_profile("smoke", {"world.n_test": 40, "eval.n_images": 10, "eval.seeds": 1})
    structures = structure_tasks(profile)
    test = build_split(profile.world, "test")
    noise = torch.randn(len(test.records), 128, generator=torch.Generator().manual_seed(0))
    emb = {"test": torch.nn.functional.normalize(noise, dim=-1)}
    table = difference_table({"m": tiny_bundle}, emb, structures)
    shown = structures_overview(structures, table)
    for family in STRUCTURES:
        assert family in shown
    assert structures[("test", "negation", "size")][0].texts[0] in shown
    assert shown.count("accuracy:") == 1 and "two_way:" in shown


def test_paper_tasks_read_datasets_by_name(tmp_path, monkeypatch, tiny_bundle):
    monkeypatch.setattr(tasks, "PAIR_SETS", {"cifar100_size": PAIR_SETS["cifar100_size"]})
    names = list(class_table("cifar100"))
    labels = [names.index(n) for n in LARGER + SMALLER for _ in range(2)]
    write_cifar100(tmp_path, labels)
    overrides = {"data_root": str(tmp_path), "eval.datasets": "cifar100", "eval.n_images": 8, "eval.seeds": 2,
                 "eval.val_images": 4, "model.device": "cpu", "model.precision": "fp32", "cache.num_workers": 0}
    profile = load_profile("paper", overrides)
    [task] = classification_tasks(profile, run_paths("paper"), tiny_bundle)
    assert task.name == "cifar100" and task.labels.tolist() == labels and tuple(task.image_emb.shape) == (16, 128)
    assert task.templates == ["This is a photo of a {}"] and task.descriptions is None and task.fit_emb is None
    # alpha is chosen on 4 of the 6 training images, never on the test images
    assert tuple(task.val_emb.shape) == (4, 128) and len(set(task.val_labels.tolist())) == 4
    assert set(task.val_labels.tolist()) <= set(range(6))
    fixed = load_profile("paper", {**overrides, "eval.val_images": 0})
    assert classification_tasks(fixed, run_paths("paper"), tiny_bundle)[0].val_emb is None
    assert task.comparatives and all(0 <= c.first < 100 and 0 <= c.second < 100 for c in task.comparatives)
    sets, emb = difference_tasks(profile, run_paths("paper"), tiny_bundle)
    [(key, draws)] = sets.items()
    assert key == ("cifar100_size", "ground_truth", "cifar100_size") and len(draws) == 2
    larger = {names.index(n) for n in LARGER}
    for pairs in draws:  # every pair joins a larger and a smaller animal; sign +1 when the first is larger
        first_larger = np.isin(np.asarray(labels)[pairs.idx1], list(larger))
        assert (first_larger != np.isin(np.asarray(labels)[pairs.idx2], list(larger))).all()
        assert (pairs.sign == np.where(first_larger, 1, -1)).all()
    assert tuple(emb["cifar100_size"].shape) == (16, 128)


def test_paper_switches_reach_the_pair_sets_and_datasets(tmp_path, monkeypatch, tiny_bundle):
    """eval.pairs="unordered" halves every paper draw to its i < j pairs; eval.split_scheme="paper_random10"
    evaluates EuroSAT on a random tenth and tunes alpha on the other 90% (ours: every image, no tuning split)."""
    monkeypatch.setattr(tasks, "PAIR_SETS", {"cifar100_size": PAIR_SETS["cifar100_size"]})
    names = list(class_table("cifar100"))
    write_cifar100(tmp_path, [names.index(n) for n in LARGER + SMALLER for _ in range(2)])
    layouts.write_eurosat(tmp_path, list(class_table("eurosat")), [np.full((8, 8, 3), 5 * k, np.uint8)
                                                                   for k in range(40)], [k % 10 for k in range(40)])
    overrides = {"data_root": str(tmp_path), "eval.datasets": "cifar100,eurosat", "eval.n_images": 8,
                 "eval.seeds": 2, "eval.val_images": 4, "model.device": "cpu", "cache.num_workers": 0}
    paths = run_paths("paper")
    ordered, _ = difference_tasks(load_profile("paper", overrides), paths, tiny_bundle)
    unordered, _ = difference_tasks(load_profile("paper", {**overrides, "eval.pairs": "unordered"}), paths, tiny_bundle)
    for both, once in zip(*(sets[("cifar100_size", "ground_truth", "cifar100_size")] for sets in (ordered, unordered))):
        pairs = set(zip(once.idx1.tolist(), once.idx2.tolist()))
        assert all(a < b for a, b in pairs) and 2 * len(pairs) == len(both) == 2 * len(once)
        assert pairs | {(b, a) for a, b in pairs} == set(zip(both.idx1.tolist(), both.idx2.tolist()))
    ours = classification_tasks(load_profile("paper", overrides), paths, tiny_bundle)[1]
    theirs = classification_tasks(load_profile("paper", {**overrides, "eval.split_scheme": "paper_random10"}), paths,
                                  tiny_bundle)[1]
    assert ours.name == theirs.name == "eurosat" and (len(ours.labels), len(theirs.labels)) == (40, 4)
    assert ours.val_emb is None and tuple(theirs.val_emb.shape) == (4, 128)


def test_a_missing_tuning_split_says_how_to_do_without(tmp_path, tiny_bundle):
    folder = tmp_path / "food-101"  # the test split only: meta/train.json is missing
    meta = {c: [] for c in class_table("food101")}
    meta["waffles"], meta["apple_pie"] = ["waffles/7"], ["apple_pie/3"]
    (folder / "meta").mkdir(parents=True)
    (folder / "meta" / "test.json").write_text(json.dumps(meta))
    for rel in meta["waffles"] + meta["apple_pie"]:
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(folder / "images" / f"{rel}.jpg")
    overrides = {"data_root": str(tmp_path), "eval.datasets": "food101", "model.device": "cpu",
                 "model.precision": "fp32", "cache.num_workers": 0}
    with pytest.raises(DatasetNotFound, match=r"(?s)Food-101.*'train' split is read to choose.*eval.val_images=0"):
        classification_tasks(load_profile("paper", overrides), run_paths("paper"), tiny_bundle)
    [task] = classification_tasks(load_profile("paper", {**overrides, "eval.val_images": 0}), run_paths("paper"),
                                  tiny_bundle)
    assert task.val_emb is None and len(task.labels) == 2
    with pytest.raises(ValueError, match=r"eval.val_images=-1 \(allowed: >= 0\)"):
        classification_tasks(load_profile("paper", {**overrides, "eval.val_images": -1}), run_paths("paper"),
                             tiny_bundle)


def test_paper_task_names_a_missing_dataset(tmp_path, tiny_bundle):
    profile = load_profile("paper", {"data_root": str(tmp_path), "eval.datasets": "eurosat", "model.device": "cpu"})
    with pytest.raises(FileNotFoundError, match="EuroSAT"):
        classification_tasks(profile, run_paths("paper"), tiny_bundle)


def test_difference_places_name_each_sets_own_dataset_and_split():
    """Paper rows of notebook 03 carry the identity of notebook 02's check rows: the set's dataset and split."""
    paper = load_profile("rehearsal")
    keys = {(name, "ground_truth", name): [] for name in ("cifar100_size", "awa2_size")}
    keys[("cub200_llm", "llm", "cub200_llm")] = []
    places = tasks.difference_places(paper, keys)
    assert places == {"cifar100_size": ("cifar100", PAIR_SETS["cifar100_size"].split),
                      "awa2_size": ("awa2", PAIR_SETS["awa2_size"].split), "cub200_llm": ("cub200", tasks.CUB_SPLIT)}
    assert tasks.difference_places(load_profile("smoke"), {("holdout", "eval", "size"): []}) == {
        "holdout": ("diffworld", "holdout")}


def test_paper_task_with_llm_class_texts_per_model(tmp_path, tiny_bundle):
    names = list(class_table("cifar100"))
    write_cifar100(tmp_path, list(range(len(names))))  # one test image per class: every comparative has images
    with chat_server() as server:
        overrides = {"data_root": str(tmp_path), "eval.datasets": "cifar100", "eval.val_images": 4,
                     "model.device": "cpu", "model.precision": "fp32", "cache.num_workers": 0,
                     "synthesis.llm": server.model, "synthesis.base_url": server.url, "eval.comparatives": "llm",
                     "eval.comparatives_per_model": True, "eval.descriptions": "llm"}
        profile = load_profile("paper", overrides)
        [task] = classification_tasks(profile, run_paths("paper"), tiny_bundle, models=["base", "pcclip"])
        assert server.requests == 2 + len(names)  # a comparative set per model, a description per class
    assert set(task.model_comparatives) == {"base", "pcclip"} and task.comparatives == task.model_comparatives["base"]
    assert set(task.descriptions) == set(task.classnames) and task.val_emb is not None
    models = {"base": tiny_bundle, "pcclip": tiny_bundle}
    summary, curves, confusions = comparative_tables(models, [task], profile.eval)
    assert summary.model.tolist() == ["base", "pcclip"] and set(confusions["cifar100"]) == {"base", "pcclip"}
    assert set(curves.model) == {"base", "pcclip"}
    shared = replace(task, model_comparatives={m: task.comparatives for m in models})
    plain = replace(task, model_comparatives={})  # grouping by model changes nothing when the sets agree
    pd.testing.assert_frame_equal(comparative_tables(models, [shared], profile.eval)[0],
                                  comparative_tables(models, [plain], profile.eval)[0])
