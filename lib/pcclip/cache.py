"""Image-embedding cache: image embeddings computed once per (model, dataset, preprocessing).

PC-CLIP never trains the image tower, so every later step reads these instead of
re-encoding. Embeddings are written in shards (safetensors, atomically); a run
killed half way resumes at the first missing shard. The folder name is a hash
of the three identities, so a changed model or dataset never reads stale data.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .atomic import atomic_path, write_json
from .models import ClipBundle
from .profiles import CacheConfig

CACHE_VERSION = 1


class ImageSource(Protocol):
    """What the cache embeds: a stable key, a length and preprocessed batches by range."""

    key: str
    preprocess_key: str

    def __len__(self) -> int: ...

    def batch(self, start: int, stop: int) -> torch.Tensor: ...


@dataclass
class ArraySource:
    """uint8 (n, H, W, 3) images (DiffWorld) normalised by the model's own mean/std."""

    images: np.ndarray
    key: str
    to_tensor: Callable[[np.ndarray], torch.Tensor]
    preprocess_key: str

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, start: int, stop: int) -> torch.Tensor:
        return self.to_tensor(self.images[start:stop])


@dataclass
class DatasetSource:
    """A torch Dataset of (preprocessed image, label) items, read with DataLoader workers."""

    dataset: torch.utils.data.Dataset
    key: str
    preprocess_key: str
    num_workers: int = 0
    batch_size: int = 256

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, start: int, stop: int) -> torch.Tensor:
        subset = torch.utils.data.Subset(self.dataset, range(start, stop))
        loader = torch.utils.data.DataLoader(subset, batch_size=self.batch_size, num_workers=self.num_workers)
        return torch.cat([item[0] if isinstance(item, (list, tuple)) else item for item in loader])


def array_source(bundle: ClipBundle, images: np.ndarray, key: str) -> ArraySource:
    cfg = bundle.model.visual.preprocess_cfg
    return ArraySource(images, key, bundle.images_to_tensor, f"uint8-norm-{cfg['mean']}-{cfg['std']}")


def cache_dir(root: Path, fingerprint: str, source: ImageSource) -> Path:
    ident = json.dumps([CACHE_VERSION, fingerprint, source.key, source.preprocess_key])
    return Path(root) / f"{source.key}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def _autocast(bundle: ClipBundle, precision: str):
    if precision == "bf16" and bundle.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def _encode_shard(bundle: ClipBundle, source: ImageSource, start: int, stop: int, batch_size: int,
                  precision: str) -> torch.Tensor:
    out = []
    for i in range(start, stop, batch_size):
        x = source.batch(i, min(i + batch_size, stop)).to(bundle.device, non_blocking=True)
        with _autocast(bundle, precision):
            out.append(bundle.model.encode_image(x).float())
    return torch.cat(out).cpu()


def embed_images(bundle: ClipBundle, source: ImageSource, root: Path, cfg: CacheConfig,
                 precision: str = "fp32", progress: bool = True) -> torch.Tensor:
    """(n, d) float32 unnormalised image embeddings of `source`, from the cache when present."""
    n = len(source)
    if n == 0:
        raise ValueError(f"image source {source.key!r} is empty: nothing to embed; check the dataset path/split")
    folder = cache_dir(root, bundle.fingerprint, source)
    manifest = folder / "manifest.json"
    shards = [(s, min(s + cfg.shard_size, n)) for s in range(0, n, cfg.shard_size)]
    names = [f"shard_{i:05d}.safetensors" for i in range(len(shards))]
    if manifest.exists() and json.loads(manifest.read_text()).get("shards") == names:
        return torch.cat([load_file(folder / name)["embeddings"] for name in names])
    bundle.model.eval()
    parts = []
    bar = tqdm(total=n, desc=f"embed {source.key}", unit="img", disable=not progress)
    for name, (start, stop) in zip(names, shards):
        path = folder / name
        emb = _load_shard(path, stop - start)
        if emb is None:
            emb = _encode_shard(bundle, source, start, stop, cfg.batch_size, precision)
            with atomic_path(path) as tmp:
                save_file({"embeddings": emb.contiguous()}, str(tmp), metadata={"start": str(start)})
        parts.append(emb)
        bar.update(stop - start)
    bar.close()
    write_json(manifest, {"version": CACHE_VERSION, "model_fingerprint": bundle.fingerprint, "model": bundle.model_name,
                          "dataset": source.key, "preprocess": source.preprocess_key, "n": n,
                          "dim": int(parts[0].shape[1]), "shard_size": cfg.shard_size, "shards": names})
    return torch.cat(parts)


def _load_shard(path: Path, rows: int) -> torch.Tensor | None:
    """A finished shard, or None if absent or unreadable (it is then recomputed)."""
    if not path.exists():
        return None
    try:
        emb = load_file(path)["embeddings"]
    except Exception:
        return None
    return emb if emb.shape[0] == rows else None
