"""PC-CLIP losses against hand-computed values and their invariances."""
from __future__ import annotations

import math

import pytest
import torch

from pcclip.embeddings import difference_vectors
from pcclip.losses import (NonFiniteLoss, check_finite, difference_loss, difference_targets, pcclip_loss,
                           symmetric_info_nce)


def test_contrastive_loss_hand_computed():
    # cosine logits [[1, 0], [0, 1]] / T: each row's cross-entropy is log(1 + exp(-1/T))
    text = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    for temperature in (1.0, 0.5, 0.25):
        expected = math.log(1 + math.exp(-1 / temperature))
        assert difference_loss(text, targets, temperature).item() == pytest.approx(expected, rel=1e-5)


def test_contrastive_loss_is_symmetric_mean_of_both_directions():
    # asymmetric case: text rows [1,0] and [0.6,0.8]; targets e_x, e_y. Logits L = [[1, 0], [0.6, 0.8]]
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    targets = torch.eye(2)
    rows = [math.log(1 + math.exp(0 - 1)), math.log(math.exp(0.6) + math.exp(0.8)) - 0.8]
    cols = [math.log(math.exp(1) + math.exp(0.6)) - 1, math.log(math.exp(0) + math.exp(0.8)) - 0.8]
    expected = 0.5 * (sum(rows) / 2 + sum(cols) / 2)
    assert difference_loss(text, targets, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_pcclip_loss_uses_normalised_difference_of_normalised_images():
    g = torch.Generator().manual_seed(0)
    text, e1, e2 = (torch.randn(6, 8, generator=g) for _ in range(3))
    direct = pcclip_loss(text, e1, e2, 0.3)
    assert direct.item() == pytest.approx(difference_loss(text, difference_vectors(e1, e2), 0.3).item(), rel=1e-6)


def test_pcclip_loss_invariances():
    g = torch.Generator().manual_seed(1)
    text, e1, e2 = (torch.randn(5, 8, generator=g) for _ in range(3))
    ref = pcclip_loss(text, e1, e2, 0.2).item()
    scale1 = torch.rand(5, 1, generator=g) * 10 + 0.1
    # scaling any image embedding (or any text embedding) by a positive number changes nothing
    assert pcclip_loss(text, e1 * scale1, e2 * 3.0, 0.2).item() == pytest.approx(ref, rel=1e-5)
    assert pcclip_loss(text * scale1, e1, e2, 0.2).item() == pytest.approx(ref, rel=1e-5)
    # swapping the images is the same as negating the descriptions
    assert pcclip_loss(-text, e2, e1, 0.2).item() == pytest.approx(ref, rel=1e-5)
    # permuting the pairs (rows of all three together) changes nothing
    perm = torch.randperm(5, generator=g)
    assert pcclip_loss(text[perm], e1[perm], e2[perm], 0.2).item() == pytest.approx(ref, rel=1e-5)


def test_mse_ablation_hand_computed():
    # normalize([3, 4]) = [0.6, 0.8]; normalize(e1) - normalize(e2) = [1, -1]
    text, e1, e2 = torch.tensor([[3.0, 4.0]]), torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 7.0]])
    assert difference_targets(e1, e2, "mse").tolist() == [[1.0, -1.0]]
    expected = ((0.6 - 1) ** 2 + (0.8 + 1) ** 2) / 2
    assert pcclip_loss(text, e1, e2, 1.0, loss="mse").item() == pytest.approx(expected, rel=1e-6)


def test_temperature_can_be_a_learnt_tensor():
    g = torch.Generator().manual_seed(2)
    text, targets = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    log_scale = torch.tensor(math.log(10.0), requires_grad=True)
    loss = difference_loss(text, targets, 1.0 / log_scale.exp())
    loss.backward()
    assert loss.item() == pytest.approx(difference_loss(text, targets, 0.1).item(), rel=1e-6)
    assert torch.isfinite(log_scale.grad) and log_scale.grad != 0


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="contrastive"):
        difference_loss(torch.ones(2, 2), torch.ones(2, 2), 1.0, loss="cosine")
    with pytest.raises(ValueError, match="mse"):
        difference_targets(torch.ones(2, 2), torch.zeros(2, 2), loss="l1")


def test_check_finite_names_the_step():
    check_finite(torch.tensor(1.0), 3)
    with pytest.raises(NonFiniteLoss, match="at step 7"):
        check_finite(torch.tensor(float("nan")), 7)
    with pytest.raises(NonFiniteLoss, match=r"set finetune\.skip_nonfinite=true"):
        check_finite(torch.tensor(float("inf")), 0, skip_option="finetune.skip_nonfinite")


def test_nonfinite_advice_names_only_a_setting_the_caller_has():
    """Pretraining has no skip setting: its error must not advise one."""
    with pytest.raises(NonFiniteLoss, match="lower the learning rate") as err:
        check_finite(torch.tensor(float("nan")), 4)
    assert "skip" not in str(err.value)


def test_difference_loss_is_symmetric_info_nce_at_inverse_temperature():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    assert symmetric_info_nce(a, b, 10.0).item() == pytest.approx(difference_loss(a, b, 0.1).item(), rel=1e-6)
