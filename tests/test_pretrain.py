"""DiffWorld pretraining: the loss falls, a crashed run resumes to the exact same weights, the data order is pure."""
from __future__ import annotations

import copy
import math

import pytest
import torch

import pcclip.pretrain as pretrain_mod
from pcclip.losses import symmetric_info_nce
from pcclip.models import load_clip
from pcclip.pretrain import pretrain
from pcclip.profiles import PretrainConfig, WorldConfig
from pcclip.training import CAPTION_VARIANTS
from pcclip.world import build_split

WORLD = WorldConfig(seed=1, image_size=32, n_train=16, n_val=8, n_test=8, n_holdout=8)
CFG = PretrainConfig(steps=4, batch_size=8, lr=2e-3, warmup=2, seed=5, log_every=1)  # two epochs of 16 images


@pytest.fixture(scope="module")
def train():
    split = build_split(WORLD, "train")
    split.images  # render once for the whole module
    return split


def fresh_bundle(seed: int = 0):
    torch.manual_seed(seed)
    return load_clip("diffclip-tiny")


@torch.no_grad()
def full_loss(bundle, split) -> float:
    """CLIP loss over the whole (tiny) split with its first training caption per image. Measured on a
    copy in train mode: after a few steps the BatchNorm running statistics are still far from the
    batch statistics the weights were trained with."""
    model = copy.deepcopy(bundle.model).train()
    img = model.encode_image(bundle.images_to_tensor(split.images))
    txt = model.encode_text(bundle.tokenizer(split.captions(seed=0)))
    return float(symmetric_info_nce(img, txt, model.logit_scale.exp()))


def test_a_few_steps_lower_the_loss(train):
    bundle = fresh_bundle()
    before = full_loss(bundle, train)
    cfg = PretrainConfig(steps=5, batch_size=16, lr=2e-4, warmup=1, seed=0, log_every=1)
    result = pretrain(bundle, train, cfg)
    after = full_loss(bundle, train)
    assert after < 0.7 * before, (before, after)  # measured: 2.99 -> 0.90
    assert [row["step"] for row in result.history] == list(range(5)) and result.resumed_from == 0
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert all(math.isfinite(row["loss"]) and 0 < row["logit_scale"] <= 100 for row in result.history)
    assert not bundle.model.training  # handed back in eval mode


def crash_at(monkeypatch, step: int) -> None:
    """Make the training loop die at `step` (after its forward pass), like a killed process."""
    real = pretrain_mod.check_finite

    def dying(loss, s):
        if s == step:
            raise KeyboardInterrupt(f"simulated crash at step {s}")
        real(loss, s)

    monkeypatch.setattr(pretrain_mod, "check_finite", dying)


def test_resumed_run_reproduces_the_uninterrupted_weights(train, tmp_path, monkeypatch):
    whole = fresh_bundle()
    reference = pretrain(whole, train, CFG)
    state = tmp_path / "state.pt"
    crash_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        pretrain(fresh_bundle(), train, CFG, state_path=state, save_every=2)
    assert state.exists() and torch.load(state, weights_only=False)["step"] == 2  # last save before the crash
    monkeypatch.undo()
    resumed_bundle = fresh_bundle(seed=123)  # different init: everything must come from the state file
    resumed = pretrain(resumed_bundle, train, CFG, state_path=state, save_every=2)
    assert resumed.resumed_from == 2
    assert resumed.history == reference.history
    want, got = whole.model.state_dict(), resumed_bundle.model.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), [k for k in want if not torch.equal(want[k], got[k])]


def test_finished_state_is_not_trained_again(train, tmp_path):
    state = tmp_path / "state.pt"
    first = fresh_bundle()
    pretrain(first, train, CFG, state_path=state, save_every=100)  # saves at the last step regardless
    again = fresh_bundle(seed=9)
    result = pretrain(again, train, CFG, state_path=state)
    assert result.resumed_from == CFG.steps and len(result.history) == CFG.steps
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))


def test_state_of_another_config_is_refused(train, tmp_path):
    state = tmp_path / "state.pt"
    pretrain(fresh_bundle(), train, PretrainConfig(steps=1, batch_size=16, warmup=1), state_path=state)
    with pytest.raises(ValueError, match="training state .* was written with another config \\(differs in "
                                         "\\['pretrain'\\]\\); delete it"):
        pretrain(fresh_bundle(), train, PretrainConfig(steps=2, batch_size=16, warmup=1), state_path=state)


def test_pretraining_captions_take_the_profiles_relational_share(train, monkeypatch):
    """pretrain.relational_captions reaches every caption variant pretraining draws (main run 0.5, smoke 0)."""
    shares, real = [], type(train).captions
    monkeypatch.setattr(type(train), "captions",
                        lambda self, seed, share=0.0: shares.append(share) or real(self, seed, share))
    pretrain(fresh_bundle(), train, PretrainConfig(steps=1, batch_size=8, warmup=1, seed=0, relational_captions=0.25))
    assert shares == [0.25] * CAPTION_VARIANTS
