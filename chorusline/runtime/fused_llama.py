"""A Llama step on fp32 CPU through chorusline's kernels, a few calls per layer.

The same computation as ``LlamaModel``'s torch path, with each run of small operations
done by one kernel (``kernels/decode_ops.cpp``): the residual add and the next RMSNorm,
RoPE with the KV write, decode attention, SiLU times up. A one-token step of SmolLM2 goes
from ~50 torch calls per layer to 9, which matters once the weights are read as 4-bit
grids and the calls, not the matmuls, are most of the step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from chorusline.runtime.attention import AttentionMetadata, paged_attention
from chorusline.runtime.kv_cache import KVCache
from chorusline.runtime.linear import linear

if TYPE_CHECKING:
    from chorusline.runtime.model import LlamaModel

_ops = torch.ops.chorusline


def fused_forward(model: LlamaModel, input_ids: torch.Tensor, positions: torch.Tensor,
                  meta: AttentionMetadata, kv_cache: KVCache,
                  sample_rows: torch.Tensor | None) -> torch.Tensor:
    """Logits ``[S, V]`` (fp32) for ``sample_rows`` of the flat batch (all rows if None)."""
    cfg = model.config
    heads, kv_heads, dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    q_width = heads * dim
    eps = cfg.rms_norm_eps
    t = input_ids.shape[0]
    tg = model.transposed_gemm
    x = F.embedding(input_ids, model.embed)
    layers = model.layers
    h = _ops.add_rms_norm_(x, None, layers[0].input_norm, eps)
    for i, layer in enumerate(layers):
        qkv = linear(h, layer.w_qkv, layer.b_qkv, layer.packed_qkv, tg)
        k_layer, v_layer = kv_cache.layer(i)
        _ops.rope_store_(qkv, positions, model.cos, model.sin, heads, kv_heads, k_layer,
                         v_layer, meta.slot_mapping)
        q = qkv[:, :q_width].reshape(t, heads, dim)
        attn = paged_attention(q, k_layer, v_layer, meta, fused=True)
        o = linear(attn, layer.w_o, layer.b_o, layer.packed_o, tg)
        h = _ops.add_rms_norm_(x, o, layer.post_norm, eps)
        gate_up = linear(h, layer.w_gate_up, layer.b_gate_up, layer.packed_gate_up, tg)
        down = linear(_ops.silu_mul(gate_up), layer.w_down, layer.b_down, layer.packed_down,
                      tg)
        if i + 1 < len(layers):
            h = _ops.add_rms_norm_(x, down, layers[i + 1].input_norm, eps)
        else:
            x.add_(down)
    if sample_rows is not None:
        x = x.index_select(0, sample_rows)
    x = _ops.add_rms_norm_(x.contiguous(), None, model.norm, eps)
    return linear(x, model.lm_head, None, model.packed_head, tg).float()
