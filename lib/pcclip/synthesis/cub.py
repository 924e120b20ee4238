"""The paper's CUB-200 difference set: LLM-written descriptions of how one bird image differs
from another, for evaluation.

The writer reads each image's captions from Reed et al. (CVPR 2016, ten sentences per CUB
image), as the finetuning data's writer reads COCO captions; the pairs are `cub_pair_list`'s
random ordered pairs of different species (5,000 in the paper). The same writers, filter and
resumable JSONL store as the finetuning data are used, in their own file.

    path = synthesize_cub(profile, paths)          # paper profile; notebook 01
    draws = cub_pair_sets(path, seeds=5)           # PairSets for difference classification
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..datasets import cub_pair_list, load_dataset
from ..datasets.files import read_lines
from ..datasets.pairset import PairSet
from ..datasets.registry import LabeledDataset
from ..fingerprint import fingerprint
from ..paths import RunPaths
from ..profiles import Profile, data_root
from .pairs import PairPlan
from .runner import check_settings, content_fields, write_store
from .sources import ImageSource, file_images
from .store import load_accepted

REED_FOLDER = "cvpr2016_cub/text_c10"  # under the data root: <class folder>/<image name>.txt
REED_SOURCE = "https://github.com/reedscot/cvpr2016 (cvpr2016_cub.tar.gz, folder text_c10)"
CUB_SPLIT = "test"
CUB_PAIRS = 5000  # the paper's number of pairs
CUB_SET = "cub200_llm"


def cub_differences_path(paths: RunPaths) -> Path:
    return paths.data / "cub200_differences.jsonl"


def read_reed_captions(root: Path, data: LabeledDataset, per_image: int) -> tuple[tuple[str, ...], ...]:
    """The first `per_image` Reed et al. captions of every image of `data`, in item order."""
    files = getattr(data.dataset, "files", None)
    if files is None:
        raise ValueError(f"{data.key}: Reed captions need the CUB image files (load the dataset with pcclip.datasets)")
    images = data.folder / "images"
    texts = [Path(root) / REED_FOLDER / Path(f).relative_to(images).with_suffix(".txt") for f in files]
    missing = [t for t in texts if not t.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(texts)} CUB caption files are missing, e.g. {missing[0]}: "
                                f"download Reed et al.'s captions from {REED_SOURCE} and unpack them so that "
                                f"{Path(root) / REED_FOLDER}/<class folder>/<image name>.txt exist")
    captions = tuple(tuple(read_lines(t)[:per_image]) for t in texts)
    empty = [t for t, c in zip(texts, captions) if not c]
    if empty:
        raise ValueError(f"{len(empty)} CUB caption files are empty, e.g. {empty[0]}: re-extract {REED_SOURCE}")
    return captions


def cub_source(profile: Profile, data: LabeledDataset) -> ImageSource:
    """CUB images of `data` with their Reed captions (`synthesis.captions_per_image` of them)."""
    captions = read_reed_captions(Path(data_root(profile)), data, profile.synthesis.captions_per_image)
    key = f"cub200-{data.split}-{fingerprint(np.asarray(data.labels))}"
    return ImageSource(key=key, image_ids=np.arange(len(data), dtype=np.int64),
                       captions=captions, records=None, load_images=file_images(tuple(data.dataset.files)))


def cub_plan(data: LabeledDataset, n_pairs: int, seed: int) -> PairPlan:
    rows = cub_pair_list(data, n_pairs, seed)
    idx1 = np.array([r["idx1"] for r in rows], dtype=np.int64)
    idx2 = np.array([r["idx2"] for r in rows], dtype=np.int64)
    return PairPlan(idx1, idx2, ("random",) * len(rows), tuple(f"{a}-{b}" for a, b in zip(idx1, idx2)))


def synthesize_cub(profile: Profile, paths: RunPaths, n_pairs: int = CUB_PAIRS, progress: bool = True) -> Path:
    """Write (or resume) the CUB-200 descriptions with the profile's writer; returns the JSONL path."""
    cfg = profile.synthesis
    data = load_dataset("cub200", data_root(profile), split=CUB_SPLIT)
    source = cub_source(profile, data)
    check_settings(cfg, source)
    plan = cub_plan(data, n_pairs, cfg.seed)
    meta = {"source": source.key, "synthesis": content_fields(cfg), "pairs": n_pairs}
    return write_store(cub_differences_path(paths), meta, plan, source, cfg, progress)


def evaluation_descriptions(profile: Profile, paths: RunPaths, progress: bool = True) -> Path | None:
    """The CUB-200 evaluation descriptions (`synthesize_cub`) when the profile evaluates cub200, else None:
    only paper profiles read eval.datasets (DiffWorld has no CUB), and without cub200 none are needed."""
    if profile.source != "paper" or "cub200" not in profile.eval.datasets:
        return None
    return synthesize_cub(profile, paths, progress=progress)


def cub_pair_sets(path: Path, seeds: int) -> list[PairSet]:
    """The accepted descriptions as `seeds` disjoint draws (mean and standard error over them, as
    for the other sets); idx1/idx2 index the CUB test split in item order."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no CUB-200 descriptions at {path}: run notebook 01 with the paper profile "
                                "(it writes them with synthesis.writer), or drop cub200 from eval.datasets")
    pairs = load_accepted(path)
    if len(pairs) < seeds:
        raise ValueError(f"{path} has {len(pairs)} accepted descriptions, fewer than eval.seeds={seeds}")
    chunks = np.array_split(np.arange(len(pairs)), seeds)
    return [PairSet(np.asarray(pairs.idx1)[c], np.asarray(pairs.idx2)[c], [pairs.texts[i] for i in c],
                    np.zeros(len(c), dtype=np.int64), None, CUB_SET) for c in chunks]
