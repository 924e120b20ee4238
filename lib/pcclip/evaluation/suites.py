"""Notebooks 03 and 04's evaluations as metric rows, one call each, for models scored outside the notebooks
(`python -m pcclip.evaluate`). The notebooks make the same calls cell by cell to show each table on the way.

`images` is the model whose image tower embeds the images (the notebooks' base model); every model of
`models` must share it, which is what lets a whole set of models be scored on one set of embeddings.
"""
from __future__ import annotations

import pandas as pd

from ..models import ClipBundle
from ..paths import RunPaths
from ..profiles import Profile
from .difference import difference_table
from .ranking import ranking_table
from .tables import classification_rows, difference_rows, ranking_rows
from .task_tables import comparative_tables, extended_tables, headroom_tables, variant_tables, zero_shot_tables
from .tasks import classification_tasks, difference_places, difference_tasks, ranking_tasks, structure_tasks

Models = dict[str, ClipBundle]


def ranking_eval_rows(profile: Profile, paths: RunPaths, models: Models, images: ClipBundle) -> pd.DataFrame:
    """Notebook 03: difference classification on the profile's sets, attribute ranking and (DiffWorld) the
    grammar's held-out structures, by family and by held-out frame."""
    sets, image_emb = difference_tasks(profile, paths, images)
    diff = difference_table(models, image_emb, sets, se_ddof=profile.eval.se_ddof)
    ranking, _ = ranking_table(models, ranking_tasks(profile, paths, images))
    rows = [difference_rows(diff, difference_places(profile, sets)), ranking_rows(ranking)]
    for task, per_frame in (("structures", False), ("frames", True)):
        if structures := structure_tasks(profile, per_frame):
            struct = difference_table(models, image_emb, structures, se_ddof=profile.eval.se_ddof)
            rows.append(difference_rows(struct, difference_places(profile, structures), task=task))
    return pd.concat(rows, ignore_index=True)


def classification_eval_rows(profile: Profile, paths: RunPaths, models: Models, images: ClipBundle) -> pd.DataFrame:
    """Notebook 04: zero-shot, comparative prompting (and its variants), extended descriptions, headroom."""
    tasks = classification_tasks(profile, paths, images, models=list(models))
    zero_shot, _ = zero_shot_tables(models, tasks)
    summary, _, _ = comparative_tables(models, tasks, profile.eval)
    return classification_rows(zero_shot, summary, variant_tables(models, tasks, profile.eval),
                               extended_tables(models, tasks), headroom_tables(models, tasks, profile.eval.alpha),
                               "test")
