"""Varlen paged attention over a mixed batch of prefill slices and decode tokens.

The flat token batch is laid out as [decode tokens | prefill slice tokens]. Each part is an
*attention group*: its sequences' KV blocks are gathered block-wise (one index per block, not
per token) into a padded ``[B, max_blocks * block_size]`` key range and attended with one
``scaled_dot_product_attention`` call under a boolean mask. Gathering by block keeps the index
tensors tiny, and because gathered key slot ``p`` *is* absolute position ``p``, the causal
mask is a single comparison. Decode tokens never get padded on the query side, so the common
case (many sequences, one token each) costs one gather and one attention per layer.

On CPU, a decode group (one query per sequence) skips SDPA for two batched matmuls with an
fp32 softmax between them. Measured on the project's 2-core AMD EPYC (AVX512-BF16), batch 32,
9 query / 3 KV heads, 128 keys: SDPA's CPU kernel took 2,247 µs in bf16 and 332 µs in fp32
per call against 229 / 283 µs for the matmuls; with a query longer than one token SDPA wins
(4.4 ms vs 8.4 ms at 40 queries), so prefill groups keep it. The mask is turned into an
additive bias once per step and shared by every layer.

All metadata (indices, masks) is built once per step and shared by every layer. A model
with sliding-window layers (Gemma 3) gets a second mask per group, the causal one narrowed
to the last ``window`` positions, which its local layers use instead.

When those layers keep their KV in a pool of their own (``kv_cache``, ``block_manager``),
each group also gets a *trimmed* local view: per sequence only the local blocks from the
first one its earliest query still sees (``block_manager.dead_blocks`` of the slice's
start) to the last, so a local layer gathers about ``window`` keys per sequence however
long the context is, instead of the whole padded table. Gathered key slot ``p`` of
sequence ``i`` is then absolute position ``first_i * block_size + p``, and the local mask
compares those offset positions. The leading entries it skips are exactly the ones the
block manager has released (they name the local null block), so nothing released is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from chorusline.runtime.block_manager import dead_blocks


@dataclass
class AttentionGroup:
    """A contiguous slice ``[token_start, token_end)`` of the flat batch attended together."""

    token_start: int
    token_end: int
    num_seqs: int
    max_q: int
    block_index: torch.Tensor  # [B, max_blocks] int64 block ids (padding -> the null block)
    mask: torch.Tensor  # [B, 1, max_q, max_blocks * block_size] bool, True = may attend
    # Padded-query bookkeeping; None when every sequence has exactly max_q tokens.
    q_gather: torch.Tensor | None  # [B * max_q] rows of the slice (padding rows -> 0)
    out_rows: torch.Tensor | None  # [n tokens] rows of the padded output, in slice order
    #: ``mask`` as an additive fp32 bias (0 / -inf), built by the first layer that needs it.
    bias: torch.Tensor | None = None
    #: ``mask`` narrowed to a sliding window, for local layers (None: no window); over
    #: ``local_block_index``'s keys when that is set, else over ``block_index``'s.
    local_mask: torch.Tensor | None = None
    local_bias: torch.Tensor | None = None
    #: ``[B, local_width]`` local-pool blocks still in the window (None: no local pool).
    local_block_index: torch.Tensor | None = None

    def masks(self, local: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The mask (and bias, if built) a layer uses: local layers take the window's."""
        if local and self.local_mask is not None:
            return self.local_mask, self.local_bias
        return self.mask, self.bias

    def blocks(self, local: bool) -> torch.Tensor:
        """The blocks a layer gathers: local layers with a pool of their own take theirs."""
        if local and self.local_block_index is not None:
            return self.local_block_index
        return self.block_index

    def keep_bias(self, local: bool, bias: torch.Tensor) -> None:
        if local and self.local_mask is not None:
            self.local_bias = bias
        else:
            self.bias = bias


@dataclass
class AttentionMetadata:
    """Per-step inputs shared by all layers."""

    slot_mapping: torch.Tensor  # [T] int64 flat cache slot each new token's K/V goes to
    groups: list[AttentionGroup]
    scale: float
    #: [T] the same tokens' slots in the local pool (None: no local pool).
    local_slot_mapping: torch.Tensor | None = None

    def slots(self, local: bool) -> torch.Tensor:
        """Where a layer writes this step's K/V: local layers into their own pool."""
        if local and self.local_slot_mapping is not None:
            return self.local_slot_mapping
        return self.slot_mapping


def build_group(
    token_start: int,
    q_lens: Sequence[int],
    starts: Sequence[int],
    block_tables: Sequence[Sequence[int]],
    block_size: int,
    null_block: int,
    device: torch.device,
    max_blocks: int | None = None,
    window: int | None = None,
    local_block_tables: Sequence[Sequence[int]] | None = None,
    local_null_block: int | None = None,
) -> AttentionGroup:
    """Index and mask tensors for sequences whose tokens are contiguous from token_start.

    ``starts[i]`` is the absolute position of sequence i's first query token, and its block
    table must cover positions up to ``starts[i] + q_lens[i] - 1``. ``max_blocks`` pins the
    padded width (CUDA graphs need fixed shapes); by default the widest needed is used.
    ``window`` adds ``local_mask``: a query at ``q`` sees keys ``q - window < k <= q``.
    With ``local_block_tables`` (the local pool's, same logical indices, padded with
    ``local_null_block``) that mask is over the trimmed local view instead (module
    docstring).
    """
    num_seqs = len(q_lens)
    max_q = max(q_lens)
    needed = [(s + q + block_size - 1) // block_size for s, q in zip(starts, q_lens, strict=True)]
    width = max(needed) if max_blocks is None else max_blocks
    table = [list(bt[:n]) + [null_block] * (width - n)
             for bt, n in zip(block_tables, needed, strict=True)]
    block_index = torch.tensor(table, dtype=torch.int64).to(device, non_blocking=True)

    q_len_t = torch.tensor(q_lens, dtype=torch.int64)
    start_t = torch.tensor(starts, dtype=torch.int64)
    j = torch.arange(max_q, dtype=torch.int64)
    valid = j[None, :] < q_len_t[:, None]  # [B, max_q]
    # Padding query rows attend to key 0 only: a fully masked row would make SDPA emit NaN.
    q_pos = torch.where(valid, start_t[:, None] + j[None, :], 0)
    key_pos = torch.arange(width * block_size, dtype=torch.int64)
    causal = key_pos[None, None, :] <= q_pos[:, :, None]
    mask = causal.unsqueeze(1).to(device)
    local_mask = None
    local_index = None
    if window is not None and local_block_tables is not None:
        if local_null_block is None:
            raise ValueError("local_block_tables need local_null_block")
        local_mask, local_index = _local_view(starts, start_t, j, valid, needed,
                                              local_block_tables, block_size,
                                              local_null_block, window, device)
    elif window is not None:
        seen = key_pos[None, None, :] > q_pos[:, :, None] - window
        local_mask = (causal & seen).unsqueeze(1).to(device)

    q_gather: torch.Tensor | None = None
    out_rows: torch.Tensor | None = None
    if any(q != max_q for q in q_lens):
        offsets = torch.cumsum(q_len_t, 0) - q_len_t  # first slice row of each sequence
        gather = torch.where(valid, offsets[:, None] + j[None, :], 0)
        q_gather = gather.reshape(-1).to(device)
        out_rows = (torch.arange(num_seqs * max_q).view(num_seqs, max_q)[valid]).to(device)
    total = sum(q_lens)
    return AttentionGroup(token_start, token_start + total, num_seqs, max_q, block_index, mask,
                          q_gather, out_rows, local_mask=local_mask,
                          local_block_index=local_index)


def _local_view(
    starts: Sequence[int],
    start_t: torch.Tensor,
    j: torch.Tensor,
    valid: torch.Tensor,
    needed: Sequence[int],
    tables: Sequence[Sequence[int]],
    block_size: int,
    null_block: int,
    window: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The local mask and block index of the trimmed view: sequence ``i``'s logical
    blocks ``first_i .. needed_i - 1``, key slot ``p`` at position ``first_i * bs + p``."""
    firsts = [dead_blocks(s, window, block_size) for s in starts]
    width = max(n - f for n, f in zip(needed, firsts, strict=True))
    table = [list(bt[f:n]) + [null_block] * (width - n + f)
             for bt, f, n in zip(tables, firsts, needed, strict=True)]
    index = torch.tensor(table, dtype=torch.int64).to(device, non_blocking=True)
    # Padding query rows take their sequence's first query: its window is never empty
    # (it holds the query itself), so SDPA never sees a fully masked row.
    q_pos = torch.where(valid, start_t[:, None] + j[None, :], start_t[:, None])
    first_pos = torch.tensor(firsts, dtype=torch.int64) * block_size
    key_pos = first_pos[:, None] + torch.arange(width * block_size, dtype=torch.int64)
    keys, queries = key_pos[:, None, :], q_pos[:, :, None]
    mask = (keys <= queries) & (keys > queries - window)
    return mask.unsqueeze(1).to(device), index


def paged_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
    *,
    local: bool = False,
    fused: bool = False,
) -> torch.Tensor:
    """Attend ``q [T, H, D]`` against one layer's cache ``[KVH, num_blocks, block_size, D]``.

    Returns ``[T, H * D]``. The caller must already have written this step's K/V.
    ``local``: a sliding-window layer (the groups' ``local_mask``). ``fused``: decode
    groups go to chorusline's fp32 CPU kernel (``kernels/decode_ops.cpp``), one call
    instead of a gather, two batched matmuls and a softmax.
    """
    num_tokens, num_heads, head_dim = q.shape
    if len(meta.groups) == 1:
        return _group_attention(q, k_cache, v_cache, meta.groups[0], meta.scale, local,
                                fused)
    out = q.new_empty(num_tokens, num_heads * head_dim)
    for g in meta.groups:
        out[g.token_start:g.token_end] = _group_attention(
            q[g.token_start:g.token_end], k_cache, v_cache, g, meta.scale, local, fused)
    return out


def _group_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    g: AttentionGroup,
    scale: float,
    local: bool,
    fused: bool,
) -> torch.Tensor:
    kv_heads, head_dim = k_cache.shape[0], k_cache.shape[-1]
    num_heads = q.shape[1]
    b = g.block_index.shape[0]
    if g.max_q == 1 and q.device.type == "cpu":
        return _decode_attention(q, k_cache, v_cache, g, scale, local, fused)
    mask = g.masks(local)[0]
    if g.q_gather is not None:
        q = q.index_select(0, g.q_gather)
    qb = q.view(b, g.max_q, num_heads, head_dim).transpose(1, 2)
    k = _gather(k_cache, g.blocks(local)).transpose(0, 1)
    v = _gather(v_cache, g.blocks(local)).transpose(0, 1)
    o = F.scaled_dot_product_attention(qb, k, v, attn_mask=mask, scale=scale,
                                       enable_gqa=kv_heads != num_heads)
    o = o.transpose(1, 2).reshape(b * g.max_q, num_heads * head_dim)
    if g.out_rows is not None:
        o = o.index_select(0, g.out_rows)
    return o


def _gather(cache: torch.Tensor, block_index: torch.Tensor) -> torch.Tensor:
    """A group's blocks of one layer's keys or values as ``[KVH, B, span, D]``."""
    kv_heads, _, block_size, head_dim = cache.shape
    b, width = block_index.shape
    flat = cache.index_select(1, block_index.view(-1))
    return flat.view(kv_heads, b, width * block_size, head_dim)


def _decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    g: AttentionGroup,
    scale: float,
    local: bool,
    fused: bool,
) -> torch.Tensor:
    """One query per sequence: ``softmax(q k^T * scale + bias) v`` as two batched matmuls.

    Query heads are grouped by the KV head they share (head ``h`` reads KV head
    ``h // group``, as ``enable_gqa`` does), so K and V are never repeated.
    """
    if fused:
        return torch.ops.chorusline.decode_attention(  # type: ignore[no-any-return]
            q.contiguous(), k_cache, v_cache, g.blocks(local).contiguous(),
            g.masks(local)[0].contiguous(), scale)
    k = _gather(k_cache, g.blocks(local))
    v = _gather(v_cache, g.blocks(local))
    kv_heads, b, span, head_dim = k.shape
    num_heads = q.shape[1]
    mask, bias = g.masks(local)
    if bias is None:
        bias = torch.zeros(1, b, 1, span, dtype=torch.float32, device=mask.device)
        bias.masked_fill_(~mask.view(1, b, 1, span), float("-inf"))
        g.keep_bias(local, bias)
    qg = q.view(b, kv_heads, num_heads // kv_heads, head_dim).transpose(0, 1)
    scores = torch.matmul(qg, k.transpose(2, 3)).float()  # [KVH, B, group, span]
    scores.mul_(scale).add_(bias)
    probs = scores.softmax(-1).to(q.dtype)
    out = torch.matmul(probs, v)  # [KVH, B, group, D]
    return out.transpose(0, 1).reshape(b, num_heads * head_dim)


def reference_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int, scale: float,
    window: int | None = None,
) -> torch.Tensor:
    """Dense causal attention for one sequence, for tests: q [L, H, D], k/v [start+L, KVH, D]."""
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q, k) * scale
    q_pos = torch.arange(q.shape[0])[:, None] + start
    k_pos = torch.arange(k.shape[0])[None, :]
    hidden = k_pos > q_pos
    if window is not None:
        hidden |= k_pos <= q_pos - window
    scores = scores.masked_fill(hidden, float("-inf"))
    probs = scores.softmax(-1)
    return torch.einsum("hqk,khd->qhd", probs, v).reshape(q.shape[0], -1)
