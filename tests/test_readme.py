"""The README shows the committed diffworld results exactly as the report wrote them."""
from __future__ import annotations

import pytest

from pcclip.paths import repo_root
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
