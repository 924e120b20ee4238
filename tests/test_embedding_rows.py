"""Training only the used token-embedding rows (pcclip.embedding_rows) gives the whole table's weights, bit for bit."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pcclip import finetune as trainer
from pcclip.embedding_rows import swap_in, swap_out, used_rows
from pcclip.finetune import finetune
from pcclip.models import state_fingerprint
from pcclip.profiles import FinetuneConfig
from test_finetune import _world_data

# the DiffWorld recipe's shape at test size: whole text tower, Adam, cosine schedule, a caption term
CFG = FinetuneConfig(steps=12, batch_size=16, caption_term_batch=8, warmup=3, log_every=1, save_every=100)


def _trained(bundle, cfg: FinetuneConfig, rows_only: bool, monkeypatch, negatives: bool = False):
    data = _world_data(40, 0)[0]
    if negatives:
        data = replace(data, negatives=[["the second shape is larger", "no shape is larger"]] * len(data.texts))
    with monkeypatch.context() as m:
        if not rows_only:
            m.setattr(trainer, "_rows_only", lambda *args: None)
        return finetune(bundle, data, cfg, progress=False)


@pytest.mark.parametrize("grad_clip", [1e-3, 1.0, 1e3], ids=["always-clips", "default", "never-clips"])
def test_used_rows_train_to_the_whole_tables_weights_bit_for_bit(tiny_bundle, monkeypatch, grad_clip):
    """Always clipping takes the whole table's norm every step, never clipping skips it; both give equal weights."""
    cfg = replace(CFG, grad_clip=grad_clip)
    whole, rows = (_trained(tiny_bundle, cfg, r, monkeypatch) for r in (False, True))
    assert whole.history == rows.history
    for (name, a), (_, b) in zip(whole.bundle.model.state_dict().items(), rows.bundle.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert whole.bundle.fingerprint == rows.bundle.fingerprint
    moved = ~torch.isclose(rows.bundle.model.token_embedding.weight, tiny_bundle.model.token_embedding.weight).all(1)
    assert 0 < int(moved.sum()) < len(moved)  # some rows trained, most never looked up


def test_hard_negatives_rows_train_alike(tiny_bundle, monkeypatch):
    cfg = replace(CFG, loss="contrastive", hard_negatives=True, negatives_per_text=2)
    whole, rows = (_trained(tiny_bundle, cfg, r, monkeypatch, negatives=True) for r in (False, True))
    assert whole.bundle.fingerprint == rows.bundle.fingerprint


def test_only_a_trained_table_without_weight_decay_uses_rows(tiny_bundle):
    data = _world_data(40, 0)[0]
    for cfg, expected in ((CFG, True), (replace(CFG, weight_decay=0.1), False), (replace(CFG, trainable="blocks"), False)):
        streams = trainer._streams(tiny_bundle, data, cfg)
        assert (trainer._setup(tiny_bundle, cfg, streams).rows is not None) == expected


def test_rows_swap_in_and_out_keep_ids_order_and_untouched_rows():
    model = torch.nn.Module()
    model.token_embedding = torch.nn.Embedding(10, 4)
    before = model.token_embedding.weight.detach().clone()
    rows = used_rows(10, [torch.tensor([[7, 2, 0], [2, 9, 0]])])
    assert rows.rows.tolist() == [0, 2, 7, 9]
    assert rows.tokens(torch.tensor([[7, 2, 0], [2, 9, 0]])).tolist() == [[2, 1, 0], [1, 3, 0]]  # order kept
    whole = swap_in(model, rows)
    assert torch.equal(model.token_embedding.weight, before[rows.rows])
    with torch.no_grad():
        model.token_embedding.weight += 1.0
    swap_out(model, whole, rows)
    changed = (model.token_embedding.weight != before).any(1)
    assert model.token_embedding is whole and changed.nonzero().flatten().tolist() == [0, 2, 7, 9]


def test_a_state_saved_with_rows_resumes_to_the_same_weights(tiny_bundle, tmp_path):
    data, state = _world_data(40, 0)[0], tmp_path / "state.pt"
    straight = finetune(tiny_bundle, data, CFG, progress=False)
    finetune(tiny_bundle, data, CFG, state_path=state, until=5, progress=False)
    resumed = finetune(tiny_bundle, data, CFG, state_path=state, progress=False)
    assert resumed.resumed_from == 5
    assert state_fingerprint("t", resumed.bundle.model.state_dict()) == state_fingerprint(
        "t", straight.bundle.model.state_dict())


@pytest.mark.parametrize("max_norm, rebuilt", [(1e3, False), (1e-2, True)])
def test_clipping_takes_the_whole_tables_norm_whenever_it_may_act(monkeypatch, max_norm, rebuilt):
    """Far below max_norm the clip is a no-op and nothing is rebuilt; otherwise the norm is taken over the whole
    table's gradient, so the clipped rows equal those of torch's clip_grad_norm_ on the whole table."""
    from pcclip import embedding_rows

    g = torch.Generator().manual_seed(0)
    rows = used_rows(50, [torch.tensor([3, 8, 20, 41])])
    table, other = torch.nn.Parameter(torch.zeros(4, 6)), torch.nn.Parameter(torch.zeros(5))
    table.grad, other.grad = torch.randn(4, 6, generator=g), torch.randn(5, generator=g)
    whole, whole_other = torch.nn.Parameter(torch.zeros(50, 6)), torch.nn.Parameter(torch.zeros(5))
    whole.grad, whole_other.grad = torch.zeros(50, 6), other.grad.clone()
    whole.grad[rows.rows] = table.grad
    shapes, norm = [], torch.nn.utils.get_total_norm
    monkeypatch.setattr(embedding_rows.torch.nn.utils, "get_total_norm",
                        lambda grads: shapes.append([tuple(t.shape) for t in grads]) or norm(grads))
    embedding_rows.clip_gradients([other, table], max_norm, table, rows)
    torch.nn.utils.clip_grad_norm_([whole_other, whole], max_norm)
    assert ([(5,), (50, 6)] in shapes) == rebuilt
    assert torch.equal(table.grad, whole.grad[rows.rows]) and torch.equal(other.grad, whole_other.grad)
