"""The README shows the committed results exactly as the report wrote them: the table and the numbers in its prose."""
from __future__ import annotations

import json
import re

import pytest

from pcclip.paths import repo_root
from pcclip.readme_numbers import Results, quotes, refresh_readme, section, stale, untagged
from pcclip.report import README_END, README_START, headline_section, sync_readme


def test_readme_table_matches_committed_summary() -> None:
    summary = repo_root() / "results" / "diffworld" / "summary.md"
    readme = (repo_root() / "README.md").read_text()
    block = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert block == headline_section(summary.read_text())


def test_sync_readme_fills_only_the_marked_block(tmp_path) -> None:
    readme, summary = tmp_path / "README.md", tmp_path / "summary.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\noutro\n")
    summary.write_text("# s\n\n## Headline metrics\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Metrics files\n\n| f |\n")
    assert sync_readme(readme, summary)
    assert readme.read_text() == f"intro\n{README_START}\n| a | b |\n|---|---|\n| 1 | 2 |\n{README_END}\noutro\n"
    assert not sync_readme(readme, summary)


def test_sync_readme_needs_markers(tmp_path) -> None:
    (tmp_path / "README.md").write_text("no markers\n")
    (tmp_path / "summary.md").write_text("## Headline metrics\n\n## Metrics files\n")
    with pytest.raises(ValueError, match="results:start"):
        sync_readme(tmp_path / "README.md", tmp_path / "summary.md")


# Numbers quoted in the README's prose (pcclip.readme_numbers).

RESULTS = repo_root() / "results"
NOT_FROM_RESULTS = ("## Benchmarks",)  # speed figures measured by benchmarks/, not rows of a run


def test_readme_prose_numbers_match_committed_results() -> None:
    quoted = quotes((repo_root() / "README.md").read_text(), Results(RESULTS))
    wrong = [f"README.md:{q.line}: says {q.written}, the results say {q.expected}" for q in quoted
             if q.written != q.expected]
    assert len(quoted) >= 50  # the prose's result numbers are tagged (56 today)
    assert not wrong, "\n".join(wrong) + "\nrefresh them: python -m pcclip.report"


def test_readme_prose_numbers_all_name_their_source() -> None:
    text = (repo_root() / "README.md").read_text()
    headings = [line for line in text.split("\n") if line.startswith("## ") and line not in NOT_FROM_RESULTS]
    missing = {h: untagged(text, h) for h in headings if untagged(text, h)}
    assert not missing, f"tag these with <!-- row ... --> or <!-- unchecked: why -->: {missing}"


# What an `unchecked:` comment may stand for outside Benchmarks: a setting, one of issue 15's targets, a number a
# named test checks, or the wall time of `time make reproduce`. A one-off run's numbers stay in git history.
UNCHECKED_KINDS = re.compile(r"a setting|issue 15's (target|bound)|tests/test_\w+\.py|`time make reproduce`")


def test_unchecked_numbers_are_settings_targets_wall_times_or_checked_by_a_test() -> None:
    text = (repo_root() / "README.md").read_text()
    headings = [line for line in text.split("\n") if line.startswith("## ") and line not in NOT_FROM_RESULTS]
    reasons = [(h, why) for h in headings for why in re.findall(r"<!-- unchecked: (.*?) -->", section(text, h))]
    assert reasons, "the README quotes issue 15's targets, so some numbers are unchecked"
    other = [f"{h}: {why}" for h, why in reasons if not UNCHECKED_KINDS.search(why)]
    assert not other, "quote these from results (a row or manifest tag) or drop them:\n" + "\n".join(other)


def _row(**fields) -> dict:
    return {"notebook": "03_ranking_eval", "task": "difference", "dataset": "diffworld", "split": "test",
            "variant": "eval", "attribute": "size", "model": "pcclip", "seed": 0, "metric": "accuracy",
            "value": 0.9875, "se": None, "n": None, **fields}


@pytest.fixture
def results(tmp_path) -> Results:
    metrics = tmp_path / "results" / "diffworld" / "metrics"
    metrics.mkdir(parents=True)
    rows = [_row(), _row(model="base", value=0.4712), _row(attribute="x", model="base", value=0.5051),
            _row(variant="", task="comparative", metric="gain", value=-0.0004),
            _row(variant="tuned", task="comparative", metric="gain", value=0.0235),
            _row(task="analogy", metric="named", value=0.8125)]
    (metrics / "03_ranking_eval.json").write_text(json.dumps({"rows": rows}))
    (tmp_path / "results" / "diffworld" / "manifest.json").write_text(
        json.dumps({"total_seconds": 189.3, "notebooks": {"02_finetune.ipynb": {"seconds": 1376.7}}}))
    return Results(tmp_path / "results")


SIZE = "<!-- row task=difference attribute=size model=pcclip -->"
BASE_MIN = "<!-- row task=difference model=base agg=min -->"
GAIN = "<!-- row task=comparative variant= -->"


def test_tagged_numbers_are_read_with_the_prose_rounding(results) -> None:
    text = (f"size 0.988{SIZE} (0.99{SIZE}), base 0.47{BASE_MIN}-0.51<!-- row task=difference model=base agg=max -->,"
            f" gain +0.000{GAIN} and +0.02<!-- row task=comparative variant=tuned -->, named 81%"
            "<!-- row task=analogy -->, ran 3<!-- manifest key=total_seconds scale=1/60 --> min,"
            " 02 took 1,377<!-- manifest key=notebooks/02_finetune.ipynb/seconds --> s,"
            " base mean 0.488<!-- row task=difference model=base agg=mean -->")  # (0.4712 + 0.5051) / 2
    assert [q.written for q in quotes(text, results)] == ["0.988", "0.99", "0.47", "0.51", "+0.000", "+0.02",
                                                          "81%", "3", "1,377", "0.488"]
    assert stale(text, results) == []


def test_a_stale_number_fails_and_refresh_rewrites_it_in_its_format(results, tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\nsize 0.999{SIZE}, gain +0.01{GAIN} and 50%<!-- row task=analogy --> named\n")
    wrong = stale(readme.read_text(), results)
    assert [(q.line, q.written, q.expected) for q in wrong] == [(2, "0.999", "0.988"), (2, "+0.01", "+0.00"),
                                                                (2, "50%", "81%")]
    assert [q.expected for q in refresh_readme(readme, tmp_path / "results")] == ["0.988", "+0.00", "81%"]
    assert readme.read_text() == f"intro\nsize 0.988{SIZE}, gain +0.00{GAIN} and 81%<!-- row task=analogy --> named\n"
    assert refresh_readme(readme, tmp_path / "results") == []


@pytest.mark.parametrize(("tag", "error"), [
    ("<!-- row model=base -->", r"2 rows match; name one with the fields \['attribute'\]"),
    ("<!-- row model=caption_ft -->", "no metric row matches"),
    ("<!-- row modle=base -->", r"unknown tag fields \['modle'\]"),
    ("<!-- row model=base agg=median -->", "agg=median is not one of"),
    ("<!-- row model base -->", "malformed number tag"),
    ("<!-- manifest key=seconds -->", "manifest.json has no key 'seconds'"),
    ("<!-- row profile=paper -->", "no metrics files under .*paper"),
])
def test_a_tag_that_names_no_single_value_is_refused(results, tag, error) -> None:
    with pytest.raises(ValueError, match=error):
        quotes(f"line one\nsays 0.5{tag}\n", results)


def test_untagged_lists_measured_looking_numbers_without_a_source() -> None:
    text = ("## A\nlr 1e-3 over 600 steps reaches 0.93 and 12% of pairs, 0.5 at alpha 0.8; 0.97"
            f"{SIZE} and 0.83<!-- unchecked: commit abc --> are sourced.\n| table | 0.44 |\n```\n0.55\n```\n"
            "## B\n0.66\n")
    assert [u.split(" in ")[0] for u in untagged(text, "## A")] == ["0.93", "12%"]
    with pytest.raises(ValueError, match="no line '## C'"):
        untagged(text, "## C")


def test_a_tag_reads_the_mean_over_finetune_seeds_unless_it_names_one(tmp_path) -> None:
    """Per-seed files (notebooks 02-05) hold one row per seed: a tag quotes their mean, as the summary's headline
    does, or one seed with seed=; a shared file's single row is read as before."""
    metrics = tmp_path / "results" / "diffworld" / "metrics"
    metrics.mkdir(parents=True)
    for seed, value in ((0, 0.90), (1, 0.95), (2, 0.97)):
        rows = [_row(seed=seed, value=value), _row(seed=seed, attribute="x", value=value - 0.2)]
        (metrics / f"03_ranking_eval.seed{seed}.json").write_text(json.dumps({"rows": rows}))
    results = Results(tmp_path / "results")
    text = (f"mean 0.940{SIZE}, seed 1 0.950<!-- row task=difference attribute=size model=pcclip seed=1 -->, "
            "lowest mean 0.740<!-- row task=difference model=pcclip agg=min -->")
    assert [(q.written, q.expected) for q in quotes(text, results)] == [("0.940", "0.940"), ("0.950", "0.950"),
                                                                       ("0.740", "0.740")]
    with pytest.raises(ValueError, match=r"2 rows match; name one with the fields \['attribute'\]"):
        quotes("says 0.5<!-- row model=pcclip -->", results)  # seeds are averaged, attributes are not
