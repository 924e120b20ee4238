"""What pretraining and finetuning share: LR schedules, batch order, save/log intervals."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from pcclip.finetune import total_steps
from pcclip.profiles import load_profile
from pcclip.runs import run_config
from pcclip.training import batch_indices, due, lr_multiplier


def test_batch_indices_is_a_pure_function():
    assert torch.equal(batch_indices(7, 5, 23, seed=3), batch_indices(7, 5, 23, seed=3))
    torch.manual_seed(0)  # the global RNG plays no part
    a = batch_indices(2, 8, 40, seed=1)
    torch.manual_seed(1)
    assert torch.equal(a, batch_indices(2, 8, 40, seed=1))
    assert not torch.equal(batch_indices(0, 8, 40, seed=1), batch_indices(0, 8, 40, seed=2))


@pytest.mark.parametrize("n, batch_size", [(10, 4), (12, 4), (3, 7), (40, 8)])
def test_batch_indices_cover_each_image_once_per_epoch(n, batch_size):
    epochs = 4
    steps = math.ceil(epochs * n / batch_size)
    stream = torch.cat([batch_indices(s, batch_size, n, seed=0) for s in range(steps)])
    assert all(len(batch_indices(s, batch_size, n, seed=0)) == batch_size for s in range(steps))
    for e in range(epochs):
        assert sorted(stream[e * n:(e + 1) * n].tolist()) == list(range(n)), e
    first, second = stream[:n], stream[n:2 * n]
    assert not torch.equal(first, second)  # every epoch is shuffled afresh


def test_warmup_cosine_schedule():
    values = [lr_multiplier(s, "cosine", warmup=2, total=10) for s in range(10)]
    assert values[:3] == [0.5, 1.0, 1.0]
    assert values[6] == pytest.approx(0.5)  # half way through the 8 decay steps
    assert values[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(a >= b for a, b in zip(values[1:], values[2:]))


def test_finetune_schedules_and_epoch_counting():
    paper = load_profile("paper").finetune
    assert total_steps(paper, 1000) == 40  # 20 epochs of ceil(1000 / 512) = 2 steps

    def factor(step: int, cfg, total: int) -> float:
        return lr_multiplier(step, cfg.schedule, cfg.warmup, total, cfg.gamma, steps_per_epoch=2)

    assert [factor(s, paper, 40) for s in (0, 1, 2, 5)] == pytest.approx([1, 1, 0.9, 0.81])
    warm = replace(paper, schedule="constant", warmup=4)
    assert [factor(s, warm, 40) for s in (0, 3, 4, 30)] == pytest.approx([0.25, 1, 1, 1])
    assert factor(10, replace(paper, schedule="cosine", warmup=0), 20) == pytest.approx(0.5)
    caption = run_config(paper, "caption_ft")
    assert (caption.objective, caption.lr, caption.batch_size, caption.epochs) == ("caption", 1e-6, 128, 50.0)
    assert total_steps(run_config(paper, "base"), 1000) == 0
    with pytest.raises(ValueError, match="unknown LR schedule 'linear'"):
        lr_multiplier(0, "linear", 0, 10)


def test_due_marks_every_nth_step_and_the_last():
    assert [s for s in range(10) if due(s, 4, 10)] == [3, 7, 9]
    assert [s for s in range(3) if due(s, 5, 3)] == [2]
