"""The CUB-200 difference set: Reed captions on disk, the real 'openai' writer against the scripted
server, resume after an outage, and the pair sets the evaluation reads."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from test_datasets_loaders import write_cub
from test_synthesis_openai import MODEL, ChatServer

from pcclip.datasets import load_dataset
from pcclip.evaluation import tasks
from pcclip.evaluation.difference import difference_table
from pcclip.evaluation.tasks import difference_tasks
from pcclip.paths import run_paths
from pcclip.profiles import load_profile
from pcclip.synthesis import load_records
from pcclip.synthesis.cub import (CUB_SET, REED_FOLDER, cub_differences_path, cub_pair_sets, read_reed_captions,
                                  synthesize_cub)
from pcclip.synthesis.writer import WriterUnavailable


@pytest.fixture
def server():
    srv = ChatServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def write_reed(root) -> dict[str, str]:
    """Ten captions per CUB test image (first line names the image); returns image file stem -> first caption."""
    data = load_dataset("cub200", root)
    first = {}
    for f in data.dataset.files:
        rel = f.relative_to(data.folder / "images").with_suffix(".txt")
        path = root / REED_FOLDER / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        first[f.stem] = f"a bird from {f.stem} with a short beak"
        path.write_text("\n".join([first[f.stem]] + [f"caption {k} of {f.stem}" for k in range(9)]) + "\n")
    return first


def _profile(root, url: str, **more):
    return load_profile("paper", {"data_root": str(root), "synthesis.base_url": url, "synthesis.llm": MODEL,
                                  "synthesis.batch_size": 4, "synthesis.concurrency": 2, "synthesis.retries": 1,
                                  "synthesis.backoff_s": 0.01, "synthesis.timeout_s": 5.0, "model.device": "cpu",
                                  "model.precision": "fp32", "cache.num_workers": 0, **more})


def test_missing_reed_captions_say_what_to_fetch(tmp_path, server):
    write_cub(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"(?s)4 of 4 CUB caption files are missing.*reedscot/cvpr2016"):
        synthesize_cub(_profile(tmp_path, server.url), run_paths("paper"), n_pairs=6, progress=False)
    write_reed(tmp_path)
    data = load_dataset("cub200", tmp_path)
    captions = read_reed_captions(tmp_path, data, per_image=3)
    assert [len(c) for c in captions] == [3] * 4
    assert captions[0][0] == "a bird from Black_footed_Albatross_0002 with a short beak"
    with pytest.raises(ValueError, match="template writer only reads DiffWorld captions, not 'cub200-test"):
        synthesize_cub(_profile(tmp_path, server.url, **{"synthesis.writer": "template"}), run_paths("paper"),
                       n_pairs=6, progress=False)


def test_cub_descriptions_resume_after_an_outage_and_feed_the_evaluation(tmp_path, server, monkeypatch, tiny_bundle):
    write_cub(tmp_path)
    first = write_reed(tmp_path)
    profile, paths = _profile(tmp_path, server.url), run_paths("paper")
    server.healthy_for = 4  # one batch, then 503 for everything
    with pytest.raises(WriterUnavailable, match="4 finished pairs are safe"):
        synthesize_cub(profile, paths, n_pairs=12, progress=False)
    server.healthy_for = None
    path = synthesize_cub(profile, paths, n_pairs=12, progress=False)
    assert path == cub_differences_path(paths)
    records = load_records(path)
    assert sorted(r["index"] for r in records) == list(range(12))  # resumed, nothing written twice
    files = load_dataset("cub200", tmp_path).dataset.files
    for r in records:  # the writer read the captions of the right images, in order
        assert r["accepted"] and r["text"] == (f"The first image shows {first[files[r['idx1']].stem]}, while the "
                                               f"second image shows {first[files[r['idx2']].stem]}.")
    draws = cub_pair_sets(path, seeds=3)
    assert [len(d) for d in draws] == [4, 4, 4] and all(d.attribute == CUB_SET for d in draws)
    pairs = {(a, b) for d in draws for a, b in zip(d.idx1.tolist(), d.idx2.tolist())}
    assert pairs == {(r["idx1"], r["idx2"]) for r in records}
    assert all((d.sign == 0).all() and d.reversed_texts is None for d in draws)

    monkeypatch.setattr(tasks, "PAIR_SETS", {})
    eval_profile = load_profile("paper", {"data_root": str(tmp_path), "eval.datasets": "cub200", "eval.seeds": 2,
                                          "model.device": "cpu", "model.precision": "fp32", "cache.num_workers": 0})
    sets, emb = difference_tasks(eval_profile, paths, tiny_bundle)
    assert list(sets) == [(CUB_SET, "llm", CUB_SET)] and [len(d) for d in sets[(CUB_SET, "llm", CUB_SET)]] == [6, 6]
    assert tuple(emb[CUB_SET].shape) == (4, 128)
    [row] = difference_table({"base": tiny_bundle}, emb, sets).to_dict("records")
    assert row["split"] == CUB_SET and 0 <= row["accuracy"] <= 1 and row["pairs"] == 6 and np.isnan(row["two_way"])
    cub_differences_path(paths).unlink()
    with pytest.raises(FileNotFoundError, match="run notebook 01 with the paper profile"):
        difference_tasks(eval_profile, paths, tiny_bundle)
    assert np.isin(np.concatenate([d.idx1 for d in draws]), np.arange(4)).all()
