"""Contrastive losses as pure functions over embedding tensors.

Every loss takes an explicit temperature (or logit scale) and raises on a
non-finite value unless the caller asks to skip it (see `check_finite`).
PC-CLIP's targets are the normalised differences of normalised image
embeddings, `pcclip.embeddings.difference_vectors(e1, e2)`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .embeddings import difference_vectors, normalize

DIFFERENCE_LOSSES = ("contrastive", "mse")


class NonFiniteLoss(FloatingPointError):
    """Raised when a loss is NaN or inf; the trainer names the step."""


def check_finite(loss: torch.Tensor, step: int, skip_option: str = "") -> None:
    """Raise naming the step; `skip_option` is the caller's setting that skips such steps instead
    (e.g. "finetune.skip_nonfinite"), advised only when the caller has one."""
    if not torch.isfinite(loss).all():
        skip = f", or set {skip_option}=true to skip such steps" if skip_option else ""
        raise NonFiniteLoss(f"loss is {loss.item()} at step {step}; lower the learning rate or check the "
                            f"data (e.g. empty descriptions){skip}")


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Mean of the a->b and b->a cross-entropies over cosine logits; row i of a matches row i of b."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = logit_scale * a @ b.T
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def hard_negative_info_nce(text: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, owner: torch.Tensor,
                           logit_scale: torch.Tensor | float) -> torch.Tensor:
    """`symmetric_info_nce(text, targets)` where target i's logits over the texts also hold its own hard negatives:
    the rows of `negatives` with owner == i (false descriptions of pair i: its role swap, its negation). A row
    whose owner matches no target (-1) is padding and counts nowhere. Text -> target is unchanged.

    Own negatives only, not every negative of the batch: another pair's role swap is often a true description
    of this pair (two pairs with the second image larger share "the second is larger"), so sharing them would
    add false negatives; a pair's own negatives are false by construction. It is also the contrast the paper's
    loss rarely meets in a batch: a description against its own mirror sentence.
    """
    text, targets, negatives = (F.normalize(x, dim=-1) for x in (text, targets, negatives))
    logits = logit_scale * text @ targets.T
    labels = torch.arange(len(text), device=text.device)
    hard = (logit_scale * targets @ negatives.T).masked_fill(owner[None, :] != labels[:, None], float("-inf"))
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(torch.cat([logits.T, hard], dim=1), labels))


def difference_targets(e1: torch.Tensor, e2: torch.Tensor, loss: str = "contrastive") -> torch.Tensor:
    """What the text embedding of "how image 1 differs from image 2" is trained towards.

    contrastive (paper): difference_vectors(e1, e2); mse (the paper's ablation): the raw
    difference normalize(e1) - normalize(e2), whose length carries how different the images are.
    Computed once per pair: the image tower is frozen, so the targets never change.
    """
    if loss == "contrastive":
        return difference_vectors(e1, e2)
    if loss == "mse":
        return normalize(e1) - normalize(e2)
    raise ValueError(f"unknown difference loss {loss!r}; choose one of {DIFFERENCE_LOSSES}")


def difference_loss(text_emb: torch.Tensor, targets: torch.Tensor, temperature: torch.Tensor | float,
                    loss: str = "contrastive", negatives: torch.Tensor | None = None,
                    owner: torch.Tensor | None = None) -> torch.Tensor:
    """PC-CLIP loss between text embeddings and `difference_targets` (row i describes pair i).

    contrastive: symmetric InfoNCE over cosines divided by `temperature` (paper: 1.0); with `negatives`
    (embeddings of false descriptions, negative k belonging to pair owner[k]) `hard_negative_info_nce`, an
    extension (finetune.hard_negatives); mse: mean squared error between normalize(text) and the raw
    difference (temperature unused).
    """
    if loss == "contrastive" and negatives is None:
        return symmetric_info_nce(text_emb.float(), targets, 1.0 / temperature)
    if loss == "contrastive":
        return hard_negative_info_nce(text_emb.float(), targets, negatives.float(), owner, 1.0 / temperature)
    if negatives is not None:
        raise ValueError(f"hard negatives need the contrastive loss, not {loss!r}: set finetune.loss=contrastive")
    if loss == "mse":
        return F.mse_loss(normalize(text_emb), targets)
    raise ValueError(f"unknown difference loss {loss!r}; choose one of {DIFFERENCE_LOSSES}")


def pcclip_loss(text_emb: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor, temperature: torch.Tensor | float,
                loss: str = "contrastive") -> torch.Tensor:
    """The PC-CLIP loss from raw (unnormalised) image embeddings of both images of each pair."""
    return difference_loss(text_emb, difference_targets(e1, e2, loss), temperature, loss)
