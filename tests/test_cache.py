"""Image-embedding cache: reuse, invalidation, resume after a crash, corrupt shards, bad input."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import torch

import pcclip.cache as cache
from pcclip.cache import ArraySource, DatasetSource, array_source, cache_dir, embed_images
from pcclip.profiles import CacheConfig, WorldConfig
from pcclip.world import build_split

CFG = CacheConfig(batch_size=8, shard_size=16)  # 40 images -> shards of 16, 16 and 8 rows


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return build_split(WorldConfig(seed=2, n_test=40), "test").images


@pytest.fixture(scope="module")
def expected(tiny_bundle, images) -> torch.Tensor:
    """What the cache must return: the image tower applied to every image, in eval mode."""
    tiny_bundle.model.eval()
    with torch.no_grad():
        return tiny_bundle.model.encode_image(tiny_bundle.images_to_tensor(images))


@pytest.fixture
def spy(tiny_bundle, monkeypatch) -> dict[str, list]:
    """Records every encode_image batch size and every shard range the cache computes."""
    calls: dict[str, list] = {"encode": [], "shards": []}
    encode, encode_shard = tiny_bundle.model.encode_image, cache._encode_shard

    def counting_encode(x, *args, **kwargs):
        calls["encode"].append(len(x))
        return encode(x, *args, **kwargs)

    def recording_shard(bundle, source, start, stop, *args):
        calls["shards"].append((start, stop))
        return encode_shard(bundle, source, start, stop, *args)

    monkeypatch.setattr(tiny_bundle.model, "encode_image", counting_encode)
    monkeypatch.setattr(cache, "_encode_shard", recording_shard)
    return calls


def shard_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".safetensors")


def test_first_call_computes_second_call_reads(tiny_bundle, images, expected, tmp_path, spy):
    source = array_source(tiny_bundle, images, "test-images")
    first = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    assert first.dtype == torch.float32 and tuple(first.shape) == tuple(expected.shape)
    torch.testing.assert_close(first, expected, atol=1e-5, rtol=1e-4)
    assert spy["shards"] == [(0, 16), (16, 32), (32, 40)] and spy["encode"] == [8, 8, 8, 8, 8]
    folder = cache_dir(tmp_path, tiny_bundle.fingerprint, source)
    assert shard_files(folder) == ["shard_00000.safetensors", "shard_00001.safetensors", "shard_00002.safetensors"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["n"], manifest["dim"], manifest["model_fingerprint"]) == (40, 128, tiny_bundle.fingerprint)
    spy["encode"].clear(), spy["shards"].clear()
    second = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    assert spy == {"encode": [], "shards": []}
    assert torch.equal(first, second)


def test_changed_model_dataset_preprocessing_or_precision_uses_a_new_folder(tiny_bundle, images, tmp_path, spy):
    source = array_source(tiny_bundle, images, "test-images")
    embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    variants = [
        (dataclasses.replace(tiny_bundle, fingerprint="0123456789abcdef"), source, "fp32"),  # other weights
        (tiny_bundle, array_source(tiny_bundle, images, "other-images"), "fp32"),  # other dataset
        (tiny_bundle, ArraySource(images, "test-images", tiny_bundle.images_to_tensor, "other-preprocess"), "fp32"),
        (tiny_bundle, source, "bf16"),
    ]
    for i, (bundle, src, precision) in enumerate(variants, start=2):
        spy["shards"].clear()
        embed_images(bundle, src, tmp_path, CFG, precision=precision, progress=False)
        assert spy["shards"] == [(0, 16), (16, 32), (32, 40)], i  # nothing stale was reused
        assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == i


class Crash(RuntimeError):
    pass


def test_interrupted_run_resumes_with_the_missing_shards_only(tiny_bundle, images, expected, tmp_path, spy,
                                                              monkeypatch):
    source = array_source(tiny_bundle, images, "test-images")
    encode = tiny_bundle.model.encode_image

    def dies_on_third_shard(x):
        if len(spy["shards"]) == 3:
            raise Crash("killed while encoding shard 3")
        return encode(x)

    monkeypatch.setattr(tiny_bundle.model, "encode_image", dies_on_third_shard)
    with pytest.raises(Crash):
        embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    folder = cache_dir(tmp_path, tiny_bundle.fingerprint, source)
    assert sorted(p.name for p in folder.iterdir()) == ["shard_00000.safetensors", "shard_00001.safetensors"]
    monkeypatch.setattr(tiny_bundle.model, "encode_image", encode)
    spy["shards"].clear()
    resumed = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    assert spy["shards"] == [(32, 40)]
    torch.testing.assert_close(resumed, expected, atol=1e-5, rtol=1e-4)
    assert (folder / "manifest.json").exists()


def test_corrupt_shard_is_recomputed(tiny_bundle, images, tmp_path, spy):
    source = array_source(tiny_bundle, images, "test-images")
    clean = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    folder = cache_dir(tmp_path, tiny_bundle.fingerprint, source)
    (folder / "shard_00001.safetensors").write_bytes(b"\x00garbage")  # the manifest still says "complete"
    spy["shards"].clear()
    again = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    assert spy["shards"] == [(16, 32)]
    assert torch.equal(again, clean)


def test_shards_of_another_shard_size_are_not_reused(tiny_bundle, images, expected, tmp_path, spy):
    """28 images in shards of 12 leave shard_00001 = rows 12:24; in shards of 16, shard_00001 is rows 16:28,
    also 12 rows long: only the recorded start tells them apart."""
    source = array_source(tiny_bundle, images[:28], "test-images-28")
    embed_images(tiny_bundle, source, tmp_path, CacheConfig(batch_size=8, shard_size=12), progress=False)
    spy["shards"].clear()
    regrouped = embed_images(tiny_bundle, source, tmp_path, CacheConfig(batch_size=8, shard_size=16), progress=False)
    assert spy["shards"] == [(0, 16), (16, 28)]
    torch.testing.assert_close(regrouped, expected[:28], atol=1e-5, rtol=1e-4)


def test_dataset_source_matches_array_source(tiny_bundle, images, expected, tmp_path):
    tensors = tiny_bundle.images_to_tensor(images)
    dataset = torch.utils.data.TensorDataset(tensors, torch.arange(len(tensors)))
    source = DatasetSource(dataset, key="tensor-dataset", preprocess_key="already-normalised")
    emb = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-4)


def test_empty_source_is_refused(tiny_bundle, tmp_path):
    empty = array_source(tiny_bundle, np.zeros((0, 32, 32, 3), np.uint8), "empty-split")
    with pytest.raises(ValueError, match="image source 'empty-split' is empty: nothing to embed"):
        embed_images(tiny_bundle, empty, tmp_path, CFG, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flip_at", [-1, -100], ids=["last-byte", "mid-data"])
def test_flipped_data_bytes_fail_the_checksum_and_are_recomputed(tiny_bundle, images, tmp_path, spy, flip_at):
    """The file still parses (same header, same shape): before checksums the flipped value was used."""
    source = array_source(tiny_bundle, images, "test-images")
    clean = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    shard = cache_dir(tmp_path, tiny_bundle.fingerprint, source) / "shard_00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[flip_at] ^= 0x40
    shard.write_bytes(bytes(data))
    spy["shards"].clear()
    again = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    assert spy["shards"] == [(32, 40)]
    assert torch.equal(again, clean)


def test_shard_without_checksum_is_recomputed(tiny_bundle, images, tmp_path, spy):
    from safetensors.torch import save_file

    source = array_source(tiny_bundle, images, "test-images")
    clean = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    shard = cache_dir(tmp_path, tiny_bundle.fingerprint, source) / "shard_00000.safetensors"
    save_file({"embeddings": torch.zeros(16, clean.shape[1])}, str(shard), metadata={"start": "0"})
    spy["shards"].clear()
    assert torch.equal(embed_images(tiny_bundle, source, tmp_path, CFG, progress=False), clean)
    assert spy["shards"] == [(0, 16)]


KILLED_EMBEDDER = """
import sys, time
import torch
import pcclip.cache as cache
from pcclip.models import load_clip
from pcclip.profiles import CacheConfig, WorldConfig
from pcclip.world import build_split

torch.set_num_threads(1)
torch.manual_seed(0)
bundle = load_clip("diffclip-tiny")  # the same weights as the tiny_bundle fixture
encode = cache._encode_shard
def slow(bundle, source, start, *args):
    if start == 16:  # the second shard never finishes: killed while computing it
        print("second shard", flush=True)
        time.sleep(60)
    return encode(bundle, source, start, *args)
cache._encode_shard = slow
images = build_split(WorldConfig(seed=2, n_test=40), "test").images
cache.embed_images(bundle, cache.array_source(bundle, images, "test-images"), sys.argv[1],
                   CacheConfig(batch_size=8, shard_size=16), progress=False)
"""


def test_kill_9_mid_embedding_resumes_exactly(tiny_bundle, images, expected, tmp_path, spy):
    import os
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", KILLED_EMBEDDER, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.stdout.readline().strip() == "second shard", child.stderr.read()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    source = array_source(tiny_bundle, images, "test-images")
    folder = cache_dir(tmp_path, tiny_bundle.fingerprint, source)
    assert shard_files(folder) == ["shard_00000.safetensors"]  # only the finished shard
    resumed = embed_images(tiny_bundle, source, tmp_path, CFG, progress=False)
    assert spy["shards"] == [(16, 32), (32, 40)]
    torch.testing.assert_close(resumed, expected, atol=1e-5, rtol=1e-4)


def test_read_ahead_keeps_order_raises_errors_and_stops_when_left():
    assert [int(x) for x in cache._read_ahead(iter(torch.arange(7)))] == list(range(7))

    def failing():
        yield torch.tensor(1)
        raise OSError("image 3 is truncated")

    reader = cache._read_ahead(failing())
    assert int(next(reader)) == 1
    with pytest.raises(OSError, match="image 3 is truncated"):
        next(reader)
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield torch.tensor(len(produced))

    reader = cache._read_ahead(endless(), depth=2)
    next(reader)
    reader.close()  # the consumer leaves: the thread stops within its 0.1 s poll, a few batches ahead at most
    time.sleep(0.5)
    n = len(produced)
    time.sleep(0.3)
    assert len(produced) == n <= 5


def test_a_cached_split_is_not_drawn_again(tiny_bundle, tmp_path, monkeypatch):
    """embed_split draws a DiffWorld split's images only when a shard has to be computed; the embeddings are the
    ones of the drawn images either way."""
    import pcclip.world.dataset as dataset

    drawn, real = [], dataset.render
    monkeypatch.setattr(dataset, "render", lambda *a: drawn.append(1) or real(*a))
    cfg = CacheConfig(batch_size=16, shard_size=32)
    split = build_split(WorldConfig(n_test=40), "test")
    first = cache.embed_split(tiny_bundle, split, tmp_path, cfg, progress=False)
    again = cache.embed_split(tiny_bundle, build_split(WorldConfig(n_test=40), "test"), tmp_path, cfg, progress=False)
    assert len(drawn) == 1 and torch.equal(first, again)
    eager = embed_images(tiny_bundle, array_source(tiny_bundle, split.images, split.key), tmp_path / "eager", cfg,
                         progress=False)
    assert torch.equal(first, eager)
