"""Contrastive losses as pure functions over embedding tensors.

Every loss takes an explicit temperature (or logit scale) and raises on a
non-finite value unless the caller asks to skip it (see `check_finite`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class NonFiniteLoss(FloatingPointError):
    """Raised when a loss is NaN or inf; the trainer names the step."""


def check_finite(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss).all():
        raise NonFiniteLoss(f"loss is {loss.item()} at step {step}; lower the learning rate, check the "
                            "data for empty descriptions, or set skip_nonfinite=True to skip such steps")


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Mean of the a->b and b->a cross-entropies over cosine logits; row i of a matches row i of b."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = logit_scale * a @ b.T
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor,
              logit_scale: torch.Tensor | float) -> torch.Tensor:
    """The standard CLIP loss (logit_scale = 1 / temperature, usually learnt)."""
    return symmetric_info_nce(image_features, text_features, logit_scale)
