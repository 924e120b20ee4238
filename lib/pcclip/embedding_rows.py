"""Training only the token-embedding rows that a run's texts use: the whole table's update, for less work.

With Adam and no weight decay a row that no text looks up never moves (its gradient and both moments stay
zero), yet the whole table costs every step a zero-filled gradient of its 6.3M entries (DiffWorld's model),
an Adam pass over them and their share of the gradient norm: about a sixth of a DiffWorld step. The trainer
swaps in a table of the used rows, ids remapped in sorted order (the end-of-text token stays the largest
id, so argmax pooling is unchanged), and writes the rows back after training. Each row gets the same
gradient, summed in the same order (the embedding's backward adds a row's lookups in the order they occur),
and the same elementwise Adam update. Only the gradient norm sums in another order, so `clip_gradients`
takes the whole table's norm whenever clipping might act: the weights are bitwise those of the whole table
(tests/test_embedding_rows.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# the norm of the used rows and the whole table's differ by float rounding (~1e-7 relative): below
# max_norm by more than this margin, clipping cannot act on either
_MARGIN = 1e-4


@dataclass(frozen=True)
class EmbeddingRows:
    """The vocabulary ids a run looks up (sorted) and where each id sits in the smaller table."""

    rows: torch.Tensor  # (n,) int64, CPU
    index: torch.Tensor  # (vocab,) int64: the row of each id in the smaller table, -1 for ids never looked up

    def tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """`tokens` as ids of the smaller table."""
        return self.index.to(tokens.device)[tokens]


def used_rows(vocab: int, token_sets: list[torch.Tensor]) -> EmbeddingRows:
    """The rows of a `vocab`-row table that any of `token_sets` looks up (padding included)."""
    rows = torch.unique(torch.cat([t.reshape(-1).cpu() for t in token_sets]))
    index = torch.full((vocab,), -1, dtype=torch.long)
    index[rows] = torch.arange(len(rows))
    return EmbeddingRows(rows, index)


def swap_in(model: torch.nn.Module, rows: EmbeddingRows) -> torch.nn.Embedding:
    """Replace model.token_embedding by a table of `rows` (a copy of their weights); returns the whole table."""
    whole = model.token_embedding
    small = torch.nn.Embedding(len(rows.rows), whole.embedding_dim, device=whole.weight.device,
                               dtype=whole.weight.dtype)
    with torch.no_grad():
        small.weight.copy_(whole.weight[rows.rows.to(whole.weight.device)])
    model.token_embedding = small
    return whole


def swap_out(model: torch.nn.Module, whole: torch.nn.Embedding, rows: EmbeddingRows) -> None:
    """Write the trained rows into the whole table and put it back in the model."""
    with torch.no_grad():
        whole.weight[rows.rows.to(whole.weight.device)] = model.token_embedding.weight.to(whole.weight.dtype)
    model.token_embedding = whole


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float, table: torch.nn.Parameter | None = None,
                   rows: EmbeddingRows | None = None) -> None:
    """`torch.nn.utils.clip_grad_norm_(params, max_norm)` as it would act with the whole table in place of
    `table` (the used rows): when the rows' norm is clearly below max_norm the clip is a no-op either way;
    otherwise the whole table's gradient is rebuilt (zeros elsewhere) to take its norm in its own order."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads)
    if table is None or table.grad is None:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
        return
    if bool(total < (max_norm - 1e-6) * (1 - _MARGIN)):
        return
    whole = table.grad.new_zeros(len(rows.index), table.grad.shape[1])
    whole[rows.rows.to(whole.device)] = table.grad
    total = torch.nn.utils.get_total_norm([whole if g is table.grad else g for g in grads])
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
