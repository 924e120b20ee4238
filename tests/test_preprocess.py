"""Images of any size reach the model through its own preprocessing (resize, centre crop, normalise);
DiffWorld's 32-px arrays into diffclip-tiny keep the tensors they always had."""
from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from pcclip.cache import DatasetSource, array_source, embed_images
from pcclip.models import load_clip
from pcclip.profiles import CacheConfig
from pcclip.rehearsal.fixtures import FixtureSizes, write_fixtures
from pcclip.runs import coco_images
from pcclip.synthesis.coco import CocoImages, load_coco_captions
from pcclip.world import render, sample_records

VIT = "rehearsal-test-vit-64"


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    """A tiny ViT at 64 px, registered like pcclip's own configs."""
    folder = tmp_path_factory.mktemp("configs")
    (folder / f"{VIT}.json").write_text(json.dumps({
        "embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}))
    open_clip.add_model_config(str(folder))
    torch.manual_seed(0)
    return load_clip(VIT, "")


def _images(n: int, side: int) -> np.ndarray:
    return render(sample_records(n, np.random.default_rng(side)), side)


def test_diffworld_arrays_keep_their_exact_tensors():
    bundle = load_clip("diffclip-tiny", "")
    images = _images(16, 32)
    cfg = bundle.model.visual.preprocess_cfg
    old = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
           - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    via_pil = torch.stack([bundle.preprocess(Image.fromarray(im)) for im in images])
    assert torch.equal(bundle.images_to_tensor(images), old) and torch.equal(old, via_pil)
    assert array_source(bundle, images, "k").preprocess_key == f"uint8-norm-{cfg['mean']}-{cfg['std']}"


def test_arrays_of_another_size_are_resized_by_the_models_preprocess(vit, tmp_path):
    small, tiny32 = _images(5, 32), load_clip("diffclip-tiny", "")
    x = vit.images_to_tensor(small)
    assert x.shape == (5, 3, 64, 64)
    assert torch.equal(x, torch.stack([vit.preprocess(Image.fromarray(im)) for im in small]))
    assert tiny32.images_to_tensor(_images(3, 64)).shape == (3, 3, 32, 32)  # and down to 32 px
    source = array_source(vit, small, "diffworld-test")
    assert "Resize" in source.preprocess_key and "0x" not in source.preprocess_key
    emb = embed_images(vit, source, tmp_path, CacheConfig(batch_size=2, shard_size=4), progress=False)
    with torch.no_grad():
        assert torch.allclose(emb, vit.model.encode_image(x), atol=1e-5)


def test_a_64px_vit_embeds_a_folder_of_jpegs_of_mixed_sizes(vit, tmp_path):
    write_fixtures(tmp_path, sizes=FixtureSizes(coco_train=12, coco_val=2), datasets=("coco",))
    coco = load_coco_captions(tmp_path / "coco/annotations/captions_train2017.json", tmp_path / "coco/train2017")
    sizes = set()
    for f in coco.files:
        with Image.open(f) as im:
            sizes.add(im.size)
    assert len(sizes) >= 3 and any(w != h for w, h in sizes)
    data = CocoImages(coco, vit.preprocess)
    source = DatasetSource(data, "coco-test", vit.preprocess_key)
    emb = embed_images(vit, source, tmp_path / "cache", CacheConfig(batch_size=5, shard_size=8), progress=False)
    with torch.no_grad():
        direct = vit.model.encode_image(torch.stack([data[i][0] for i in range(len(data))]))
    assert emb.shape == (12, 32) and torch.allclose(emb, direct, atol=1e-5)


@pytest.mark.parametrize("model", ["diffclip-tiny", VIT])
def test_resize_crop_then_batched_normalisation_is_preprocess_bit_for_bit(vit, tmp_path, model):
    """The cache's fast path for image files (uint8 from the workers, normalised per batch) gives exactly
    the tensors of the model's own preprocessing, so caches built either way are the same."""
    bundle = vit if model == VIT else load_clip(model, "")
    write_fixtures(tmp_path, sizes=FixtureSizes(coco_train=12, coco_val=2), datasets=("coco",))
    coco = load_coco_captions(tmp_path / "coco/annotations/captions_train2017.json", tmp_path / "coco/train2017")
    slow = torch.stack([CocoImages(coco, bundle.preprocess)[i][0] for i in range(len(coco))])
    fast = CocoImages(coco, bundle.resize_crop)
    assert fast[0][0].dtype == np.uint8 and fast[0][0].shape == (*slow.shape[2:], 3)
    source = coco_images(coco, "coco-test", bundle, num_workers=0)
    assert source.preprocess_key == bundle.preprocess_key  # same cache identity as before
    assert torch.equal(torch.cat(list(source.batches(0, len(coco), 5))), slow)
    emb = embed_images(bundle, source, tmp_path / "cache", CacheConfig(batch_size=5, shard_size=8), progress=False)
    with torch.no_grad():
        assert torch.allclose(emb, bundle.model.encode_image(slow), atol=1e-5)


def test_resize_crop_refuses_a_preprocess_it_cannot_split():
    bundle = load_clip("diffclip-tiny", "")
    bundle.preprocess = bundle.preprocess.transforms[0]  # a bare Resize: nothing to batch
    with pytest.raises(ValueError, match="does not end in ToTensor and Normalize"):
        bundle.resize_crop
