"""The LLM-rewritten-caption baseline (finetune.rewritten_captions): captions rewritten through the writer
into a resumable store, and the "rewritten_ft" run's training data and settings."""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from pcclip.paths import RunPaths
from pcclip.profiles import SynthesisConfig, load_profile
from pcclip.rehearsal.chat_server import chat_server
from pcclip.runs import profile_runs, rewritten_data, run_config, run_settings
from pcclip.synthesis import differences_path, synthesize
from pcclip.synthesis.pairs import PairPlan
from pcclip.synthesis.rewriting import load_rewritten, rewrite_captions, rewritten_path
from pcclip.synthesis.sources import ImageSource
from pcclip.synthesis.store import load_records
from pcclip.synthesis.writer import Generation, WriterUnavailable
from pcclip.traindata import TrainData

CAPTIONS = (("A large red circle.", "a big red circle"), ("A small blue ring.", "a tiny blue ring"),
            ("A green square.", "a green square on the left"), ("A yellow star.", "a bright yellow star"))
SOURCE = ImageSource(key="four", image_ids=np.arange(100, 104), captions=CAPTIONS, records=None,
                     load_images=lambda idx: None)
PLAN = PairPlan(idx1=np.array([0, 3]), idx2=np.array([3, 1]), kind=("random", "random"), ids=("100-103", "103-101"))


def _rewrite(server, path, **changes) -> int:
    cfg = SynthesisConfig(writer="openai", llm=server.model, base_url=server.url, retries=0, batch_size=4, **changes)
    return rewrite_captions(cfg, path, {"source": SOURCE.key}, PLAN, SOURCE)


def test_captions_of_the_pairs_images_are_rewritten_once_and_resumed(tmp_path):
    path = rewritten_path(RunPaths(tmp_path))
    with chat_server() as server:
        assert _rewrite(server, path) == 0
        assert server.requests == 6  # images 0, 1 and 3 (image 2 is in no pair), two captions each
        assert _rewrite(server, path) == 0 and server.requests == 6  # all on disk: nothing asked again
    rows, texts = load_rewritten(path)
    assert rows.tolist() == [0, 0, 1, 1, 3, 3]
    records = load_records(path)
    assert [r["pair_id"] for r in records] == ["100-c0", "100-c1", "101-c0", "101-c1", "103-c0", "103-c1"]
    assert [r["caption"] for r in records] == [c for i in (0, 1, 3) for c in CAPTIONS[i]]
    assert all(t.startswith(("An image of", "A picture showing", "A photo of")) for t in texts)
    assert "a large red circle" in texts[0] and texts[0] != CAPTIONS[0][0]


def test_the_rewritten_run_trains_the_caption_objective_on_the_rewritten_captions(tmp_path):
    path = rewritten_path(RunPaths(tmp_path))
    with chat_server() as server:
        _rewrite(server, path)
    data = TrainData(torch.randn(4, 8), [0, 3], [3, 1], ["d1", "d2"], torch.arange(4), [c[0] for c in CAPTIONS])
    rewritten = rewritten_data(data, path)
    assert rewritten.image_emb is data.image_emb and rewritten.texts == data.texts
    assert rewritten.caption_idx.tolist() == [0, 0, 1, 1, 3, 3] and len(rewritten.caption_texts) == 6
    assert rewritten.key() != data.key()  # a checkpoint of the ground-truth baseline is never reused for it

    paper = load_profile("paper").finetune
    cfg = run_config(paper, "rewritten_ft")
    assert (cfg.objective, cfg.lr, cfg.epochs, cfg.steps, cfg.caption_weight) == ("caption", 1e-6, 20.0, 0, 0.0)
    assert cfg.batch_size == paper.caption_batch_size


def test_the_switch_adds_the_run_and_leaves_other_recipes_alone():
    smoke = load_profile("smoke")
    on = load_profile("smoke", {"finetune.rewritten_captions": True, "finetune.rewritten_lr": 1e-4})
    assert profile_runs(smoke) == ("base", "pcclip", "caption_ft")
    assert profile_runs(on, trained=True) == ("pcclip", "caption_ft", "rewritten_ft")

    class Base:
        model_name, fingerprint = "diffclip-tiny", "f"

    assert run_settings(on, "pcclip", Base) == run_settings(smoke, "pcclip", Base)
    assert not any(k.startswith("rewritten_") for k in run_settings(on, "rewritten_ft", Base)["finetune"])
    assert run_settings(on, "rewritten_ft", Base)["finetune"]["lr"] == 1e-4
    assert "rewritten_captions" in asdict(on.finetune)


def test_rewriting_needs_an_llm_and_a_written_store(tmp_path):
    with pytest.raises(ValueError, match="finetune.rewritten_captions needs an LLM"):
        rewrite_captions(SynthesisConfig(), tmp_path / "r.jsonl", {}, PLAN, SOURCE)
    with pytest.raises(FileNotFoundError, match="rerun notebooks/01_data_synthesis.ipynb"):
        load_rewritten(tmp_path / "r.jsonl")
    with pytest.raises(ValueError, match="finetune.rewritten_steps=0, finetune.rewritten_epochs=0.0"):
        load_profile("smoke", {"finetune.rewritten_steps": 0})


def test_synthesis_writes_the_rewritten_captions_when_switched_on(tmp_path):
    paths = RunPaths(tmp_path)
    with chat_server() as server:
        profile = load_profile("smoke", {"synthesis.writer": "openai", "synthesis.llm": server.model,
                                         "synthesis.base_url": server.url, "synthesis.n_pairs": 12,
                                         "synthesis.captions_per_image": 1, "finetune.rewritten_captions": True})
        synthesize(profile, paths, progress=False)
    pairs = load_records(differences_path(paths))
    rows, texts = load_rewritten(rewritten_path(paths))
    assert sorted(set(rows.tolist())) == sorted({r[k] for r in pairs for k in ("idx1", "idx2")})
    assert len(rows) == len(set(rows.tolist())) == len(texts)  # one caption per image
    assert load_records(rewritten_path(paths))[0]["model"] == server.model


class _FailingWriter:
    """Answers every caption of a batch with the same failure."""

    name, model, prompt_version = "openai", "m", "v"

    def __init__(self, error: str, deferred: bool) -> None:
        self.error, self.deferred = error, deferred

    def write(self, batch):
        return [Generation("", error=self.error, deferred=self.deferred) for _ in batch]


@pytest.mark.parametrize("deferred, message", [(True, "failed on every caption of a batch"),
                                               (False, "refused every caption of a batch")])
def test_a_batch_that_fails_whole_stops_the_rewriting_and_stores_none_of_it(tmp_path, monkeypatch, deferred,
                                                                             message):
    """The same guard as the difference pairs (`batches.write_batch`): a backend or setting fault is not
    recorded as one rejected caption per request."""
    monkeypatch.setattr("pcclip.synthesis.rewriting.make_writer",
                        lambda *a: _FailingWriter("HTTP 400: context too long", deferred))
    path = tmp_path / "r.jsonl"
    cfg = SynthesisConfig(writer="openai", llm="m", batch_size=4)
    with pytest.raises(WriterUnavailable, match=f"{message} \\(HTTP 400.*0 finished captions are safe in {path}"):
        rewrite_captions(cfg, path, {"source": SOURCE.key}, PLAN, SOURCE)
    assert load_records(path) == []
