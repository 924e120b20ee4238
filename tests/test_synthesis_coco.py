"""COCO 2017 caption loader on a fixture written here in the real format, and its bad-input errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.synthesis import synthesize
from pcclip.synthesis.coco import CocoImages, load_coco_captions
from pcclip.synthesis.runner import pair_input, plan_pairs
from pcclip.synthesis.sources import coco_source


def _write_coco(root, captions: dict[int, list[str]], missing: tuple[int, ...] = ()):
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "height": 8, "width": 10} for i in captions]
    anns = [{"id": 100 * i + k, "image_id": i, "caption": c} for i, cs in captions.items() for k, c in enumerate(cs)]
    for i in captions:
        if i not in missing:
            Image.fromarray(np.full((8, 10, 3), i % 255, dtype=np.uint8)).save(root / "train2017" / f"{i:012d}.jpg")
    path = root / "annotations" / "captions_train2017.json"
    path.write_text(json.dumps({"info": {}, "licenses": [], "images": images[::-1], "annotations": anns}))
    return path, root / "train2017"


CAPTIONS = {397133: ["A man in a kitchen.", " A  chef   cooking food. "], 37777: ["A dining table with plates."],
            252219: ["Three people on a street.", "People crossing a road.", "A city street."]}


def test_loads_captions_in_image_id_order(tmp_path) -> None:
    ann, images = _write_coco(tmp_path, CAPTIONS)
    coco = load_coco_captions(ann, images)
    assert coco.image_ids.tolist() == [37777, 252219, 397133] and coco.image_ids.dtype == np.int64
    assert coco.captions[2] == ("A man in a kitchen.", "A chef cooking food.")  # whitespace normalised
    assert coco.files[0].name == "000000037777.jpg"
    ds = CocoImages(coco, lambda im: np.asarray(im).mean())
    value, index = ds[1]
    assert len(ds) == 3 and index == 1 and value == pytest.approx(252219 % 255, abs=2)


def test_bad_inputs_name_the_problem(tmp_path) -> None:
    ann, images = _write_coco(tmp_path / "a", CAPTIONS, missing=(37777,))
    with pytest.raises(FileNotFoundError, match=r"1 images .* missing .*000000037777\.jpg"):
        load_coco_captions(ann, images)
    ann.write_text(ann.read_text()[:-40])
    with pytest.raises(ValueError, match="not valid JSON .* line 1"):
        load_coco_captions(ann, images)
    ann.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="'images' and 'annotations'"):
        load_coco_captions(ann, images)
    ann, images = _write_coco(tmp_path / "b", {**CAPTIONS, 5: ["   "], 6: []})
    with pytest.raises(ValueError, match=r"2 images have an empty caption list \(e.g. ids \[5, 6\]\)"):
        load_coco_captions(ann, images)
    data = json.loads(ann.read_text())
    data["annotations"].append({"image_id": 999, "caption": "a ghost"})
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="image id 999 absent"):
        load_coco_captions(ann, images)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_coco_captions(tmp_path / "nope.json", images)


def test_paper_profile_plans_pairs_among_sampled_coco_images(tmp_path) -> None:
    captions = {i: [f"photo number {i}", f"another caption {i}"] for i in range(1, 41)}
    _write_coco(tmp_path / "coco", captions)
    profile = load_profile("paper", {"data_root": str(tmp_path), "synthesis.n_pairs": 50,
                                     "synthesis.n_images": 10})
    source = coco_source(profile)
    plan = plan_pairs(profile.synthesis, source)
    assert len(plan) == 50 and len(set(plan.idx1) | set(plan.idx2)) <= 10 and source.records is None
    pair = pair_input(plan, 0, source, profile.synthesis)
    i = int(source.image_ids[pair.idx1])
    assert pair.captions1 == (f"photo number {i}",)  # the paper profile shows the LLM one caption per image
    assert plan.ids[0] == f"{i}-{source.image_ids[pair.idx2]}"
    assert source.load_images(np.array([0, 1])).shape == (2, 224, 224, 3)
    with pytest.raises(ValueError, match="template writer only reads DiffWorld"):
        synthesize(load_profile("paper", {"data_root": str(tmp_path), "synthesis.writer": "template"}),
                   run_paths("paper"), progress=False)
