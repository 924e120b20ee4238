"""Image-embedding cache: image embeddings computed once per (model, dataset, preprocessing).

PC-CLIP never trains the image tower, so every later step reads these instead of
re-encoding. Embeddings are written in shards (safetensors, atomically); a run
killed half way resumes at the first missing shard. The folder name is a hash
of the three identities, so a changed model or dataset never reads stale data. Each shard
records the sha256 of its embedding bytes; a shard whose data no longer matches (a flipped
bit, a truncated copy) or that has no checksum is recomputed, never used.
"""
from __future__ import annotations

import hashlib
import json
import queue
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .atomic import atomic_path, write_json
from .models import ClipBundle
from .precision import autocast
from .profiles import CacheConfig

CACHE_VERSION = 1


class ImageSource(Protocol):
    """What the cache embeds: a stable key, a length and preprocessed batches over a range."""

    key: str
    preprocess_key: str

    def __len__(self) -> int: ...

    def batches(self, start: int, stop: int, batch_size: int) -> Iterator[torch.Tensor]: ...


@dataclass
class ArraySource:
    """uint8 (n, H, W, 3) images (DiffWorld) through the model's own preprocessing."""

    images: np.ndarray
    key: str
    to_tensor: Callable[[np.ndarray], torch.Tensor]
    preprocess_key: str

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, start: int, stop: int, batch_size: int) -> Iterator[torch.Tensor]:
        for i in range(start, stop, batch_size):
            yield self.to_tensor(self.images[i:min(i + batch_size, stop)])


@dataclass
class DatasetSource:
    """A torch Dataset of (preprocessed image, label) items, read with DataLoader workers. With
    `to_tensor` (`ClipBundle.images_to_tensor`) the items are uint8 images at the model's input size
    (`ClipBundle.resize_crop`), normalised a batch at a time: what `preprocess` gives, at less cost."""

    dataset: torch.utils.data.Dataset
    key: str
    preprocess_key: str
    num_workers: int = 0
    to_tensor: Callable[[np.ndarray], torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, start: int, stop: int, batch_size: int) -> Iterator[torch.Tensor]:
        """One DataLoader per shard, so worker processes start once per shard, not once per batch."""
        subset = torch.utils.data.Subset(self.dataset, range(start, stop))
        loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, num_workers=self.num_workers)
        for item in loader:
            x = item[0] if isinstance(item, (list, tuple)) else item
            yield self.to_tensor(x.numpy()) if self.to_tensor else x


def array_source(bundle: ClipBundle, images: np.ndarray, key: str) -> ArraySource:
    """Images at the model's input size are only normalised (the key they always had); others are
    resized and cropped by `bundle.preprocess` first, which the key then names."""
    cfg = bundle.model.visual.preprocess_cfg
    as_is = bundle.takes_as_is(*images.shape[1:3])
    preprocess_key = f"uint8-norm-{cfg['mean']}-{cfg['std']}" if as_is else bundle.preprocess_key
    return ArraySource(images, key, bundle.images_to_tensor, preprocess_key)


def cache_dir(root: Path, fingerprint: str, source: ImageSource, precision: str = "fp32") -> Path:
    """One folder per (model, dataset, preprocessing); bf16 embeddings differ from fp32 ones, so
    any precision but fp32 is part of the identity too."""
    ident = json.dumps([CACHE_VERSION, fingerprint, source.key, source.preprocess_key]
                       + ([precision] if precision != "fp32" else []))
    return Path(root) / f"{source.key}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def _read_ahead(batches: Iterator[torch.Tensor], depth: int = 2) -> Iterator[torch.Tensor]:
    """`batches`, produced by a thread up to `depth` ahead: image decoding and resizing (PIL) and the
    forward (torch) both release the GIL, so the next batch is read while this one is encoded, also
    without DataLoader workers. An error in the thread is raised here; leaving early stops the thread."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def offer(item: tuple) -> bool:
        """Queue `item` unless the consumer has left; False once it has."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in batches:
                if not offer((x, None)):
                    return
            offer((None, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            offer((None, exc))

    thread = threading.Thread(target=produce, name="pcclip-cache-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            x, exc = ready.get()
            if exc is not None:
                raise exc
            if x is None:
                return
            yield x
    finally:
        stop.set()


@torch.inference_mode()
def _encode_shard(bundle: ClipBundle, source: ImageSource, start: int, stop: int, batch_size: int,
                  precision: str) -> torch.Tensor:
    bundle.model.eval()
    out = []
    for x in _read_ahead(source.batches(start, stop, batch_size)):
        with autocast(bundle.device, precision):
            out.append(bundle.model.encode_image(x.to(bundle.device, non_blocking=True)).float())
    return torch.cat(out).cpu()


def embed_images(bundle: ClipBundle, source: ImageSource, root: Path, cfg: CacheConfig,
                 precision: str = "fp32", progress: bool = True) -> torch.Tensor:
    """(n, d) float32 unnormalised image embeddings of `source`, from the cache when present."""
    n = len(source)
    if n == 0:
        raise ValueError(f"image source {source.key!r} is empty: nothing to embed; check the dataset path/split")
    folder = cache_dir(root, bundle.fingerprint, source, precision)
    manifest = folder / "manifest.json"
    shards = [(s, min(s + cfg.shard_size, n)) for s in range(0, n, cfg.shard_size)]
    names = [f"shard_{i:05d}.safetensors" for i in range(len(shards))]
    parts, computed = [], False
    # An explicit disable=False would override $TQDM_DISABLE (set by PCCLIP_QUIET), so pass it only to disable.
    bar = tqdm(total=n, desc=f"embed {source.key}", unit="img", **({} if progress else {"disable": True}))
    for name, (start, stop) in zip(names, shards):
        path = folder / name
        emb = _load_shard(path, start, stop)
        if emb is None:
            emb, computed = _encode_shard(bundle, source, start, stop, cfg.batch_size, precision), True
            with atomic_path(path) as tmp:
                save_file({"embeddings": emb.contiguous()}, str(tmp),
                          metadata={"start": str(start), "sha256": _checksum(emb)})
        parts.append(emb)
        bar.update(stop - start)
    bar.close()
    if computed or not manifest.exists():
        write_json(manifest, {"version": CACHE_VERSION, "model_fingerprint": bundle.fingerprint,
                              "model": bundle.model_name, "dataset": source.key, "preprocess": source.preprocess_key,
                              "n": n, "dim": int(parts[0].shape[1]), "shard_size": cfg.shard_size, "shards": names})
    return torch.cat(parts)


def _checksum(emb: torch.Tensor) -> str:
    return hashlib.sha256(emb.contiguous().numpy().tobytes()).hexdigest()


def _load_shard(path: Path, start: int, stop: int) -> torch.Tensor | None:
    """Rows start:stop from a finished shard, or None if absent, unreadable, failing its checksum or
    written for other rows (a run with another shard_size); the shard is then recomputed."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if meta.get("start") != str(start):
                return None
            emb = fh.get_tensor("embeddings")
    except Exception:
        print(f"cache shard {path} is unreadable; recomputing it", file=sys.stderr)
        return None
    if meta.get("sha256") != _checksum(emb):
        print(f"cache shard {path} fails its checksum (corrupt, or written before checksums); recomputing it",
              file=sys.stderr)
        return None
    return emb if emb.shape[0] == stop - start else None


class _SplitImages:
    """A DiffWorld split's images as an array whose shape is known before they are drawn: they are drawn at the
    first slice, so a split whose embeddings are cached is not drawn again (5 s for the 20,000 training images)."""

    def __init__(self, split):
        self.split, size = split, split.config.image_size
        self.shape = (len(split), size, size, 3)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item) -> np.ndarray:
        return self.split.images[item]


def embed_split(bundle: ClipBundle, split, root: Path, cfg: CacheConfig, precision: str = "fp32",
                progress: bool = True) -> torch.Tensor:
    """Cached image embeddings of a DiffWorld split (`pcclip.world.WorldSplit`)."""
    return embed_images(bundle, array_source(bundle, _SplitImages(split), split.key), root, cfg, precision, progress)
