"""What notebook 00 shows of a profile's base model, whatever its source: the inputs checked (and the
rehearsal's fixtures written) before any compute, a sample of the images the model is finetuned on,
the pretraining history where there is one, and its zero-shot table on the profile's labelled image
sets, whose image-embedding caches are built on the way for the later notebooks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .basemodel import base_checkpoint, base_meta
from .cache import embed_split
from .evaluation.tasks import ClassificationTask, classification_tasks
from .evaluation.zeroshot import SUMMARY_METRICS
from .evaluation.task_tables import zero_shot_tables
from .models import ClipBundle
from .paths import RunPaths
from .preflight import Check, require_inputs
from .profiles import Profile, writes_own_inputs
from .rehearsal import rehearsal_llm, write_rehearsal
from .results import metric_rows
from .synthesis.sources import image_source
from .world import COLORS, SHAPES, SPLITS, build_split, holdout_pairs


def prepare_inputs(profile: Profile) -> list[Check]:
    """Write the rehearsal's fixtures and base model file when its data root lacks them, then check every
    input of the pipeline (`pcclip.preflight`): a missing one fails here, in seconds, naming the fix."""
    if writes_own_inputs(profile):  # the base model file goes where the profile reads it
        write_rehearsal(profile.data_root, model_file=profile.model.pretrained)
    with rehearsal_llm(profile.synthesis):  # the rehearsal's LLM server answers while it is checked
        return require_inputs(profile)


def training_sample(profile: Profile, n: int = 18) -> tuple[np.ndarray, list[str]]:
    """The first `n` images the difference data is written for (DiffWorld train split or COCO), each with
    its first caption, at one display size."""
    source = image_source(profile)
    idx = np.arange(min(n, len(source)))
    return source.load_images(idx), [source.captions[i][0] for i in idx]


def data_overview(profile: Profile) -> pd.DataFrame:
    """The image sets the pipeline reads and their sizes (DiffWorld splits with the held-out combinations;
    paper: the COCO images pairs are drawn from, and the evaluation datasets)."""
    if profile.source == "diffworld":
        held = ", ".join(f"{SHAPES[s]}:{COLORS[c]}" for s, c in holdout_pairs(profile.world).tolist())
        return pd.DataFrame([{"set": f"diffworld {name}", "images": len(build_split(profile.world, name)),
                              "note": f"held out: {held}" if name == "holdout" else ""} for name in SPLITS])
    coco = image_source(profile)
    rows = [{"set": "coco (difference pairs)", "images": len(coco), "note": profile.synthesis.coco_images}]
    return pd.DataFrame(rows + [{"set": name, "images": np.nan, "note": "evaluated by notebooks 00, 03, 04"}
                                for name in profile.eval.datasets])


def pretraining_history(paths: RunPaths) -> dict | None:
    """Seconds and loss history of the DiffWorld pretraining of this folder's base model; None when the base
    model was loaded (paper weights, a local file)."""
    ckpt = base_checkpoint(paths)
    return base_meta(ckpt) if ckpt.exists() else None


@dataclass(frozen=True)
class ZeroShotSet:
    """A labelled image set the base model is scored on, with the identity its metric rows carry."""

    dataset: str
    split: str
    attribute: str  # what the classes name ("shape", "color"; "" for a dataset's own classes)
    task: ClassificationTask


def zero_shot_sets(profile: Profile, paths: RunPaths, base: ClipBundle) -> list[ZeroShotSet]:
    """DiffWorld: shapes of the test and holdout splits and colours of the test split (every split's
    embeddings cached). Paper: each dataset of eval.datasets, as notebook 04 evaluates it."""
    if profile.source == "diffworld":
        splits = {name: build_split(profile.world, name) for name in SPLITS}
        emb = {name: embed_split(base, s, paths.cache, profile.cache, profile.model.precision)
               for name, s in splits.items()}

        def task(split: str, attribute: str, names: tuple[str, ...], template: str) -> ZeroShotSet:
            labels = getattr(splits[split].records, attribute)
            return ZeroShotSet("diffworld", split, attribute, ClassificationTask(
                "diffworld", emb[split], labels, list(names), [template], [], None))

        return [task("test", "shape", SHAPES, "a photo of a {}"), task("holdout", "shape", SHAPES, "a photo of a {}"),
                task("test", "color", COLORS, "a photo of a {} object")]
    return [ZeroShotSet(t.name, "test", "", t) for t in classification_tasks(profile, paths, base)]


def zero_shot_overview(base: ClipBundle, sets: list[ZeroShotSet]
                       ) -> tuple[pd.DataFrame, pd.DataFrame, list[np.ndarray]]:
    """(summary: one row per set with acc1, acc5, mean per class, worst class; per-class accuracy in long
    form; top-1 predictions per set)."""
    rows, per_class, predictions = [], [], []
    for s in sets:
        table, pred = zero_shot_tables({"base": base}, [s.task])
        row = table.iloc[0]
        rows.append({"dataset": s.dataset, "split": s.split, "attribute": s.attribute, "images": len(s.task.labels),
                     **{m: row[m] for m in SUMMARY_METRICS}, "worst_class_name": row["worst_class_name"]})
        per_class += [{"dataset": s.dataset, "split": s.split, "attribute": s.attribute, "class": c,
                       "acc": row.get(f"acc/{c}", np.nan)} for c in s.task.classnames]
        predictions.append(pred[s.task.name]["base"])
    return pd.DataFrame(rows), pd.DataFrame(per_class), predictions


def base_rows(summary: pd.DataFrame, n_params: int, history: dict | None) -> pd.DataFrame:
    """Metric rows of notebook 00: zero-shot metrics per set, and the model's size and pretraining cost."""
    pretrain = {"n_params": n_params, "seconds": history["seconds"] if history else 0.0,
                "final_loss": history["history"][-1]["loss"] if history else np.nan}
    return pd.concat([metric_rows(summary.rename(columns={"images": "n"}), list(SUMMARY_METRICS), task="zero_shot",
                                  model="base"),
                      metric_rows(pretrain, list(pretrain), task="pretrain", model="base")], ignore_index=True)
