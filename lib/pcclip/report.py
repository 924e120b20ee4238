"""The results report: metrics of notebooks 00-05 -> results/<profile>/summary.md and summary.csv.

Every number is a metric row written by `pcclip.results.write_rows`; headlines are chosen by
the rows' identity (task, metric, attribute), never by parsing names, and nothing is typed.
The notebooks of `PER_SEED_NOTEBOOKS` wrote one metrics file per finetune seed (<name>.seed<s>.json);
each headline is reported per seed and as the mean with its 95% t-interval over the seeds
(`pcclip.intervals`; blank with one seed). The report refuses a folder whose metrics are missing or
stale (another git commit, profile or config than the rest of the run / its manifest, a per-seed file
written for another seed) and names the files to rebuild, so a summary never mixes two runs.
`python -m pcclip.report` copies the headline table into the README and rewrites the numbers its prose
quotes (`pcclip.readme_numbers`). `base_study_table` sets the base-model study (the pipeline's
--base-study: the same run on other pretrain seeds) beside the main run; `rerun_tables` checks a rerun (a fresh
clone, another machine) against the main run's intervals over finetune seeds and, where the study exists, against
the intervals over base models (`over_base_models`; `python -m pcclip.report --rerun FOLDER`).
"""
from __future__ import annotations

import json
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import write_text
from .committed import committed_results
from .intervals import over_seeds, predicting
from .paths import (PER_SEED_NOTEBOOKS, RunPaths, base_study_root, repo_root, results_base, results_tree, run_paths,
                    seeded)
from .profiles import Profile
from .readme_numbers import refresh_readme
from .results import rows_frame

EXPECTED: tuple[str, ...] = ("00_base_model", "01_data_synthesis", "02_finetune", "03_ranking_eval",
                             "04_comparative_prompting", "05_embedding_geometry")
# columns, in this order; a model no notebook scored (pcclip_hn, rewritten_ft: off by default) has no column
MODELS: tuple[str, ...] = ("base", "pcclip", "pcclip_wa", "pcclip_hn", "caption_ft", "rewritten_ft")
NO_MODEL = "value"  # column of metrics that belong to no model (data sizes, image-only geometry)
DIFF = "pcclip_minus_base"  # PC-CLIP minus base CLIP, per seed, then averaged like a model
WHERE: tuple[str, ...] = ("notebook", "task", "dataset", "split", "variant", "attribute", "metric")
KEY: tuple[str, ...] = ("order", "headline", *WHERE, "model")  # a headline number, all but its seed


@dataclass(frozen=True)
class Headline:
    """A headline of the summary: the rows whose identity matches every field given (None: any value)."""

    title: str
    task: str
    metrics: tuple[str, ...]
    attribute: str | None = None
    split: str | None = None


HEADLINES: tuple[Headline, ...] = (
    Headline("zero-shot accuracy", "zero_shot", ("acc1",)),
    Headline("worst-class accuracy", "zero_shot", ("worst_class",)),
    Headline("difference pairs accepted", "synthesis", ("accepted", "accept_rate")),
    Headline("difference accuracy", "difference", ("accuracy",)),
    Headline("held-out structures", "structures", ("accuracy",)),
    Headline("ranking tau", "ranking", ("kendall_tau",)),
    Headline("comparative prompting gain", "comparative",
             ("gain_acc1", "gain_subset_acc1", "tuned_gain_acc1", "tuned_gain_subset_acc1")),
    Headline("comparative subset accuracy", "headroom", ("subset_acc1",)),
    Headline("analogy top-1", "analogy", ("top1",), attribute="all"),
    Headline("retrieval recall@1", "retrieval", ("recall@1",), attribute="all"),
    Headline("directional consistency", "consistency", ("description_cos", "image_consistency"), attribute="all"),
    Headline("modality gap", "consistency", ("modality_gap",), attribute="all"),
)


class StaleResults(ValueError):
    """The metrics folder cannot be summarised as one run; the message lists every problem."""


@dataclass(frozen=True)
class Summary:
    profile: str
    git_commit: str
    # headline, identity of the rows, per model (and value, pcclip_minus_base) the mean over seeds and its
    # 95% interval (<model>_lo, <model>_hi; blank with one seed), n_seeds
    table: pd.DataFrame
    seeds: pd.DataFrame  # summary.csv: every headline number per seed, and its mean/lo/hi/n_seeds (seed "mean")
    files: pd.DataFrame  # notebook, seed, file, metrics, git_commit, seconds
    manifest: dict | None


def metrics_files(expected: tuple[str, ...], seeds: tuple[int, ...]) -> dict[str, tuple[str, int | None]]:
    """File stem -> (notebook, finetune seed; None: shared) of every metrics file a run of `expected` writes."""
    return {seeded(name, seed): (name, seed) for name in expected
            for seed in (seeds if name in PER_SEED_NOTEBOOKS else (None,))}


def run_seeds(paths: RunPaths, manifest: dict | None, expected: tuple[str, ...] = EXPECTED) -> tuple[int, ...]:
    """The finetune seeds of the run in `paths`: those the pipeline's manifest lists; without one (notebooks run
    by hand), those the first per-seed notebook of `expected` was run for, read from its files."""
    if manifest and "finetune_seeds" in manifest:
        return tuple(manifest["finetune_seeds"])
    first = next((name for name in expected if name in PER_SEED_NOTEBOOKS), None)
    if first is None:
        return ()
    seeds = []
    for path in sorted(paths.metrics.glob(f"{first}.seed*.json")):
        try:
            seeds.append(int(json.loads(path.read_text())["config"]["finetune"]["seed"]))
        except (ValueError, KeyError, TypeError):
            continue  # _load names the unreadable file
    if not seeds:
        raise StaleResults(f"cannot summarise {paths.root}: no metrics/{first}.seed<s>.json and no manifest.json "
                           f"that lists the finetune seeds: run notebooks/{first}.ipynb (make reproduce "
                           f"PROFILE={paths.root.name})")
    return tuple(sorted(seeds))


def _notebook_run(notebook: str, seed: int | None) -> str:
    """How to (re)write a notebook's metrics: the notebook, and for a per-seed one its seed and pipeline command."""
    if seed is None:
        return f"notebooks/{notebook}.ipynb"
    return (f"notebooks/{notebook}.ipynb with finetune.seed={seed} (python -m pcclip.pipeline --only {notebook[:2]} "
            f"--seeds {seed})")


def _load(paths: RunPaths, files: dict[str, tuple[str, int | None]]) -> dict[str, dict]:
    found, problems = {}, []
    for stem, (name, seed) in files.items():
        path = paths.metrics / f"{stem}.json"
        if not path.exists():
            problems.append(f"{path} is missing: run {_notebook_run(name, seed)}")
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"{path} is not valid JSON ({exc}): rerun notebooks/{name}.ipynb")
            continue
        lacking = [k for k in ("profile", "git_commit", "config", "rows") if k not in data]
        if lacking:
            problems.append(f"{path} lacks {lacking}: it was not written by pcclip.results.write_rows "
                            f"(rerun notebooks/{name}.ipynb)")
            continue
        found[stem] = data
    if problems:
        raise StaleResults(f"cannot summarise {paths.root}:\n  " + "\n  ".join(problems))
    return found


def _reference(values: dict[str, Any], manifest_value: Any) -> Any:
    """The manifest's value when there is one, else the value most files share (later notebook on ties)."""
    if manifest_value is not None:
        return manifest_value
    counts = Counter(json.dumps(v, sort_keys=True) for v in values.values())
    best = max(counts.values())
    latest = [json.dumps(v, sort_keys=True) for v in values.values() if counts[json.dumps(v, sort_keys=True)] == best]
    return json.loads(latest[-1])


def _shared_config(config: dict) -> dict:
    """A file's config without finetune.seed, the one setting in which the runs of one profile differ."""
    finetune = {k: v for k, v in config.get("finetune", {}).items() if k != "seed"}
    return {**config, "finetune": finetune} if "finetune" in config else config


def _seed_problems(name: str, notebook: str, data: dict, seed: int) -> list[str]:
    """A per-seed file whose config or rows name another finetune seed than its file name."""
    written = data["config"].get("finetune", {}).get("seed")
    rows = sorted({int(r["seed"]) for r in data["rows"]} - {seed})
    if written == seed and not rows:
        return []
    return [f"{name}.json holds finetune seed {written if written != seed else rows}, not {seed}: rerun "
            f"{_notebook_run(notebook, seed)}"]


def stale_problems(files: dict[str, dict], manifest: dict | None, profile: str,
                   seeds: dict[str, tuple[str, int | None]] | None = None) -> list[str]:
    """Files whose profile, git commit or config (finetune.seed aside) differ from the folder's profile / the
    manifest / the others, and per-seed files (`seeds`: stem -> (notebook, seed), `metrics_files`) of another seed."""
    problems = []
    for name, data in files.items():
        if data["profile"] != profile:
            problems.append(f"{name}.json was written by profile {data['profile']!r}, this folder is {profile!r}")
        notebook, seed = (seeds or {}).get(name, (name, None))
        if seed is not None:
            problems += _seed_problems(name, notebook, data, seed)
    if manifest and manifest.get("profile") not in (None, profile):
        problems.append(f"manifest.json is for profile {manifest['profile']!r}, this folder is {profile!r}")
    for field in ("git_commit", "config"):
        values = {name: _shared_config(data[field]) if field == "config" else data[field]
                  for name, data in files.items()}
        ref = _reference(values, (manifest or {}).get(field))
        source = "the manifest" if manifest and field in manifest else "most files"
        for name, value in values.items():
            if json.dumps(value, sort_keys=True) == json.dumps(ref, sort_keys=True):
                continue
            if field == "config":
                sections = sorted(k for k in set(value) | set(ref) if value.get(k) != ref.get(k))
                problems.append(f"{name}.json ran with another config than {source} (sections {sections})")
            else:
                problems.append(f"{name}.json is from commit {value}, expected {ref} ({source})")
    return problems


def headline_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows each headline selects by identity, tagged with the headline's title and order."""
    chosen = []
    for order, h in enumerate(HEADLINES):
        mask = (rows.task == h.task) & rows.metric.isin(h.metrics)
        for field in ("attribute", "split"):
            if getattr(h, field) is not None:
                mask &= rows[field] == getattr(h, field)
        chosen.append(rows[mask].assign(order=order, headline=h.title))
    return pd.concat(chosen, ignore_index=True)


def seed_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The headline numbers per seed, long (KEY, seed, value): the rows HEADLINES select, model "" as NO_MODEL,
    and PC-CLIP minus base of each seed as model DIFF."""
    long = headline_rows(rows)
    long = long.assign(model=long.model.replace("", NO_MODEL))[[*KEY, "seed", "value"]]
    both = long[long.model.isin(["pcclip", "base"])].pivot_table(
        index=[*KEY[:-1], "seed"], columns="model", values="value", aggfunc="first", sort=False)
    if {"pcclip", "base"} <= set(both.columns):
        diff = (both["pcclip"] - both["base"]).dropna().rename("value").reset_index().assign(model=DIFF)
        long = pd.concat([long, diff[[*KEY, "seed", "value"]]], ignore_index=True)
    return long


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    """Headline order, then notebook order, then each identity where it first appears (then models in MODELS
    order, when a column model exists; seeds stay in their order)."""
    rank = {nb: i for i, nb in enumerate(EXPECTED)} | {m: i for i, m in enumerate((*MODELS, NO_MODEL, DIFF))}
    table = table.assign(identity=table.groupby(list(KEY[:-1]), sort=False, dropna=False).ngroup())
    by = ["order", "notebook", "identity", *(["model"] if "model" in table else [])]
    keys = {"notebook": rank, "model": rank}
    return table.sort_values(by, key=lambda c: c.map(keys[c.name]) if c.name in keys else c,
                             kind="stable").drop(columns="identity")


def seed_table(rows: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: each headline number of each model per seed (seed = the seed), then its mean over the seeds
    (seed "mean") with the 95% interval lo, hi and n_seeds (lo, hi blank with one seed and on per-seed rows)."""
    per = seed_rows(rows)
    means = over_seeds(per, KEY).rename(columns={"mean": "value"}).assign(seed="mean")
    table = pd.concat([per.astype({"seed": object}), means], ignore_index=True)
    table = _sorted(table).drop(columns="order")
    table = table.reindex(columns=["headline", *WHERE, "model", "seed", "value", "lo", "hi", "n_seeds"])
    return table.astype({"n_seeds": "Int64"}).reset_index(drop=True)


def per_seed(seeds: pd.DataFrame, headline: str, **identity: str) -> pd.DataFrame:
    """The per-seed rows of `seed_table` (not the means, not the derived pcclip_minus_base) of one headline whose
    identity fields equal `identity`, e.g. per_seed(summary.seeds, "difference accuracy", variant="eval")."""
    mask = (seeds.headline == headline) & (seeds.seed != "mean") & (seeds.model != DIFF)
    for field, value in identity.items():
        mask &= seeds[field] == value
    if not mask.any():
        raise ValueError(f"no per-seed rows of headline {headline!r} with {identity}; headlines: "
                         f"{list(dict.fromkeys(seeds.headline))}")
    return seeds[mask].astype({"seed": int}).reset_index(drop=True)


def difference_for_report(seeds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Notebook 06's per-seed difference accuracy (`per_seed` of notebook 03) and the part its heatmap shows.

    Chosen by what the rows hold, so one notebook serves every profile: the held-out phrasings (variant "eval")
    where a profile has them (DiffWorld; a paper set has one description source each, all shown), and of those
    the held-out attribute combinations (split "holdout") where they exist, else every set.
    """
    rows = per_seed(seeds, "difference accuracy", notebook="03_ranking_eval")
    if (rows.variant == "eval").any():
        rows = rows[rows.variant == "eval"].reset_index(drop=True)
    held_out = rows[rows.split == "holdout"] if (rows.split == "holdout").any() else rows
    return rows, held_out.reset_index(drop=True)


def _wide(means: pd.DataFrame) -> pd.DataFrame:
    """`over_seeds` rows (KEY, mean, lo, hi, n_seeds) as one row per (headline, identity): per model the mean
    (column <model>) and its interval (<model>_lo, <model>_hi); columns empty for every row left out."""
    models = (*MODELS, NO_MODEL, DIFF)
    columns = ["headline", *WHERE, *[f"{m}{s}" for m in models for s in ("", "_lo", "_hi")], "n_seeds"]
    if means.empty:
        return pd.DataFrame(columns=columns)
    index = list(KEY[:-1])
    wide = means.pivot_table(index=index, columns="model", values=["mean", "lo", "hi"], aggfunc="first", sort=False)
    wide.columns = [m if stat == "mean" else f"{m}_{stat}" for stat, m in wide.columns]
    wide["n_seeds"] = means.groupby(index, sort=False)["n_seeds"].max()
    wide = _sorted(wide.reset_index()).reindex(columns=columns)
    empty = [c for c in wide.columns if wide[c].isna().all() or (wide[c] == "").all()]
    return wide.drop(columns=empty).reset_index(drop=True)


def headline_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (headline, identity): per model the mean over seeds (column <model>) and its 95% interval
    (<model>_lo, <model>_hi), from the rows HEADLINES select; n_seeds seeds."""
    return _wide(over_seeds(seed_rows(rows), KEY))


def notebook_rows(paths: RunPaths, notebook: str) -> pd.DataFrame:
    """Every metric row `notebook` wrote under `paths`: of all its finetune seeds (<notebook>.seed<s>.json, told
    apart by the seed column), or of its one shared file."""
    files = sorted(paths.metrics.glob(f"{notebook}.seed*.json")) or [paths.metrics / f"{notebook}.json"]
    return pd.concat([rows_frame(json.loads(f.read_text())["rows"]) for f in files], ignore_index=True)


def run_rows(files: dict[str, dict]) -> pd.DataFrame:
    """Every metric row of a run's metrics files, in notebook order."""
    return pd.concat([rows_frame(data["rows"]) for data in files.values()], ignore_index=True)


def build_summary(paths: RunPaths, expected: tuple[str, ...] = EXPECTED,
                  seeds: tuple[int, ...] | None = None) -> Summary:
    """Load, check and tabulate one run over its finetune seeds (`seeds`, default `run_seeds`); raises
    StaleResults naming every missing or stale file."""
    manifest_path = paths.root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    expected_files = metrics_files(expected, seeds or run_seeds(paths, manifest, expected))
    files = _load(paths, expected_files)
    profile = paths.root.name
    problems = stale_problems(files, manifest, profile, expected_files)
    if problems:
        raise StaleResults(f"metrics under {paths.metrics} do not come from one run:\n  " + "\n  ".join(problems)
                           + f"\nrerun them together: make reproduce PROFILE={profile}")
    seconds = {Path(nb).stem: v.get("seconds") for nb, v in (manifest or {}).get("notebooks", {}).items()}
    listing = pd.DataFrame([{"notebook": expected_files[name][0],
                             "seed": "" if expected_files[name][1] is None else str(expected_files[name][1]),
                             "file": f"metrics/{name}.json", "metrics": len(data["rows"]),
                             "git_commit": data["git_commit"], "seconds": seconds.get(name, float("nan"))}
                            for name, data in files.items()])
    commit = next(iter(files.values()))["git_commit"]
    rows = run_rows(files)
    return Summary(profile, commit, headline_table(rows), seed_table(rows), listing, manifest)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if pd.isna(value):
            return ""
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 10 else f"{value:.3f}"  # counts stay counts
    return "" if value is None else str(value)


def markdown_table(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def with_intervals(table: pd.DataFrame) -> pd.DataFrame:
    """The headline table for reading: each mean beside its 95% interval in one cell, "0.987 [0.962, 1.000]"
    (the mean alone where there is no interval), the _lo/_hi columns folded in."""
    out = table.drop(columns=[c for c in table if c.endswith(("_lo", "_hi"))])
    if "n_seeds" in out:
        out["n_seeds"] = ["" if pd.isna(n) else str(int(n)) for n in out["n_seeds"]]
    for column in out.columns:
        if f"{column}_lo" in table:
            out[column] = [_cell(m) if pd.isna(lo) else f"{_cell(m)} [{_cell(lo)}, {_cell(hi)}]"
                           for m, lo, hi in zip(table[column], table[f"{column}_lo"], table[f"{column}_hi"])]
    return out


def summary_markdown(summary: Summary) -> str:
    m = summary.manifest
    if m:  # written while the pipeline runs: the notebooks whose metrics this report reads, not its own earlier runs
        seconds = sum(v.get("seconds", 0.0) for k, v in m.get("notebooks", {}).items() if k.split(".")[0] in EXPECTED)
        run = (f"Run of `{summary.profile}` at commit `{summary.git_commit}` on {m.get('device', '?')}, "
               f"started {m.get('started', '?')}, {seconds:.0f} s in notebooks 00-05 "
               f"(overrides: {m.get('overrides') or 'none'}).")
    else:
        run = (f"Run of `{summary.profile}` at commit `{summary.git_commit}`; no manifest.json "
               "(the notebooks were not run through `python -m pcclip.pipeline`).")
    return "\n\n".join([
        f"# Results summary: profile `{summary.profile}`", run,
        "Built by `pcclip.report` from the metrics files below; `pcclip_minus_base` is PC-CLIP minus base CLIP, "
        "`value` holds metrics that belong to no single model. Each cell is the mean over the finetune seeds with "
        "its 95% t-interval in brackets (none for a single seed, e.g. the base model's own notebook 00); the "
        "numbers of each seed are in summary.csv.",
        "## Headline metrics", markdown_table(with_intervals(summary.table)),
        "## Metrics files", markdown_table(summary.files), ""])


def write_summary(paths: RunPaths, summary: Summary) -> tuple[Path, Path]:
    """results/<profile>/summary.md and summary.csv (per-seed rows and means, `seed_table`; atomic)."""
    md, csv = paths.root / "summary.md", paths.root / "summary.csv"
    write_text(md, summary_markdown(summary))
    write_text(csv, summary.seeds.round(6).to_csv(index=False))
    return md, csv


def base_study_runs(profile: str) -> dict[int, RunPaths]:
    """pretrain seed -> run folder of each base-model study run found under results/<profile>-base-seeds/."""
    found = sorted(base_study_root(profile, None).glob(f"pretrain*/{profile}"))
    return {int(p.parent.name.removeprefix("pretrain")): RunPaths(p) for p in found
            if p.parent.name.removeprefix("pretrain").isdigit()}


def base_study_table(profile: Profile, headline: str = "difference accuracy") -> pd.DataFrame:
    """The main run of `profile` and its base-model study side by side: for each identity of `headline`, one
    row per pretrain seed, per model the mean over that base model's finetune seeds with its 95% interval;
    empty while the study has not run."""
    study = base_study_runs(profile.name)
    if not study:
        return pd.DataFrame(columns=["headline", "pretrain_seed"])
    runs = {profile.pretrain.seed: run_paths(profile.name)} | study
    parts = []
    for seed, paths in sorted(runs.items()):
        table = build_summary(paths).table
        table = table[table.headline == headline].reset_index(drop=True)
        parts.append(table.assign(pretrain_seed=seed, row=table.index))
    table = pd.concat(parts, ignore_index=True).sort_values(["row", "pretrain_seed"], kind="stable")
    first = ["headline", *[c for c in WHERE if c in table], "pretrain_seed"]
    return table.reindex(columns=[*first, *[c for c in table if c not in (*first, "row")]]).reset_index(drop=True)


def write_base_study(profile: Profile) -> pd.DataFrame:
    """results/<profile>-base-seeds/summary.md and summary.csv (`base_study_table` of the difference accuracy),
    and over_base_models.csv (`base_models_table`, also in summary.md)."""
    table, pooled = base_study_table(profile), base_models_table(profile)
    root = base_study_root(profile.name, None)
    write_text(root / "summary.csv", table.round(6).to_csv(index=False))
    write_text(root / "over_base_models.csv", pooled.round(6).to_csv(index=False))
    write_text(root / "summary.md", "\n\n".join([
        f"# Base-model study: profile `{profile.name}`",
        "Difference accuracy of the main run and of the same pipeline on other base models (pretrain.seed), "
        "each the mean over its finetune seeds with the 95% t-interval; written by "
        "`python -m pcclip.pipeline --base-study`.", markdown_table(with_intervals(table)),
        "## Over base models",
        "The same numbers over base models: each cell the mean of the rows above (one per base model) with its "
        "95% t-interval over them, n_seeds the number of base models (`over_base_models.csv`). A rerun on "
        "another CPU pretrains another base model, one more draw of this spread: it should land in the 95% "
        "prediction interval of one new base model, each interval here widened by sqrt(1 + n_seeds) "
        "(`pcclip.intervals.predicting`; `python -m pcclip.report --rerun` checks both).",
        markdown_table(with_intervals(pooled)), ""]))
    return table


def over_base_models(runs: list[RunPaths]) -> pd.DataFrame:
    """summary.csv's mean rows over base models: each run (one per pretrain seed: the main run and its base-model
    study) gives its mean over its finetune seeds, and `value`, `lo`, `hi` are their mean and 95% t-interval
    over the runs, `n_seeds` the number of base models. A rerun on another CPU pretrains another base model
    ("Determinism" in the README), so this, not the interval over finetune seeds on one base, is the spread its
    base-dependent numbers are drawn from (`rerun_tables` widens it to where one new base model should land)."""
    means = []
    for i, paths in enumerate(runs):
        seeds = build_summary(paths).seeds
        means.append(seeds[seeds.seed == "mean"].assign(seed=i))
    key = ["headline", *WHERE, "model"]
    pooled = over_seeds(pd.concat(means, ignore_index=True), key).rename(columns={"mean": "value"})
    return pooled.assign(seed="mean")[[*key, "seed", "value", "lo", "hi", "n_seeds"]]


def base_models_table(profile: Profile, headline: str = "difference accuracy") -> pd.DataFrame:
    """`over_base_models` of the main run of `profile` and its base-model study as a headline table: per model
    the mean over base models and its 95% interval, n_seeds the number of base models; empty without a study."""
    study = base_study_runs(profile.name)
    if not study:
        return pd.DataFrame(columns=["headline"])
    pooled = over_base_models([run_paths(profile.name), *study.values()])
    pooled = pooled[pooled.headline == headline].rename(columns={"value": "mean"})
    order = {h.title: i for i, h in enumerate(HEADLINES)}
    return _wide(pooled.assign(order=pooled.headline.map(order))[[*KEY, "mean", "lo", "hi", "n_seeds"]])


def rerun_table(main: pd.DataFrame, rerun: pd.DataFrame, draws: int | None = None) -> pd.DataFrame:
    """Each 95% interval of a run's summary.csv (`Summary.seeds`: a mean over two or more finetune seeds; or
    `over_base_models`) beside the mean of the same number in a rerun of that pipeline (another clone, machine or
    thread count), with `inside` true where the rerun's mean lies in the interval: the check a reader's
    `make reproduce` is asked to pass. `with_prediction` adds the interval a rerun should land in, for `draws`
    new draws behind each rerun mean (None: its finetune seeds). Numbers the rerun lacks are left out."""
    key = ["headline", *WHERE, "model"]
    ours = main[(main.seed == "mean") & main.lo.notna()][[*key, "value", "lo", "hi", "n_seeds"]]
    theirs = rerun[rerun.seed == "mean"][[*key, "value", "n_seeds"]].rename(
        columns={"value": "rerun", "n_seeds": "rerun_seeds"})
    table = ours.merge(theirs, on=key, how="inner", sort=False)
    table = table.assign(inside=(table.rerun >= table.lo) & (table.rerun <= table.hi)).reset_index(drop=True)
    return with_prediction(table, table.rerun_seeds if draws is None else draws)


def with_prediction(table: pd.DataFrame, draws: int | pd.Series) -> pd.DataFrame:
    """`table` (`rerun_table`'s columns) with `pred_lo`, `pred_hi`: each interval widened to the 95% prediction
    interval of a mean over `draws` new draws (`intervals.predicting`), and `inside_pred` where the rerun's mean
    lies in it. An interval of the mean holds a new run's mean well under 95% of the time even when nothing but
    the draw differs; this one holds it 95% of the time, so it is what a rerun is fairly checked against."""
    lo, hi = predicting(table.lo, table.hi, table.n_seeds, draws)
    return table.assign(pred_lo=lo, pred_hi=hi, inside_pred=(table.rerun >= lo) & (table.rerun <= hi))


def rerun_counts(table: pd.DataFrame, by: str = "headline") -> pd.DataFrame:
    """Per value of `by` (a column of `rerun_table`: headline, model) how many intervals hold the rerun's mean,
    how many prediction intervals do, of how many, then the same over all ("all")."""
    counts = table.groupby(by, sort=False).agg(inside=("inside", "sum"), inside_pred=("inside_pred", "sum"),
                                               intervals=("inside", "size")).reset_index()
    total = pd.DataFrame([{by: "all", **counts[["inside", "inside_pred", "intervals"]].sum()}])
    return pd.concat([counts, total], ignore_index=True).astype({"inside": int, "inside_pred": int, "intervals": int})


def _shown(folder: Path) -> str:
    """`folder` relative to the repository when inside it (as a reader's clone has it), else as given."""
    try:
        return str(folder.resolve().relative_to(repo_root()))
    except ValueError:
        return str(folder)


FINETUNE_SEEDS, BASE_MODELS = "finetune seeds", "base models"  # the `over` column of a rerun's summary.csv


def rerun_tables(main: RunPaths, mine: Summary, theirs: Summary,
                 study: dict[int, RunPaths] | None = None) -> pd.DataFrame:
    """`rerun_table` against the main run's intervals over finetune seeds (`over` = FINETUNE_SEEDS; predicting the
    rerun's mean over its own finetune seeds), then, when the main run has a base-model study (`study`: pretrain
    seed -> run), against the intervals over base models of the main run and the study together (BASE_MODELS,
    `over_base_models`; predicting one new base model, which is what a rerun on another CPU is). Empty when the
    main run has no interval at all (one finetune seed, no study). `mine` and `theirs` are the summaries of the
    main run (`main`) and of the rerun."""
    tables = [rerun_table(mine.seeds, theirs.seeds).assign(over=FINETUNE_SEEDS)]
    if study:  # the rerun is one new base model
        pooled = over_base_models([main, *study.values()])
        tables.append(rerun_table(pooled, theirs.seeds, draws=1).assign(over=BASE_MODELS))
    return pd.concat(tables, ignore_index=True)


def write_rerun(main: RunPaths, rerun: RunPaths, study: dict[int, RunPaths] | None = None, out: Path | None = None,
                committed: tuple[Path, str] | None = None) -> pd.DataFrame:
    """out/summary.csv (`rerun_tables`; `out` defaults to <rerun>/..) and summary.md (the counts per kind of
    interval, then the numbers outside the intervals over finetune seeds). `committed` = (tree, revision) when
    the main run and study were read from `committed_results`: summary.md names them by revision, not by the
    temporary tree. A main run with no interval to check against (one finetune seed, no study) raises ValueError
    saying what to do, and writes nothing."""
    def shown(folder: Path) -> str:
        if committed is None or not folder.is_relative_to(committed[0]):
            return f"`{_shown(folder)}`"
        return f"`results/{folder.relative_to(committed[0])}` as git revision `{committed[1]}` holds it"

    first, second = build_summary(main), build_summary(rerun)
    table = rerun_tables(main, first, second, study)
    if table.empty:
        seeds = sorted(first.seeds.seed[first.seeds.seed != "mean"].unique())
        raise ValueError(f"{shown(main.root)} has no 95% interval to check a rerun against: its numbers come from "
                         f"finetune seeds {seeds} and it has no base-model study. Run both with two or more seeds "
                         f"(--set finetune.seeds=0,1,2), or compare the numbers of their summary.csv directly")
    root = rerun.root.parent if out is None else out
    write_text(root / "summary.csv", table.round(6).to_csv(index=False))
    runs = [f"{shown(paths.root)} at commit `{run.git_commit}` on {(run.manifest or {}).get('device', '?')}"
            for paths, run in ((main, first), (rerun, second))]
    parts = [f"# Rerun of `{first.profile}`: does its mean fall inside the committed 95% intervals?",
             f"Main run: {runs[0]}. Rerun: {runs[1]}. Written by `python -m pcclip.report --rerun`.",
             "`inside`: the rerun's mean lies in the 95% t-interval of the main run's mean. `inside_pred`: it lies in "
             "that interval widened to the 95% prediction interval of the rerun's own mean (`pred_lo`, `pred_hi` "
             "in summary.csv; half-width times sqrt(1 + n/m) for n draws behind the interval and m behind the "
             "rerun's mean), which a rerun drawn alike falls in 95% of the time; the interval of the mean holds it "
             "far less often (about 84% for one new base model against three)."]
    kinds = {FINETUNE_SEEDS: "the main run's mean over its finetune seeds with its 95% t-interval (summary.csv "
                             "of the main run): the spread of finetuning on one base model",
             BASE_MODELS: "the mean over base models (the main run and its base-model study, each its mean over "
                          "its finetune seeds) with its 95% t-interval: the spread a rerun that pretrains another "
                          "base model (another CPU) is drawn from"}
    for over, part in table.groupby("over", sort=False):
        where = ", ".join(shown(p.root) for p in (study or {}).values())
        parts += [f"## Against the intervals over {over}",
                  f"Each interval is {kinds[over]}" + (f"; study runs: {where}." if over == BASE_MODELS else "."),
                  markdown_table(rerun_counts(part)), markdown_table(rerun_counts(part, "model"))]
    outside = table[(table.over == FINETUNE_SEEDS) & ~table.inside].drop(columns=["inside", "over"])
    write_text(root / "summary.md", "\n\n".join([*parts, f"## Outside the intervals over {FINETUNE_SEEDS}",
                                                  markdown_table(outside), ""]))
    return table


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def headline_section(summary_md: str) -> str:
    """The headline table of a summary.md, as the README shows it."""
    start = summary_md.index("## Headline metrics") + len("## Headline metrics")
    return summary_md[start:summary_md.index("## Metrics files")].strip()


def sync_readme(readme: Path, summary_md: Path) -> bool:
    """Copy the headline table of `summary_md` between the README's results markers; True if changed."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} block to fill")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{headline_section(summary_md.read_text())}\n{README_END}{tail}"
    if new != text:
        write_text(readme, new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    """`python -m pcclip.report [PROFILE] [--readme PATH] [--rerun RUN_FOLDER [--against REV]]` (`make reproduce`
    runs it last; `make check-reproduce` runs `--rerun results/<profile> --against HEAD`)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m pcclip.report", description=__doc__.splitlines()[0])
    parser.add_argument("profile", nargs="?", default="diffworld")
    parser.add_argument("--readme", type=Path, default=repo_root() / "README.md",
                        help="the README whose results table and quoted numbers to refresh (default: the checkout's)")
    parser.add_argument("--rerun", type=Path, metavar="RUN_FOLDER",
                        help="a rerun's results/<profile> folder, e.g. from a fresh clone: write its check against "
                             "the committed intervals beside it (RUN_FOLDER/../summary.md) and stop")
    parser.add_argument("--against", metavar="REV",
                        help="with --rerun: read the main run and its base-model study from git revision REV (e.g. "
                             "HEAD), not from the working tree, which your own `make reproduce` wrote over; the check "
                             "goes to results/<profile>-rerun-check/")
    args = parser.parse_args(argv)
    if args.against and not args.rerun:
        parser.error("--against REV needs --rerun RUN_FOLDER, the rerun to check (e.g. results/diffworld)")
    if args.rerun:
        out = results_base() / f"{args.profile}-rerun-check" if args.against else args.rerun.parent
        with tempfile.TemporaryDirectory(prefix="pcclip-committed-") as tmp:
            committed = None  # (tree, revision) once read from git
            if args.against:
                commit = committed_results(args.against, [args.profile], Path(tmp),
                                           optional=[f"{args.profile}-base-seeds"])
                committed = (Path(tmp), f"{args.against} ({commit[:12]})")
            with results_tree(committed[0]) if committed else nullcontext():
                main_run, study = run_paths(args.profile), base_study_runs(args.profile)
            table = write_rerun(main_run, RunPaths(args.rerun), study, out, committed)
        for over, part in table.groupby("over", sort=False):
            print(f"against the intervals over {over}:\n{rerun_counts(part).to_string(index=False)}")
        print(f"-> {out / 'summary.md'}")
        return 0
    root = run_paths(args.profile).root
    changed = sync_readme(args.readme, root / "summary.md")
    print(f"{args.readme.name} results table {'updated' if changed else 'already up to date'} from "
          f"results/{args.profile}/summary.md")
    for quote in refresh_readme(args.readme, root.parent):
        print(f"{args.readme.name}:{quote.line}: {quote.written} -> {quote.expected}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
