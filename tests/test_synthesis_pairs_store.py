"""Pair plans (distinct, reproducible, contrast pairs really contrast) and the JSONL store."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pcclip.locking import TOKENS_ENV, RunLocked
from pcclip.synthesis.pairs import sample_pairs
from pcclip.synthesis.store import DifferenceStore, load_accepted, load_records, meta_path, rejected_path
from pcclip.world import CONTINUOUS, sample_records


@pytest.fixture(scope="module")
def records():
    return sample_records(300, np.random.default_rng(0))


def test_plan_is_distinct_reproducible_and_mixed(records) -> None:
    plan = sample_pairs(300, 1000, seed=3, records=records, contrast_fraction=0.4, gap=1 / 3)
    again = sample_pairs(300, 1000, seed=3, records=records, contrast_fraction=0.4, gap=1 / 3)
    assert plan.ids == again.ids and len(set(plan.ids)) == 1000 and (plan.idx1 != plan.idx2).all()
    assert plan.ids[0] == f"{plan.idx1[0]}-{plan.idx2[0]}"
    kinds = {k: plan.kind.count(k) for k in set(plan.kind)}
    assert kinds == {"random": 600, **{f"contrast:{a}": 100 for a in CONTINUOUS}}
    for attr in CONTINUOUS:
        sel = np.array([k == f"contrast:{attr}" for k in plan.kind])
        values = getattr(records, attr)
        assert (np.abs(values[plan.idx1[sel]] - values[plan.idx2[sel]]) >= 1 / 3).all()
        more_first = (values[plan.idx1[sel]] > values[plan.idx2[sel]]).mean()
        assert 0.3 < more_first < 0.7  # which image has more is random
    assert sample_pairs(300, 1000, seed=4, records=records, contrast_fraction=0.4).ids != plan.ids
    assert len(set(plan.kind[:50])) > 2  # kinds are interleaved, not in blocks


def test_pool_and_ids_and_bad_settings() -> None:
    ids = np.arange(50) * 10 + 7
    plan = sample_pairs(50, 40, seed=0, n_images=8, image_ids=ids)
    assert len(set(plan.idx1) | set(plan.idx2)) <= 8
    assert set(plan.ids) == {f"{ids[a]}-{ids[b]}" for a, b in zip(plan.idx1, plan.idx2)}
    with pytest.raises(ValueError, match="exceeds the 56 ordered pairs"):
        sample_pairs(50, 57, seed=0, n_images=8)
    with pytest.raises(ValueError, match="ground-truth attributes"):
        sample_pairs(50, 10, seed=0, contrast_fraction=0.5)
    with pytest.raises(ValueError, match="contrast_fraction"):
        sample_pairs(50, 10, seed=0, contrast_fraction=1.5)


def _record(k: int, accepted: bool = True) -> dict:
    return {"pair_id": f"{k}-{k + 1}", "index": k, "idx1": k, "idx2": k + 1, "text": f"text {k}",
            "accepted": accepted, "reason": "" if accepted else "too_short"}


def test_store_resumes_after_a_torn_line_and_keeps_order(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    with DifferenceStore(path, {"a": 1}) as store:
        for k in (2, 0):
            store.append(_record(k))
        store.append(_record(5, accepted=False))
    with open(path, "a") as fh:
        fh.write('{"pair_id": "9-10", "ind')  # killed mid-write
    assert [r["pair_id"] for r in load_records(path)] == ["0-1", "2-3", "5-6"]  # the torn line is not a record
    with DifferenceStore(path, {"a": 1}) as store:
        assert store.finished == {"0-1", "2-3", "5-6"}
        store.append(_record(9))
        with pytest.raises(ValueError, match="already in"):
            store.append(_record(0))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["pair_id"] for line in lines] == ["2-3", "0-1", "5-6", "9-10"]
    pairs = load_accepted(path)
    assert pairs.idx1.tolist() == [0, 2, 9] and pairs.idx2.dtype == np.int64 and pairs.texts[0] == "text 0"


def test_store_sets_aside_other_settings_and_refuses_corruption(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    DifferenceStore(path, {"writer": "template", "n": [1, 2]}).close()
    assert json.loads(meta_path(path).read_text()) == {"writer": "template", "n": [1, 2]}
    with DifferenceStore(path, {"writer": "template", "n": (1, 2)}) as store:  # tuples read back as lists
        store.append(_record(0))
    with DifferenceStore(path, {"writer": "hf", "n": [1, 2]}) as store:  # other settings: a fresh file
        assert store.finished == set()
        store.append(_record(3))
    stale = [p for p in tmp_path.glob("d.*.jsonl")]
    assert len(stale) == 1 and [r["pair_id"] for r in load_records(stale[0])] == ["0-1"]
    assert json.loads(meta_path(stale[0]).read_text())["writer"] == "template"
    assert json.loads(meta_path(path).read_text())["writer"] == "hf"
    assert [r["pair_id"] for r in load_records(path)] == ["3-4"]
    path.write_text(json.dumps(_record(1)) + "\n" + json.dumps(_record(1)) + "\n")
    with pytest.raises(ValueError, match="twice"):
        load_records(path)
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1"):
        load_records(path)
    with pytest.raises(FileNotFoundError, match="notebook 01"):
        load_records(tmp_path / "missing.jsonl")
    orphan = tmp_path / "orphan.jsonl"
    orphan.write_text(json.dumps(_record(1)) + "\n")
    with pytest.raises(ValueError, match="settings are unknown"):
        DifferenceStore(orphan, {"writer": "template"})


HOLD_STORE = """
import json, sys
from pcclip.synthesis.store import DifferenceStore
with DifferenceStore(sys.argv[1], json.loads(sys.argv[2])) as store:
    for line in sys.stdin:  # one record per line from the test, then EOF closes the store
        if line.strip() == "ready?":
            print("ready", flush=True)
        else:
            store.append(json.loads(line))
"""


def _writer(path, meta) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != TOKENS_ENV} | {"PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", HOLD_STORE, str(path), json.dumps(meta)], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdin.write(json.dumps(_record(0)) + "\nready?\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    return child


@pytest.mark.parametrize("meta", [{"writer": "hf"}, {"writer": "template"}], ids=["other-settings", "same-settings"])
def test_second_synthesis_fails_while_the_first_writes(tmp_path, meta) -> None:
    """Before the lock, other settings renamed the live store (the first run then read the second's
    records) and equal settings interleaved duplicates; now the second run fails and touches nothing."""
    path = tmp_path / "d.jsonl"
    first = _writer(path, {"writer": "template"})
    with pytest.raises(RunLocked, match=f"pid {first.pid}"):
        DifferenceStore(path, meta)
    first.stdin.write(json.dumps(_record(1)) + "\n")
    first.stdin.close()
    assert first.wait(timeout=30) == 0
    assert [r["pair_id"] for r in load_records(path)] == ["0-1", "1-2"]  # both records in the first run's file
    assert sorted(p.name for p in tmp_path.glob("d*")) == ["d.jsonl", "d.meta.json"]  # nothing renamed


def test_garbled_line_is_quarantined_and_its_pair_written_again(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    with DifferenceStore(path, {"a": 1}) as store:
        for k in range(4):
            store.append(_record(k))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"pair_id": "1-2", "ind\x00\x00\xff garbled block\n'
    lines[2] = b'["a list, not a record"]\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=r"line 2, is not a JSON record; .*rerun synthesis.*d\.rejected"):
        load_records(path)  # readers never rewrite; they say how to repair
    with DifferenceStore(path, {"a": 1}) as store:
        assert store.finished == {"0-1", "3-4"}
        store.append(_record(1))
        store.append(_record(2))
    assert [r["pair_id"] for r in load_records(path)] == ["0-1", "1-2", "2-3", "3-4"]
    rejected = [json.loads(line) for line in rejected_path(path).read_text().splitlines()]
    assert [r["line"] for r in rejected] == [2, 3] and rejected[1]["text"] == '["a list, not a record"]\n'
    assert "garbled block" in rejected[0]["text"]


def test_a_store_moved_under_a_live_writer_stops_it(tmp_path) -> None:
    """A process that ignores the lock renames the file: the writer must not keep appending to the moved file."""
    path = tmp_path / "d.jsonl"
    with DifferenceStore(path, {"a": 1}) as store:
        store.append(_record(0))
        os.replace(path, tmp_path / "moved.jsonl")
        with pytest.raises(RuntimeError, match=r"d\.jsonl was moved or replaced while this run wrote it"):
            store.append(_record(1))
    assert [r["pair_id"] for r in load_records(tmp_path / "moved.jsonl")] == ["0-1"]
