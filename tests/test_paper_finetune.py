"""Notebook 02 on the paper source, on rehearsal fixtures: COCO training data in store order, the quick
check on the paper's difference sets, and `pcclip.distributed` through the same data; DiffWorld's check
keeps its scores and rows."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pcclip import distributed, runs
from pcclip.datasets import PAIR_SETS, difference_pairs, load_dataset
from pcclip.evaluation.check import CHECK_SETS, check_rows, check_scores, check_summary, finetune_check
from pcclip.evaluation.zeroshot import zero_shot_table
from pcclip.models import checkpoint_meta, save_clip
from pcclip.paths import RunPaths, run_paths
from pcclip.profiles import FORCE_ENV, REHEARSAL_LLM, load_profile
from pcclip.rehearsal import chat_server
from pcclip.rehearsal.fixtures import FixtureSizes, write_fixtures
from pcclip.results import IDENTITY
from pcclip.runs import prepare_data, run_data
from pcclip.synthesis import differences_path, load_records, synthesize
from pcclip.synthesis.store import meta_path

ANNOTATIONS = "coco/annotations/captions_train2017.json"
SIZES = FixtureSizes(coco_train=40, coco_val=5)


def _overrides(root) -> dict:
    return {"data_root": str(root / "data"), "synthesis.n_pairs": 60, "eval.n_images": 20,
            "eval.datasets": "cifar100,flowers102,awa2"}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """Fixture data (COCO and the three datasets of the paper's difference sets) and a store of pairs written
    by the openai writer against the rehearsal's chat server, under <root>/results."""
    root = tmp_path_factory.mktemp("paper02")
    write_fixtures(root / "data", seed=0, sizes=SIZES, datasets=("coco", "cifar100", "flowers102", "awa2"))
    with pytest.MonkeyPatch.context() as mp, chat_server(REHEARSAL_LLM) as server:
        mp.delenv(FORCE_ENV, raising=False)
        mp.setenv("PCCLIP_RESULTS", str(root / "results"))
        profile = load_profile("rehearsal", {**_overrides(root), "synthesis.base_url": server.url})
        synthesize(profile, run_paths("rehearsal"), progress=False)
    return root


@pytest.fixture
def profile(rehearsal, monkeypatch):
    monkeypatch.setenv("PCCLIP_RESULTS", str(rehearsal / "results"))
    return load_profile("rehearsal", _overrides(rehearsal))


def _coco_json(rehearsal) -> tuple[list[dict], dict[int, list[str]]]:
    """The annotation file's images in id order and each image's captions in annotation order."""
    data = json.loads((rehearsal / "data" / ANNOTATIONS).read_text())
    captions: dict[int, list[str]] = {}
    for ann in data["annotations"]:
        captions.setdefault(ann["image_id"], []).append(ann["caption"])
    return sorted(data["images"], key=lambda im: im["id"]), captions


def test_prepare_data_embeds_coco_in_the_order_the_pairs_index(rehearsal, profile, tiny_bundle):
    data = prepare_data(profile, run_paths("rehearsal"), tiny_bundle)
    images, captions = _coco_json(rehearsal)
    assert data.image_emb.shape == (len(images), 128) == (SIZES.coco_train, 128)

    accepted = [r for r in load_records(differences_path(run_paths("rehearsal"))) if r["accepted"]]
    assert 0 < len(data.texts) == len(accepted) <= 60
    assert data.texts == [r["text"] for r in accepted]
    ids = [im["id"] for im in images]
    assert [ids[i] for i in data.idx1.tolist()] == [r["image_id1"] for r in accepted]
    assert [ids[i] for i in data.idx2.tolist()] == [r["image_id2"] for r in accepted]

    expected = [(k, c) for k, im in enumerate(images) for c in captions[im["id"]]]
    assert list(zip(data.caption_idx.tolist(), data.caption_texts)) == expected
    assert len(expected) == 5 * SIZES.coco_train

    # row k is image k's file through the model's own preprocessing (the files differ in size)
    k = int(data.idx1[0])
    with Image.open(rehearsal / "data" / "coco" / "train2017" / images[k]["file_name"]) as im:
        x = tiny_bundle.preprocess(im.convert("RGB"))[None]
    with torch.no_grad():
        torch.testing.assert_close(tiny_bundle.model.encode_image(x)[0], data.image_emb[k], atol=1e-5, rtol=1e-4)
    assert not torch.equal(data.image_emb[k], data.image_emb[int(data.idx2[0])])


def _no_embedding(*args, **kwargs):
    raise AssertionError("images were embedded before the inputs were checked")


def test_prepare_data_refuses_bad_inputs_before_embedding(rehearsal, tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "embed_images", _no_embedding)
    paths = run_paths("rehearsal")  # the test's own empty results folder
    profile = load_profile("rehearsal", _overrides(rehearsal))
    with pytest.raises(FileNotFoundError, match=r"differences.jsonl not found: run notebook 01"):
        prepare_data(profile, paths, tiny_bundle)

    store = differences_path(RunPaths(rehearsal / "results" / "rehearsal"))  # the module's store
    paths.data.mkdir(parents=True)
    target = differences_path(paths)
    target.write_text("")
    meta_path(target).write_text(meta_path(store).read_text())
    with pytest.raises(ValueError, match=r"differences.jsonl holds no accepted difference pairs: rerun notebooks/01"):
        prepare_data(profile, paths, tiny_bundle)

    target.write_bytes(store.read_bytes())
    meta = json.loads(meta_path(store).read_text())
    meta_path(target).write_text(json.dumps({**meta, "source": "coco-captions_train2017-0123"}))
    with pytest.raises(ValueError, match=r"synthesised for the images 'coco-captions_train2017-0123'.*notebooks/01"):
        prepare_data(profile, paths, tiny_bundle)

    (tmp_path / "empty").mkdir()
    bare = load_profile("rehearsal", {**_overrides(rehearsal), "data_root": str(tmp_path / "empty")})
    with pytest.raises(FileNotFoundError, match=r"(?s)captions_train2017.json not found.*python -m pcclip.rehearsal"):
        prepare_data(bare, paths, tiny_bundle)


def test_paper_check_scores_each_set_on_its_first_draw(rehearsal, profile, tiny_bundle):
    paths = run_paths("rehearsal")
    check = finetune_check(profile, paths, tiny_bundle)
    assert set(CHECK_SETS) == set(PAIR_SETS) == set(check.pair_sets)
    for name, s in check.pair_sets.items():
        spec = PAIR_SETS[name]
        data = load_dataset(spec.dataset, rehearsal / "data", split=spec.split)
        first = difference_pairs(name, data, 20, seed=0)
        assert np.array_equal(s.pairs.idx1, first.idx1) and np.array_equal(s.pairs.idx2, first.idx2)
        assert len(s.image_emb) == len(data) and (s.dataset, s.split, s.attribute) == (spec.dataset, spec.split, name)

    scores = check_scores(tiny_bundle, check)
    assert set(scores) == {f"diff_{n}" for n in PAIR_SETS} | {"zero_shot_acc1"}
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in scores.values())
    # the same images the other way round: every pair's score changes sign (none is exactly 0)
    swapped = {n: replace(s, pairs=replace(s.pairs, idx1=s.pairs.idx2, idx2=s.pairs.idx1))
               for n, s in check.pair_sets.items()}
    flipped = check_scores(tiny_bundle, replace(check, pair_sets=swapped))
    for n in PAIR_SETS:
        assert scores[f"diff_{n}"] + flipped[f"diff_{n}"] == pytest.approx(1.0)
    # zero-shot on the first dataset of eval.datasets, as notebook 04's table scores it
    task = check.zero_shot
    table, _ = zero_shot_table({"base": tiny_bundle}, task.image_emb, task.labels, task.classnames, task.templates)
    assert task.name == "cifar100" and len(task.labels) == len(load_dataset("cifar100", rehearsal / "data"))
    assert scores["zero_shot_acc1"] == pytest.approx(float(table.acc1[0]))

    frame = pd.DataFrame({"base": scores, "pcclip": flipped}).T
    rows = check_rows(frame, check)
    assert not rows.duplicated([c for c in IDENTITY if c in rows]).any() and len(rows) == 2 * (len(PAIR_SETS) + 1)
    diff = rows[rows.task == "difference"].set_index(["attribute", "model"])
    assert diff.loc[("cifar100_size", "pcclip"), "value"] == pytest.approx(flipped["diff_cifar100_size"])
    assert diff.loc[("awa2_size", "base"), ["dataset", "split", "variant"]].tolist() == ["awa2", "all", "ground_truth"]
    assert diff.loc[("flowers102_colour", "base"), "n"] == len(check.pair_sets["flowers102_colour"])
    zero = rows[rows.task == "zero_shot"]
    assert set(zip(zero.dataset, zero.split, zero.attribute)) == {("cifar100", "test", "class")}
    assert list(check.figure_metrics) == ["diff_cifar100_size", "zero_shot_acc1", "diff_flowers102_colour"]
    assert check_summary(frame, check) == (
        f"CIFAR-100 size difference accuracy {scores['diff_cifar100_size']:.3f} -> "
        f"{flipped['diff_cifar100_size']:.3f}; zero-shot CIFAR-100 accuracy {scores['zero_shot_acc1']:.3f} -> "
        f"{flipped['zero_shot_acc1']:.3f}")


def test_diffworld_check_keeps_its_scores_rows_and_figure(tiny_bundle):
    profile = load_profile("smoke", {"world.n_test": 128})
    check = finetune_check(profile, run_paths("smoke"), tiny_bundle)
    scores = check_scores(tiny_bundle, check)
    assert list(scores) == ["diff_size", "diff_x", "diff_brightness", "zero_shot_acc1"]
    rows = check_rows(pd.DataFrame({"base": scores}).T, check)
    assert list(zip(rows.task, rows.dataset, rows.split, rows.variant, rows.attribute)) == [
        ("difference", "diffworld", "test", "eval", "size"), ("difference", "diffworld", "test", "eval", "x"),
        ("difference", "diffworld", "test", "eval", "brightness"), ("zero_shot", "diffworld", "test", "", "shape")]
    assert rows.value.tolist() == [scores[k] for k in scores]
    assert check.figure_metrics == {"diff_size": "size difference accuracy",
                                    "zero_shot_acc1": "zero-shot shape accuracy",
                                    "diff_x": "position (x) difference accuracy"}


def test_distributed_trains_the_paper_source(rehearsal, profile, tiny_bundle, tmp_path):
    weights = tmp_path / "base.pt"
    save_clip(tiny_bundle, "diffclip-tiny", weights)
    sets = [f"{k}={v}" for k, v in {**_overrides(rehearsal), "model.pretrained": str(weights),
                                    "finetune.caption_epochs": 1.0}.items()]
    summary = distributed.main(["--profile", "rehearsal", "--finetune", "caption_ft", "--set", *sets])
    assert summary.steps == math.ceil(5 * SIZES.coco_train / profile.finetune.caption_batch_size) and not summary.reused
    paths = run_paths("rehearsal")
    recipe = checkpoint_meta(paths.finetuned(0) / "caption_ft.pt")["recipe"]
    assert recipe["data"] == run_data(profile, paths, "caption_ft", prepare_data(profile, paths, tiny_bundle)).key()
    assert (paths.metrics / "finetune_caption_ft.seed0.json").is_file()
