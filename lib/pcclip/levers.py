"""The lever study: named changes to the finetuning recipe, each retrained on the main run's base model and data
and scored on notebook 03's sets, so that a lever's effect on held-out structures is a committed row, not a note.

A lever is a set of profile overrides (`finetune.*`) and the model whose rows are its result: `pcclip`, or
`pcclip_hn` for hard negatives, which notebook 02 trains beside an unchanged `pcclip`. `recipe` (no overrides)
is the baseline of the study, so every row of the table comes from the same base model and data. Each lever runs
notebooks 02 and 03 (`NOTEBOOKS`) for each finetune seed in its own results tree,
results/<profile>-levers/<lever>/<profile>/, which starts from copies of the main run's base model, data,
embedding caches and finetuned runs (`seed_tree`): notebook 02 retrains only the runs the lever changes, and
`recipe` re-scores the main run's models when it has them. The table over seeds is `lever_table`.
"""
from __future__ import annotations

import filecmp
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .atomic import atomic_path, write_text
from .intervals import over_seeds
from .paths import RunPaths, lever_root
from .report import markdown_table, notebook_rows
from .results import IDENTITY

NOTEBOOKS = ("02", "03")  # finetune, then score: the notebooks each lever reruns
READ = ("02_finetune", "03_ranking_eval")
# the rows the table keeps: notebook 03's difference sets, held-out structures and frames, and notebook 02's
# zero-shot accuracy (the drop the recipe must keep small)
TASKS = {"03_ranking_eval": ("difference", "structures", "frames"), "02_finetune": ("zero_shot",)}


@dataclass(frozen=True)
class Lever:
    name: str
    why: str  # what the lever changes and the hypothesis it tests
    overrides: dict[str, str] = field(default_factory=dict)
    model: str = "pcclip"  # the run whose rows are the lever's result

    @property
    def settings(self) -> str:
        """The overrides as `make levers` would pass them: "finetune.a=1 finetune.b=2" ("" for none)."""
        return " ".join(f"{k}={v}" for k, v in self.overrides.items())


LEVERS: tuple[Lever, ...] = (
    Lever("recipe", "the recipe unchanged: the study's baseline"),
    Lever("hard_negatives", "each image difference also contrasted with its own role swap and negation (NegCLIP-"
          "like, issue 15 item 5): role binding and negation taught directly. Its negatives include the negated form "
          "of training frame comparative:3, which differs from the held-out frame negation:2 only in its comparative "
          "word, so that frame's row tests less of a new structure here", {"finetune.hard_negatives": "true"},
          "pcclip_hn"),
    Lever("role_swaps", "hard negatives without the negation: each image difference contrasted with its own role "
          "swap alone (finetune.negatives_per_text=1; the writer lists the swap first), a cheaper step than both: "
          "is role binding what lifts the training frames?",
          {"finetune.hard_negatives": "true", "finetune.negatives_per_text": "1"}, "pcclip_hn"),
    Lever("short", "3000 steps with the paper's loss, three quarters of the 4000 the committed studies' recipe had: "
          "role_swaps_short's baseline, and the test of whether 4000 steps are what holds the training frames. Since "
          "session 29 it is the diffworld recipe itself, so a study run today gives it the recipe's rows",
          {"finetune.steps": "3000"}),
    Lever("role_swaps_short", "role swaps over 3000 steps (three quarters of the studies' recipe of 4000): with role "
          "binding taught directly, are 4000 steps still needed? A role-swap step costs more than a recipe step, so "
          "fewer steps would be the price of making role swaps the recipe within make reproduce's 25 minutes",
          {"finetune.hard_negatives": "true", "finetune.negatives_per_text": "1", "finetune.steps": "3000"},
          "pcclip_hn"),
    Lever("caption_weight", "four times the caption term: keep more of what the captions taught the text tower",
          {"finetune.caption_weight": "1.0"}),
    Lever("blocks", "the paper's trainable part: the text transformer blocks alone, embeddings and projection "
          "frozen", {"finetune.trainable": "blocks"}),
    Lever("relational_captions", "the caption term draws half its captions with a relational clause, as the base "
          "model was pretrained ('..., not smaller than most shapes'), where it drew plain ones: keep alive, while "
          "finetuning, the comparative syntax that the held-out frames are arrangements of",
          {"finetune.relational_captions": "0.5"}),
    Lever("relational_quarter", "relational_captions with a quarter of the captions relational instead of half: does a "
          "smaller share keep the training frames that half lets slip, and the lift on negation?",
          {"finetune.relational_captions": "0.25"}),
    Lever("caption_weight_relational", "caption_weight and relational_captions together: four times a caption term "
          "that is half relational", {"finetune.caption_weight": "1.0", "finetune.relational_captions": "0.5"}),
    Lever("caption_weight_blocks", "caption_weight and blocks together: the two levers that keep the text tower "
          "nearest its pretraining", {"finetune.caption_weight": "1.0", "finetune.trainable": "blocks"}),
    Lever("hard_negatives_quarter", "hard_negatives and relational_quarter together: alone they move different frames "
          "(hard negatives lift negation:2 most; a quarter keeps marked_roles:2, which hard negatives lose), so their "
          "lifts may add up where the pairs of caption levers did not. Its `pcclip` is relational_quarter's",
          {"finetune.hard_negatives": "true", "finetune.relational_captions": "0.25"}, "pcclip_hn"),
    Lever("steps", "three times the studies' 4000 steps: in case held-out frames come late, as delayed "
          "generalisation does",
          {"finetune.steps": "12000"}),
    Lever("weight_decay", "the steps of `steps` with AdamW and weight decay 0.1, the usual companion of late "
          "generalisation", {"finetune.steps": "12000", "finetune.optimizer": "adamw", "finetune.weight_decay": "0.1"}),
)
BASE, NAMED = "checkpoints/base.pt", "metrics/00_base_model.json"
SHARED = ("data", "cache", NAMED, BASE)  # what a lever's tree copies from the main run, in this order
REQUIRED = ("data", NAMED, BASE)


def levers(names: list[str] | None) -> tuple[Lever, ...]:
    """The levers called `names` (all of LEVERS for None), in the order given; raises naming the known ones."""
    known = {lever.name: lever for lever in LEVERS}
    if names is None:
        return LEVERS
    unknown = [n for n in names if n not in known]
    if unknown or not names or len(set(names)) < len(names):
        raise ValueError(f"--levers {names}: give distinct names among {list(known)}, e.g. --levers recipe,blocks")
    return tuple(known[n] for n in names)


def seed_tree(main: RunPaths, tree: RunPaths) -> None:
    """Copy the main run's data, embedding caches, notebook 00 metrics (which name the base model), finetuned runs
    and base model into a lever's tree, base.pt last and atomically, so its notebook 02 finetunes what the main run
    finetuned, retraining only the runs whose recipe the lever changes (runs.train_run checks each recipe). A
    tree that has a base model keeps it (and gains the 00 metrics it lacks only when its base.pt is the main
    run's, byte for byte). Raises naming what to run when the main run lacks a base model or data."""
    missing = [main.root / part for part in REQUIRED if not (main.root / part).exists()]
    if missing:
        raise FileNotFoundError(f"the lever study starts from the main run's base model and data, and "
                                f"{', '.join(map(str, missing))} do not exist: run the main run first "
                                f"(make reproduce, or python -m pcclip.pipeline --profile {main.root.name} "
                                "--only 00 01)")
    base = tree.root / BASE
    if base.exists():
        if not (tree.root / NAMED).exists():
            if not filecmp.cmp(base, main.root / BASE, shallow=False):
                raise ValueError(f"{base} is not the main run's base model and {tree.root / NAMED} is missing, so "
                                 f"its rows cannot be named: delete {tree.root} and run the lever again")
            _copy(main.root / NAMED, tree.root / NAMED)
        return
    for part in SHARED:
        if part == BASE:  # the finetuned runs first: notebook 02 reuses each whose recipe the lever leaves as it is
            for run in sorted(main.checkpoints.glob("seed*/*.pt")):
                if "_state-" not in run.name:
                    _copy(run, tree.root / run.relative_to(main.root))
        if (main.root / part).is_dir():
            shutil.copytree(main.root / part, tree.root / part, dirs_exist_ok=True)
        elif (main.root / part).exists():
            _copy(main.root / part, tree.root / part)


def _copy(source: Path, target: Path) -> None:
    """Copy one file atomically (`atomic.atomic_path`): a crash leaves the old target or none, never half of one."""
    with atomic_path(target) as temporary:
        shutil.copy2(source, temporary)


def base_fingerprint(paths: RunPaths) -> str:
    """The base model of a run as its notebook 00 metrics name it (a lever's tree holds a copy of its main run's)."""
    try:
        return json.loads((paths.root / NAMED).read_text())["info"]["fingerprint"]
    except (OSError, ValueError, KeyError) as err:
        raise FileNotFoundError(f"{paths.root / NAMED} does not name the base model ({err!r}): rerun "
                                "notebooks/00_base_model.ipynb (python -m pcclip.pipeline --only 00)") from None


def lever_runs(profile: str) -> dict[str, RunPaths]:
    """lever name -> run folder of each lever of LEVERS found under results/<profile>-levers/, in LEVERS order."""
    return {lever.name: RunPaths(lever_root(profile, lever.name) / profile) for lever in LEVERS
            if (lever_root(profile, lever.name) / profile / "metrics").is_dir()}


def lever_rows(lever: Lever, paths: RunPaths) -> pd.DataFrame:
    """The rows of TASKS that the lever's model wrote under `paths`, per seed, with the lever's name."""
    parts = []
    for notebook in READ:
        rows = notebook_rows(paths, notebook)
        parts.append(rows[rows.task.isin(TASKS[notebook]) & (rows.model == lever.model)])
    rows = pd.concat(parts, ignore_index=True)
    return rows.assign(lever=lever.name, overrides=lever.settings, base=base_fingerprint(paths))


def lever_table(profile: str) -> pd.DataFrame:
    """Every lever's rows per seed, then each identity's mean over seeds with its 95% interval (seed "mean");
    empty while no lever has run."""
    runs = lever_runs(profile)
    if not runs:
        return pd.DataFrame(columns=["lever"])
    rows = pd.concat([lever_rows(lever, runs[lever.name]) for lever in levers(list(runs))], ignore_index=True)
    key = ["lever", "overrides", "base", *[c for c in IDENTITY if c != "seed"]]
    means = over_seeds(rows, key).rename(columns={"mean": "value"}).assign(seed="mean")
    table = pd.concat([rows[[*key, "seed", "value"]].astype({"seed": object}), means], ignore_index=True)
    return table.astype({"n_seeds": "Int64"}).reset_index(drop=True)


def seed_rows(table: pd.DataFrame, task: str, variants: tuple[str, ...],
               attributes: tuple[str, ...]) -> pd.DataFrame:
    """The per-seed test-split accuracy rows of `task` for these variants and attributes (no means): a lever study
    table or a run's notebook rows."""
    return table[(table.task == task) & (table.split == "test") & table.variant.isin(variants)
                 & table.attribute.isin(attributes) & (table.seed != "mean") & (table.metric == "accuracy")]


def _cells(table: pd.DataFrame, task: str, variant: str, attributes: tuple[str, ...]) -> pd.Series:
    """Per lever: the per-seed values of one row ("0.85 / 0.69"), or with several attributes their minimum."""
    rows = seed_rows(table, task, (variant,), attributes)
    per_seed = rows.groupby(["lever", "seed"], sort=False).value.min().reset_index()
    return per_seed.groupby("lever", sort=False).value.apply(lambda v: " / ".join(f"{x:.3f}" for x in v))


def overview(table: pd.DataFrame) -> pd.DataFrame:
    """One line per lever: per seed, held-out frames and the two families that fail (size and brightness), and
    the lowest training-frame accuracy of size, x, y and brightness (issue 15's targets)."""
    columns = {
        "held-out frames, size": ("structures", "heldout_frames", ("size",)),
        "held-out frames, brightness": ("structures", "heldout_frames", ("brightness",)),
        "change, size": ("structures", "change", ("size",)),
        "negation, size": ("structures", "negation", ("size",)),
        "training frames, lowest": ("difference", "train", ("size", "x", "y", "brightness")),
    }
    if table.empty:
        return pd.DataFrame(columns=["lever", "model", "base model", "seeds", *columns, "zero-shot shape"])
    by = table[table.seed != "mean"].groupby("lever", sort=False)
    out = pd.DataFrame({"model": by.model.first(), "base model": by.base.first(),
                        "seeds": by.seed.agg(lambda s: ",".join(map(str, dict.fromkeys(s))))}).reset_index()
    for title, where in columns.items():
        cells = _cells(table, *where).to_dict()
        out[title] = [cells.get(n, "") for n in out.lever]
    shape = table[(table.task == "zero_shot") & (table.attribute == "shape") & (table.metric == "acc1")
                  & (table.seed == "mean")].set_index("lever").value
    out["zero-shot shape"] = out.lever.map(shape)
    return out


FAMILIES = ("heldout_frames", "heldout_words", "change", "negation")  # the structures the figure shows


def family_seeds(table: pd.DataFrame, attributes: tuple[str, ...] = ("size", "brightness"),
                 families: tuple[str, ...] = FAMILIES) -> pd.DataFrame:
    """Per lever, family, attribute and finetune seed: the held-out-structure accuracy of the lever's model (the
    rows `plots.report.seed_errorbars` draws with x="lever", col="variant", hue="attribute")."""
    if table.empty:
        return pd.DataFrame(columns=["lever", "variant", "attribute", "seed", "value"])
    rows = seed_rows(table, "structures", families, attributes)
    order = {name: i for i, name in enumerate(families)}
    rows = rows.sort_values("variant", key=lambda v: v.map(order), kind="stable")
    return rows[["lever", "variant", "attribute", "seed", "value"]].reset_index(drop=True)


def _sentence(text: str) -> str:
    """`text` ended as a sentence: a full stop unless it ends in a question mark."""
    return text if text.endswith(("?", ".")) else f"{text}."


def write_lever_study(profile: str) -> pd.DataFrame:
    """results/<profile>-levers/summary.csv (`lever_table`) and summary.md (`overview`, and what each lever is)."""
    table = lever_table(profile)
    root = lever_root(profile, None)
    write_text(root / "summary.csv", table.round(6).to_csv(index=False))
    studied = set(table.lever)
    described = "\n".join(f"- `{lever.name}` ({f'`{lever.settings}`' if lever.settings else 'no overrides'}; rows of "
                          f"`{lever.model}`): {_sentence(lever.why)}" for lever in LEVERS if lever.name in studied)
    write_text(root / "summary.md", "\n\n".join([
        f"# Lever study: profile `{profile}`",
        "Each lever retrains notebook 02 on the main run's base model (its fingerprint: `base model`) and data and "
        "scores it with notebook 03, per finetune seed, in its own folder here; written by "
        "`python -m pcclip.pipeline --levers`. "
        "Each cell lists the accuracies of the finetune seeds in `seeds`, in that order (training frames: the "
        "lowest of size, x, y and brightness); summary.csv holds every row of notebook 03's difference, structure "
        "and frame tables per seed, and their means with 95% intervals over the seeds.",
        described, markdown_table(overview(table)), ""]))
    return table

