"""The text tower as the finetuning trainer runs it: tokenised once, without padding.

CLIP's text transformer is causal and pools at the end-of-text token, so the
padding after a sequence never reaches its pooled output: dropping it gives the
same embeddings for less work (tests check values and gradients against
encode_text). The standard open_clip residual block runs packed: the token
embedding, projections and MLPs see one row per real token, and causal
scaled-dot-product attention runs on groups of similar length, each padded to
its longest sequence. The last block only needs its pooled token: keys and
values everywhere, one query per sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock

TRAINABLE = ("blocks", "text")  # blocks: text transformer blocks only (paper); text: the whole text tower


def _is_clip_text(model: torch.nn.Module) -> bool:
    """open_clip.CLIP keeps its text tower at top level (CustomTextCLIP wraps it in `model.text`)."""
    return all(hasattr(model, a) for a in ("token_embedding", "positional_embedding", "transformer", "ln_final"))


def can_trim(model: torch.nn.Module) -> bool:
    """Trimming is exact only for a causal text transformer pooled at the end token (or the first)."""
    mask = getattr(model, "attn_mask", None)
    if not _is_clip_text(model) or mask is None or not mask.is_floating_point():
        return False
    causal = torch.full_like(mask, float("-inf")).triu(1)
    return torch.equal(mask, causal) and getattr(model, "text_pool_type", "") in ("argmax", "eos", "first")


def pool_positions(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Index of the token each sequence is pooled at (the end-of-text token for CLIP)."""
    pool = getattr(model, "text_pool_type", "argmax")
    if pool == "argmax":
        return tokens.argmax(dim=-1)
    if pool == "eos":
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    if pool == "first":
        return torch.zeros(len(tokens), dtype=torch.long)
    return torch.full((len(tokens),), tokens.shape[1] - 1, dtype=torch.long)


def tokenize(tokenizer: Callable, model: torch.nn.Module, texts: list[str],
             batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (n, context) and the length each sequence needs (pool position + 1), computed once."""
    if not texts:
        raise ValueError("no texts to tokenise: the training data has no descriptions")
    tokens = torch.cat([tokenizer(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])
    lengths = pool_positions(model, tokens) + 1 if can_trim(model) else torch.full((len(tokens),), tokens.shape[1])
    return tokens, lengths


def _fast_block_ok(block: torch.nn.Module) -> bool:
    attn = getattr(block, "attn", None)
    return (type(block) is ResidualAttentionBlock and not hasattr(block, "ln_1_kv")
            and isinstance(attn, torch.nn.MultiheadAttention) and attn.batch_first
            and attn._qkv_same_embed_dim and attn.in_proj_bias is not None and attn.dropout == 0.0)


def _packable(model: torch.nn.Module) -> bool:
    transformer = model.transformer
    return (transformer.batch_first and not transformer.grad_checkpointing
            and all(_fast_block_ok(b) for b in transformer.resblocks))


@dataclass(frozen=True)
class _Packing:
    """A batch without its padding: one row per real token, sequence after sequence (shortest first),
    and the padded groups of similar length that attention runs on, slot by slot."""

    order: torch.Tensor  # (n,) input row of each packed sequence
    token_index: torch.Tensor  # (T,) flat index into the (n, context) tokens of each packed row
    position: torch.Tensor  # (T,) position of each packed row in its sequence
    pooled: torch.Tensor  # (n,) packed row of each sequence's pooled (last) token
    to_padded: torch.Tensor  # (slots,) packed row in each slot; padding repeats the last token, which no real
    # token attends to (causal) and whose output is dropped, so it adds nothing to values or gradients
    to_packed: torch.Tensor  # (T,) padded slot of each packed row
    visible: torch.Tensor  # (slots,) the slot holds a real token
    shapes: tuple[tuple[int, int], ...]  # (sequences, length) of each group


def _packing(lengths: torch.Tensor, buckets: int, context: int, device: torch.device) -> _Packing:
    """Index maps between packed rows and `buckets` padded groups of similar length (`lengths` on the CPU)."""
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order]
    starts = sorted_lengths.cumsum(0) - sorted_lengths
    to_padded, visible, flat, shapes = [], [], [], []
    for group in torch.arange(len(order)).chunk(max(1, buckets)):
        length = int(sorted_lengths[group].max())
        t, ends = torch.arange(length)[None], sorted_lengths[group, None]
        to_padded.append((starts[group, None] + torch.minimum(t, ends - 1)).reshape(-1))
        visible.append((t < ends).reshape(-1))
        flat.append((order[group, None] * context + t).reshape(-1))
        shapes.append((len(group), length))
    visible_all = torch.cat(visible)
    position = torch.cat([torch.arange(length).repeat(n) for n, length in shapes])[visible_all]
    maps = dict(order=order, token_index=torch.cat(flat)[visible_all], position=position,
                pooled=starts + sorted_lengths - 1, to_padded=torch.cat(to_padded),
                to_packed=torch.arange(len(visible_all))[visible_all], visible=visible_all)
    return _Packing(**{k: v.to(device) for k, v in maps.items()}, shapes=tuple(shapes))


def _packed_block(block: ResidualAttentionBlock, x: torch.Tensor, p: _Packing) -> torch.Tensor:
    """ResidualAttentionBlock.forward on packed rows (T, width): the projections and the MLP see real
    tokens only; causal scaled-dot-product attention runs group by group on the padded slots."""
    attn = block.attn
    width, heads = x.shape[1], attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).index_select(0, p.to_padded)
    outs = []
    for part, (n, length) in zip(qkv.split([n * length for n, length in p.shapes]), p.shapes):
        q, k, v = part.view(n, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
        outs.append(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(-1, width))
    x = x + block.ls_1(attn.out_proj(torch.cat(outs).index_select(0, p.to_packed)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _packed_pooled_block(block: ResidualAttentionBlock, x: torch.Tensor, p: _Packing) -> torch.Tensor:
    """The last block only where the output is pooled: keys and values at every token, one query per
    sequence (its pooled token, the last) attending to its own tokens. Returns (n, width), packed order."""
    attn = block.attn
    width, heads = x.shape[1], attn.num_heads
    h = block.ln_1(x)
    w_q, w_kv = attn.in_proj_weight.split([width, 2 * width])
    b_q, b_kv = attn.in_proj_bias.split([width, 2 * width])
    q = F.linear(h.index_select(0, p.pooled), w_q, b_q)
    kv = F.linear(h, w_kv, b_kv).index_select(0, p.to_padded)
    sizes = [n * length for n, length in p.shapes]
    outs = []
    for qg, part, seen, (n, length) in zip(q.split([n for n, _ in p.shapes]), kv.split(sizes),
                                           p.visible.split(sizes), p.shapes):
        k, v = part.view(n, length, 2, heads, width // heads).permute(2, 0, 3, 1, 4)
        outs.append(F.scaled_dot_product_attention(qg.view(n, heads, 1, width // heads), k, v,
                                                   attn_mask=seen.view(n, 1, 1, length)).reshape(n, width))
    y = x.index_select(0, p.pooled) + block.ls_1(attn.out_proj(torch.cat(outs)))
    return y + block.ls_2(block.mlp(block.ln_2(y)))


def _project(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = model.ln_final(x)
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


def _encode_packed(model: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor, buckets: int) -> torch.Tensor:
    p = _packing(lengths, buckets, tokens.shape[1], tokens.device)
    x = model.token_embedding(tokens.reshape(-1).index_select(0, p.token_index))
    x = x.to(model.transformer.get_cast_dtype())
    x = x + model.positional_embedding.index_select(0, p.position).to(x.dtype)
    for block in model.transformer.resblocks[:-1]:
        x = _packed_block(block, x, p)
    x = _packed_pooled_block(model.transformer.resblocks[-1], x, p)
    return _project(model, x).index_select(0, torch.argsort(p.order))


def _encode_padded(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Any other block type: open_clip's own transformer on the trimmed tokens."""
    length = tokens.shape[1]
    x = model.token_embedding(tokens).to(model.transformer.get_cast_dtype())
    x = model.transformer(x + model.positional_embedding[:length].to(x.dtype), attn_mask=model.attn_mask[:length, :length])
    pos = pool_positions(model, tokens).to(tokens.device)
    return _project(model, x[torch.arange(len(x), device=x.device), pos])


def encode_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Unnormalised text embeddings of (possibly trimmed) tokens; same values as model.encode_text."""
    return encode_batch(model, tokens, pool_positions(model, tokens).cpu() + 1)


def encode_batch(model: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor, buckets: int = 1) -> torch.Tensor:
    """Embeddings of a batch (`lengths` on the CPU), rows in the input order; the same values as
    model.encode_text, for less work. Standard blocks run packed: the token embedding (looked up once,
    so its dense gradient is built once), the projections and the MLPs see real tokens only, and
    attention runs in `buckets` groups of similar length, each cut to its longest sequence. Other
    blocks run open_clip's transformer group by group."""
    if not can_trim(model):
        return model.encode_text(tokens)
    if _packable(model):
        return _encode_packed(model, tokens, lengths, buckets)
    order = torch.argsort(lengths, stable=True)
    parts = [_encode_padded(model, tokens[c.to(tokens.device), :int(lengths[c].max())])
             for c in order.chunk(max(1, buckets))]
    return torch.cat(parts)[torch.argsort(order).to(tokens.device)]


def trainable_parameters(model: torch.nn.Module, which: str) -> list[torch.nn.Parameter]:
    """Freeze everything, then unfreeze the chosen part of the text tower and return its parameters."""
    if which not in TRAINABLE:
        raise ValueError(f"finetune.trainable={which!r}; choose one of {TRAINABLE}")
    if not _is_clip_text(model):
        raise ValueError(f"{type(model).__name__} has no open_clip CLIP text tower (token_embedding, transformer, "
                         "ln_final): finetuning supports open_clip.CLIP models")
    model.requires_grad_(False)
    parts: list = [model.transformer]
    if which == "text":
        parts += [model.token_embedding, model.ln_final, model.positional_embedding, model.text_projection]
    params = []
    for part in parts:
        if isinstance(part, torch.nn.Parameter):
            params.append(part)
        elif isinstance(part, torch.nn.Module):
            params.extend(part.parameters())
    for p in params:
        p.requires_grad_(True)
    return params
