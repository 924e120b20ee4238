"""The results tree as a git revision holds it: read back after a rerun wrote over the working tree's.

`make reproduce` writes into results/<profile>/, the folder whose committed intervals it is checked against, so the
check reads the committed run from git itself (`git archive`), not from the working tree.
"""
from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Sequence

from .paths import repo_root


def _git(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=repo_root(), capture_output=True)
    except OSError as err:
        raise ValueError(f"git cannot run here ({err}): checking against committed results needs git and a clone of "
                         f"the repository") from None


def committed_results(rev: str, folders: Sequence[str], into: Path, optional: Sequence[str] = ()) -> str:
    """Write results/<folder> as git revision `rev` holds it to `into`/<folder>, for each of `folders` and of those
    `optional` folders that `rev` has, making `into` a results tree for `results_tree`; returns the commit `rev`
    names. A `rev` that is not a revision of this clone, or that lacks one of `folders`, raises ValueError naming
    it and the fix."""
    found = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if found.returncode:
        raise ValueError(f"{rev!r} is not a git revision of {repo_root()}: name a commit, branch or tag of this clone "
                         f"(e.g. HEAD, the commit whose results you reran)")
    commit = found.stdout.decode().strip()
    have = [f for f in [*folders, *optional] if not _git("cat-file", "-e", f"{commit}:results/{f}").returncode]
    missing = [f for f in folders if f not in have]
    if missing:
        raise ValueError(f"git revision {rev!r} ({commit[:12]}) holds no results/{missing[0]}/: name a revision "
                         f"whose results were committed (git log -- results/{missing[0]})")
    archive = _git("archive", "--format=tar", commit, *[f"results/{f}" for f in have])
    if archive.returncode:
        raise ValueError(f"git archive of {rev!r} failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                target = into / member.name.removeprefix("results/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    return commit
