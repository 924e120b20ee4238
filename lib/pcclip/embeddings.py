"""The two vector operations PC-CLIP is built on, in one place."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Unit-norm rows (float32); the paper normalises every embedding before arithmetic."""
    return F.normalize(x.float(), dim=-1)


def difference_vectors(e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    """normalize(normalize(e1) - normalize(e2)): the image-side target of PC-CLIP.

    Rows with e1 == e2 (up to scale) have no direction and come out as zeros.
    """
    return normalize(normalize(e1) - normalize(e2))
