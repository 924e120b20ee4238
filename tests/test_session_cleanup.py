"""A pytest session's notebook results folder (root conftest.py): removed after a passing session, kept otherwise."""
from __future__ import annotations

import os
import subprocess
import sys

from pcclip.paths import repo_root


def _session(tmp_path, *args: str) -> tuple[int, list[str], str]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("PCCLIP_RESULTS", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=repo_root(),
                          env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, sorted(p.name for p in tmp_path.glob("pcclip-nbval-*")), done.stderr


def test_a_passing_session_removes_its_results_folder_and_another_keeps_it(tmp_path) -> None:
    passed = tmp_path / "passed"
    passed.mkdir()
    code, left, _ = _session(passed, "tests/test_profiles.py::test_bool_coercion")
    assert code == 0 and left == []
    kept = tmp_path / "kept"
    kept.mkdir()
    code, left, stderr = _session(kept, "tests/test_profiles.py", "-k", "no_test_has_this_name")
    assert code != 0 and len(left) == 1 and f"kept in {kept / left[0]}" in stderr
