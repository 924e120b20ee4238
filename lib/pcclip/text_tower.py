"""The text tower as the finetuning trainer runs it: tokenised once, trimmed per batch.

CLIP's text transformer is causal and pools at the end-of-text token, so the
padding after the longest sequence of a batch never reaches any pooled output:
cutting every batch (or every group of similar length) to its longest sequence
gives the same embeddings for less work (tests check this to 1e-5). For the same
reason the last block only needs its pooled token: keys and values everywhere,
one query per sequence. The standard open_clip residual block runs through a
functional path (one QKV projection, causal scaled-dot-product attention, no
float mask), the block's own arithmetic without nn.MultiheadAttention's copies.
"""
from __future__ import annotations

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


def _block_forward(block: ResidualAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """ResidualAttentionBlock.forward with a causal mask, written with SDPA(is_causal=True)."""
    attn = block.attn
    n, length, width = x.shape
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(n, length, 3, attn.num_heads, width // attn.num_heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(n, length, width)
    x = x + block.ls_1(attn.out_proj(out))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _pooled_block_forward(block: ResidualAttentionBlock, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The last block only where the output is pooled: keys and values at every position, one query
    per sequence (its pooled token) attending to the positions up to it. Returns (n, width)."""
    attn = block.attn
    n, length, width = x.shape
    heads = attn.num_heads
    h = block.ln_1(x)
    rows = torch.arange(n, device=x.device)
    w_q, w_kv = attn.in_proj_weight.split([width, 2 * width])
    b_q, b_kv = attn.in_proj_bias.split([width, 2 * width])
    q = F.linear(h[rows, pos], w_q, b_q).view(n, heads, 1, width // heads)
    k, v = F.linear(h, w_kv, b_kv).view(n, length, 2, heads, width // heads).permute(2, 0, 3, 1, 4)
    visible = (torch.arange(length, device=x.device) <= pos[:, None]).view(n, 1, 1, length)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=visible).reshape(n, width)
    y = x[rows, pos] + block.ls_1(attn.out_proj(out))
    return y + block.ls_2(block.mlp(block.ln_2(y)))


def encode_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Unnormalised text embeddings of (possibly trimmed) tokens; same values as model.encode_text."""
    if not can_trim(model):
        return model.encode_text(tokens)
    length = tokens.shape[1]
    pos = pool_positions(model, tokens).to(tokens.device)
    x = model.token_embedding(tokens).to(model.transformer.get_cast_dtype())
    x = x + model.positional_embedding[:length].to(x.dtype)
    transformer = model.transformer
    if transformer.batch_first and not transformer.grad_checkpointing and all(
            _fast_block_ok(b) for b in transformer.resblocks):
        for block in transformer.resblocks[:-1]:
            x = _block_forward(block, x)
        x = _pooled_block_forward(transformer.resblocks[-1], x, pos)
    else:
        x = transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = x[torch.arange(len(x), device=x.device), pos]
    x = model.ln_final(x)
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj


def encode_batch(model: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor, buckets: int = 1) -> torch.Tensor:
    """Embeddings of a batch in `buckets` groups of similar length (`lengths` on the CPU), each cut
    to its longest sequence: less padding, the same values, rows in the input order."""
    if not can_trim(model):
        return model.encode_text(tokens)
    if buckets <= 1:
        return encode_tokens(model, tokens[:, :int(lengths.max())])
    order = torch.argsort(lengths, stable=True)
    chunks = order.chunk(buckets)
    parts = [encode_tokens(model, tokens[c.to(tokens.device), :int(lengths[c].max())]) for c in chunks]
    inverse = torch.argsort(order).to(tokens.device)
    return torch.cat(parts)[inverse]


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
