"""Numbers quoted in the README's prose, each tagged with the result it was read from, checked and refreshed.

A measured number in prose is followed at once by an HTML comment (invisible in rendered Markdown) naming its
source, so `python -m pcclip.report` can rewrite it when the results change and a test can refuse a stale one:

    0.999<!-- row notebook=03_ranking_eval task=difference split=test attribute=size model=pcclip metric=accuracy -->
    0.47<!-- row notebook=03_ranking_eval task=difference split=test model=base metric=accuracy agg=min -->
    3<!-- manifest profile=rehearsal key=total_seconds scale=1/60 -->

A number that looks measured but is not in the committed results (the paper's, another commit's, a setting)
carries `<!-- unchecked: where it comes from -->` instead; `untagged` lists the numbers of a section that carry
neither (two or more decimals, or a percent, in prose outside tables and code).

`row` selects metric rows of results/<profile>/metrics/*.json by identity (any field of
`pcclip.results.IDENTITY`; `a|b` for either value, `field=` for blank). A tag without `seed=` reads the mean
over the finetune seeds (the per-seed files of notebooks 02-05; the summary's headline mean), `seed=1` one seed.
After that it must match one number unless `agg` (min, max, absmax, mean) combines several. `manifest` reads a key of
results/<profile>/manifest.json (`a/b` for nested keys). `profile` defaults to diffworld, `scale` (a number or
fraction) multiplies the value. The written number sets the rounding: its decimals, a leading `+` (sign always
shown), a trailing `%` (percent) and thousands commas are kept when the number is rewritten.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import pandas as pd

from .atomic import write_text
from .results import IDENTITY, rows_frame

DEFAULT_PROFILE = "diffworld"
NUMBER = r"(?:(?<=[\s(])[+-])?(?<![\w.,])\d+(?:,\d{3})*(?:\.\d+)?%?"
TAG = re.compile(rf"(?P<number>{NUMBER})<!-- (?P<kind>row|manifest)(?P<args>(?: [^\s=]+=\S*)*) -->")
UNCHECKED = "<!-- unchecked: "
MEASURED = re.compile(NUMBER)
LOOKS_MEASURED = re.compile(r".*\.\d\d+%?|.*%")  # two or more decimals, or a percent
AGGREGATES: dict[str, Callable[[pd.Series], float]] = {
    "min": pd.Series.min, "max": pd.Series.max, "absmax": lambda s: s.abs().max(), "mean": pd.Series.mean}
OPTIONS = ("profile", "agg", "scale")


@dataclass(frozen=True)
class Quote:
    """One tagged number: what the README says, what the results say (formatted the same way), and where."""

    line: int
    written: str
    expected: str
    tag: str


def _args(text: str, where: str, allowed: tuple[str, ...]) -> dict[str, str]:
    args = dict(part.split("=", 1) for part in text.split())
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown tag fields {unknown}; known: {list(allowed)}")
    return args


def _select(rows: pd.DataFrame, args: dict[str, str], where: str) -> float:
    mask = pd.Series(True, index=rows.index)
    for field in IDENTITY:
        if field in args:
            mask &= rows[field].astype(str).isin(args[field].split("|"))
    chosen = rows[mask]
    if chosen.empty:
        raise ValueError(f"{where}: no metric row matches; check the fields against the rows of the metrics files")
    if "seed" not in args:  # the mean over the finetune seeds of each identity
        others = [f for f in IDENTITY if f != "seed"]
        chosen = chosen.groupby(others, sort=False, as_index=False)["value"].mean().assign(seed=-1)
    if "agg" in args:
        if args["agg"] not in AGGREGATES:
            raise ValueError(f"{where}: agg={args['agg']} is not one of {sorted(AGGREGATES)}")
        return float(AGGREGATES[args["agg"]](chosen.value))
    if len(chosen) > 1:
        differ = [f for f in IDENTITY if chosen[f].nunique() > 1]
        raise ValueError(f"{where}: {len(chosen)} rows match; name one with the fields {differ} or add agg=")
    return float(chosen.value.iloc[0])


def _manifest_value(manifest: dict, key: str, where: str) -> float:
    value = manifest
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"{where}: manifest.json has no key {key!r}")
        value = value[part]
    return float(value)


def format_like(written: str, value: float) -> str:
    """`value` written with the rounding, sign, percent and thousands style of `written`."""
    body = written.rstrip("%").lstrip("+-")
    decimals = len(body.split(".")[1]) if "." in body else 0
    sign = "+" if written.startswith("+") else ""
    comma = "," if "," in body else ""
    kind = "%" if written.endswith("%") else "f"
    return f"{value:{sign}z{comma}.{decimals}{kind}}"


class Results:
    """The committed results of each profile, loaded once: metric rows and manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._rows: dict[str, pd.DataFrame] = {}
        self._manifests: dict[str, dict] = {}

    def rows(self, profile: str) -> pd.DataFrame:
        if profile not in self._rows:
            files = sorted((self.root / profile / "metrics").glob("*.json"))
            if not files:
                raise ValueError(f"no metrics files under {self.root / profile / 'metrics'}: "
                                 f"run make reproduce PROFILE={profile}")
            self._rows[profile] = pd.concat([rows_frame(json.loads(f.read_text())["rows"]) for f in files],
                                            ignore_index=True)
        return self._rows[profile]

    def manifest(self, profile: str) -> dict:
        if profile not in self._manifests:
            path = self.root / profile / "manifest.json"
            if not path.exists():
                raise ValueError(f"{path} is missing: run make reproduce PROFILE={profile}")
            self._manifests[profile] = json.loads(path.read_text())
        return self._manifests[profile]

    def value(self, kind: str, args_text: str, where: str) -> float:
        allowed = (*IDENTITY, *OPTIONS) if kind == "row" else ("key", *OPTIONS)
        args = _args(args_text, where, allowed)
        profile = args.get("profile", DEFAULT_PROFILE)
        if kind == "row":
            value = _select(self.rows(profile), args, where)
        elif "key" not in args:
            raise ValueError(f"{where}: a manifest tag needs key=<name> (a/b for nested keys)")
        else:
            value = _manifest_value(self.manifest(profile), args["key"], where)
        return value * float(Fraction(args.get("scale", "1")))


def _tags(text: str, results: Results, name: str) -> list[tuple[re.Match, Quote]]:
    matches = list(TAG.finditer(text))
    well_formed = {m.start("kind") for m in matches}
    for opening in re.finditer(r"<!-- (?:row|manifest)\b", text):
        if opening.start() + 5 not in well_formed:
            line = text.count("\n", 0, opening.start()) + 1
            raise ValueError(f"{name}:{line}: malformed number tag {text[opening.start():opening.start() + 80]!r}: "
                             "write it right after the number as <!-- row field=value ... -->")
    out = []
    for match in matches:
        line = text.count("\n", 0, match.start()) + 1
        value = results.value(match["kind"], match["args"], f"{name}:{line}: {match[0]}")
        out.append((match, Quote(line, match["number"], format_like(match["number"], value), match[0])))
    return out


def quotes(text: str, results: Results, name: str = "README.md") -> list[Quote]:
    """Every tagged number of `text` beside its value in the results; raises ValueError on a malformed tag or
    one that selects no row."""
    return [quote for _, quote in _tags(text, results, name)]


def stale(text: str, results: Results, name: str = "README.md") -> list[Quote]:
    """The tagged numbers whose written value differs from the results."""
    return [q for q in quotes(text, results, name) if q.written != q.expected]


def refresh_text(text: str, results: Results, name: str = "README.md") -> str:
    """`text` with every tagged number rewritten from the results, in its own format."""
    pieces, done = [], 0
    for match, quote in _tags(text, results, name):
        pieces += [text[done:match.start()], quote.expected]
        done = match.end("number")
    return "".join(pieces) + text[done:]


def refresh_readme(readme: Path, results_root: Path) -> list[Quote]:
    """Rewrite the README's tagged numbers from results/ (atomic); returns the numbers that changed."""
    text, results = readme.read_text(), Results(results_root)
    changed = stale(text, results, readme.name)
    if changed:
        write_text(readme, refresh_text(text, results, readme.name))
    return changed


def section(text: str, heading: str) -> str:
    """The prose of the Markdown section `heading` (up to the next `## `), without tables (the results block is one)
    or fenced code."""
    lines = text.split("\n")
    if heading not in lines:
        raise ValueError(f"no line {heading!r} in the README")
    body, code = [], False
    for line in lines[lines.index(heading) + 1:]:
        if line.startswith("## "):
            break
        code ^= line.startswith("```")
        if not code and not line.startswith(("|", "```")):
            body.append(line)
    return "\n".join(body)


def untagged(text: str, heading: str) -> list[str]:
    """Numbers of section `heading` that look measured (two or more decimals, or a percent) and carry no tag."""
    prose = section(text, heading)
    return [f"{m[0]} in ...{prose[max(0, m.start() - 40):m.end()]}" for m in MEASURED.finditer(prose)
            if LOOKS_MEASURED.fullmatch(m[0]) and not (TAG.match(prose, m.start())
                                                      or prose.startswith(UNCHECKED, m.end()))]
