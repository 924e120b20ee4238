"""The results report: metrics of notebooks 00-05 -> results/<profile>/summary.md and summary.csv.

Every number is a metric row written by `pcclip.results.write_rows`; headlines are chosen by
the rows' identity (task, metric, attribute), never by parsing names, and nothing is typed.
The report refuses a folder whose metrics are missing or stale (another git commit, profile
or config than the rest of the run / its manifest) and names the files to rebuild, so a
summary never mixes two runs. `python -m pcclip.report` copies the headline table into the README and
rewrites the numbers its prose quotes (`pcclip.readme_numbers`).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import write_text
from .paths import RunPaths
from .readme_numbers import refresh_readme
from .results import rows_frame

EXPECTED: tuple[str, ...] = ("00_base_model", "01_data_synthesis", "02_finetune", "03_ranking_eval",
                             "04_comparative_prompting", "05_embedding_geometry")
MODELS: tuple[str, ...] = ("base", "pcclip", "pcclip_wa", "caption_ft")  # columns, in this order
NO_MODEL = "value"  # column of metrics that belong to no model (data sizes, image-only geometry)
WHERE: tuple[str, ...] = ("notebook", "task", "dataset", "split", "variant", "attribute", "metric")


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
    table: pd.DataFrame  # headline, identity of the rows, one column per model, value, pcclip_minus_base
    files: pd.DataFrame  # notebook, file, metrics, git_commit, seconds
    manifest: dict | None


def _load(paths: RunPaths, expected: tuple[str, ...]) -> dict[str, dict]:
    found, problems = {}, []
    for name in expected:
        path = paths.metrics / f"{name}.json"
        if not path.exists():
            problems.append(f"{path} is missing: run notebooks/{name}.ipynb")
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
        found[name] = data
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


def stale_problems(files: dict[str, dict], manifest: dict | None, profile: str) -> list[str]:
    """Files whose profile, git commit or config differ from the folder's profile / the manifest / the others."""
    problems = []
    for name, data in files.items():
        if data["profile"] != profile:
            problems.append(f"{name}.json was written by profile {data['profile']!r}, this folder is {profile!r}")
    if manifest and manifest.get("profile") not in (None, profile):
        problems.append(f"manifest.json is for profile {manifest['profile']!r}, this folder is {profile!r}")
    for field in ("git_commit", "config"):
        values = {name: data[field] for name, data in files.items()}
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


def headline_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (headline, identity), one column per model, from the rows HEADLINES select."""
    columns = ["headline", *WHERE, *MODELS, NO_MODEL, "pcclip_minus_base"]
    long = headline_rows(rows)
    if long.empty:
        return pd.DataFrame(columns=columns)
    long = long.assign(model=long.model.replace("", NO_MODEL))
    index = ["order", "headline", *WHERE]
    wide = long.pivot_table(index=index, columns="model", values="value", aggfunc="first",
                            sort=False).reset_index()
    order = {nb: i for i, nb in enumerate(EXPECTED)}
    wide = wide.sort_values(["order", "notebook"], key=lambda c: c.map(order) if c.name == "notebook" else c,
                            kind="stable")
    wide = wide.reindex(columns=["headline", *WHERE, *MODELS, NO_MODEL])
    wide["pcclip_minus_base"] = wide["pcclip"] - wide["base"]
    wide.columns.name = None
    empty = [c for c in wide.columns if wide[c].isna().all() or (wide[c] == "").all()]
    return wide.drop(columns=empty).reset_index(drop=True)


def run_rows(files: dict[str, dict]) -> pd.DataFrame:
    """Every metric row of a run's metrics files, in notebook order."""
    return pd.concat([rows_frame(data["rows"]) for data in files.values()], ignore_index=True)


def build_summary(paths: RunPaths, expected: tuple[str, ...] = EXPECTED) -> Summary:
    """Load, check and tabulate one run; raises StaleResults naming every missing or stale file."""
    files = _load(paths, expected)
    manifest_path = paths.root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    profile = paths.root.name
    problems = stale_problems(files, manifest, profile)
    if problems:
        raise StaleResults(f"metrics under {paths.metrics} do not come from one run:\n  " + "\n  ".join(problems)
                           + f"\nrerun them together: make reproduce PROFILE={profile}")
    seconds = {Path(nb).stem: v.get("seconds") for nb, v in (manifest or {}).get("notebooks", {}).items()}
    listing = pd.DataFrame([{"notebook": name, "file": f"metrics/{name}.json", "metrics": len(data["rows"]),
                             "git_commit": data["git_commit"], "seconds": seconds.get(name, float("nan"))}
                            for name, data in files.items()])
    commit = next(iter(files.values()))["git_commit"]
    return Summary(profile, commit, headline_table(run_rows(files)), listing, manifest)


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


def summary_markdown(summary: Summary) -> str:
    m = summary.manifest
    if m:  # written while the pipeline runs: the report's own notebook is not timed yet
        seconds = m.get("total_seconds") or sum(v.get("seconds", 0.0) for v in m.get("notebooks", {}).values())
        run = (f"Run of `{summary.profile}` at commit `{summary.git_commit}` on {m.get('device', '?')}, "
               f"started {m.get('started', '?')}, {seconds:.0f} s of notebooks so far "
               f"(overrides: {m.get('overrides') or 'none'}).")
    else:
        run = (f"Run of `{summary.profile}` at commit `{summary.git_commit}`; no manifest.json "
               "(the notebooks were not run through `python -m pcclip.pipeline`).")
    return "\n\n".join([
        f"# Results summary: profile `{summary.profile}`", run,
        "Built by `pcclip.report` from the metrics files below; `pcclip_minus_base` is PC-CLIP minus base CLIP, "
        "`value` holds metrics that belong to no single model.",
        "## Headline metrics", markdown_table(summary.table),
        "## Metrics files", markdown_table(summary.files), ""])


def write_summary(paths: RunPaths, summary: Summary) -> tuple[Path, Path]:
    """results/<profile>/summary.md and summary.csv (atomic)."""
    md, csv = paths.root / "summary.md", paths.root / "summary.csv"
    write_text(md, summary_markdown(summary))
    write_text(csv, summary.table.round(6).to_csv(index=False))
    return md, csv


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


if __name__ == "__main__":
    import sys

    from .paths import repo_root, run_paths

    profile = sys.argv[1] if len(sys.argv) > 1 else "diffworld"
    readme = repo_root() / "README.md"
    changed = sync_readme(readme, run_paths(profile).root / "summary.md")
    print(f"README results table {'updated' if changed else 'already up to date'} from results/{profile}/summary.md")
    for quote in refresh_readme(readme, run_paths(profile).root.parent):
        print(f"README.md:{quote.line}: {quote.written} -> {quote.expected}")
