"""torchrun: two gloo processes reach the one-process result for the same global batch, with hard negatives too."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from pcclip.finetune import finetune
from pcclip.models import load_clip, save_clip
from pcclip.profiles import load_profile
from pcclip.runs import run_config
from pcclip.traindata import TrainData, save_data

DESCRIPTIONS = ("the first object is larger than the second", "the first object is smaller than the second",
                "the first shape is further left", "the first shape is brighter than the second one")
NEGATIVES = (["the second object is larger than the first", "the first object is not larger than the second"],
             ["the second object is smaller than the first"], [], ["the second shape is brighter than the first one"])
OVERRIDES = {"finetune.steps": 4, "finetune.batch_size": 16, "finetune.trainable": "blocks", "finetune.lr": 1e-4,
             "finetune.save_every": 2, "finetune.log_every": 1, "finetune.caption_weight": 0.5}


def _data() -> TrainData:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(20, 128, generator=g)
    idx1, idx2 = torch.randint(0, 20, (64,), generator=g), torch.randint(0, 20, (64,), generator=g)
    texts = [DESCRIPTIONS[i % 4] for i in range(64)]
    captions = [f"a {'small' if i % 2 else 'large'} shape" for i in range(20)]
    # 0 to 2 negatives per pair: ranks gather blocks of the same shape with empty slots
    return TrainData(emb, idx1, idx2, texts, torch.arange(20), captions, [NEGATIVES[i % 4] for i in range(64)])


@pytest.mark.slow
@pytest.mark.parametrize("run", ["pcclip", "pcclip_hn"])
def test_two_gloo_ranks_match_one_process(tiny_bundle, tmp_path, run):
    base_file, data_file = tmp_path / "base.pt", tmp_path / "data.pt"
    save_clip(tiny_bundle, "diffclip-tiny", base_file)
    data = _data()
    save_data(data, data_file)
    overrides = {**OVERRIDES, "model.pretrained": str(base_file)}
    env = {**os.environ, "PCCLIP_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pcclip.distributed", "--profile", "smoke", "--finetune", run, "--data", str(data_file),
           "--set", *[f"{k}={v}" for k, v in overrides.items()]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    profile = load_profile("smoke", overrides)
    base = load_clip("diffclip-tiny", str(base_file))
    single = finetune(base, data, run_config(profile.finetune, run), progress=False)
    if run == "pcclip_hn":  # the negatives were used: extra texts to contrast with raise the first step's loss
        paper = finetune(base, data, run_config(profile.finetune, "pcclip"), until=1, progress=False)
        assert single.history[0]["loss"] > paper.history[0]["loss"] + 0.01
    ckpt = tmp_path / "results" / "smoke" / "checkpoints" / f"seed{profile.finetune.seed}" / f"{run}.pt"
    two = load_clip("diffclip-tiny", str(ckpt))
    meta = torch.load(ckpt, weights_only=True)["meta"]
    assert [r["loss"] for r in meta["history"]] == pytest.approx([r["loss"] for r in single.history], rel=1e-4)
    texts = list(DESCRIPTIONS) + ["a large red ring"]
    torch.testing.assert_close(two.encode_text(texts), single.bundle.encode_text(texts), atol=2e-5, rtol=1e-4)
    moved = (single.bundle.encode_text(texts) - base.encode_text(texts)).abs().max()
    assert moved > 1e-2  # training changed the model far beyond the tolerance
    metrics = json.loads((tmp_path / "results" / "smoke" / "metrics" / f"finetune_{run}.seed0.json").read_text())
    steps = [r["value"] for r in metrics["rows"] if r["metric"] == "steps" and r["model"] == run]
    assert metrics["info"]["world_size"] == 2 and steps == [4]
