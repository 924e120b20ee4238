"""environment.yml and pyproject.toml must describe the same dependencies."""
from __future__ import annotations

import tomllib

from pcclip.paths import repo_root


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    reqs = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs |= set(extra)
    return reqs


def _environment_requirements() -> set[str]:
    lines = (repo_root() / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    items = [line.strip()[2:].strip() for line in lines[start + 1:] if line.strip().startswith("- ")]
    return {item for item in items if not item.startswith("-e")}


def test_environment_yml_matches_pyproject() -> None:
    assert _environment_requirements() == _pyproject_requirements()


def test_torch_pinned_to_the_local_build() -> None:
    assert "torch==2.14.1" in _pyproject_requirements()
