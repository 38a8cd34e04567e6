"""Gemma 3 decoder in plain torch, over the same flat varlen batch and paged KV cache.

What differs from Llama, each as Hugging Face's ``Gemma3ForCausalLM`` computes it:

* five of every six layers attend over a sliding window (``config.sliding_window`` keys)
  with their own RoPE base, the sixth over everything; a local layer reads and writes the
  KV cache's local pool (``meta.slots(True)``, its group's trimmed local view), which
  forgets blocks no query can see again (see ``kv_cache`` and ``block_manager``);
* RMSNorm multiplies by ``1 + w`` (HF stores ``w``): the one is added here, once;
* queries and keys are RMS-normalised per head before RoPE, and the attention scale is
  ``query_pre_attn_scalar ** -0.5``;
* norms sit before *and* after attention and the MLP (the residual adds the normed output);
* the MLP is ``down(gelu_tanh(gate(x)) * up(x))``;
* embeddings are scaled by ``sqrt(hidden)`` (in the weights' dtype, as HF does) and the
  output projection is the embedding matrix.

As in ``model``, Q/K/V are one matmul, gate/up one, and the LM head runs only on the rows
that sample, which matters more here: a 262,144-token vocabulary makes the LM head the
largest matmul of a decode step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from chorusline.runtime.attention import AttentionMetadata, paged_attention
from chorusline.runtime.config import ModelConfig
from chorusline.runtime.kv_cache import KVCache
from chorusline.runtime.linear import linear, transposed_route
from chorusline.runtime.model import WeightReader, rope_inv_freq, rope_tables
from chorusline.runtime.packing import Packed


@dataclass
class _GemmaLayer:
    sliding: bool
    input_norm: torch.Tensor
    w_qkv: torch.Tensor
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    w_o: torch.Tensor
    post_attn_norm: torch.Tensor
    pre_mlp_norm: torch.Tensor
    w_gate_up: torch.Tensor
    w_down: torch.Tensor
    post_mlp_norm: torch.Tensor
    packed_qkv: Packed | None = None
    packed_o: Packed | None = None
    packed_gate_up: Packed | None = None
    packed_down: Packed | None = None


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on ``[T, heads, D]`` with ``cos``/``sin`` ``[T, 1, D]``."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class GemmaModel:
    """Weights (HF names) fused and cast once; ``forward`` is the whole per-step compute."""

    def __init__(
        self,
        config: ModelConfig,
        weights: dict[str, torch.Tensor],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        packed: bool = False,
        fused: bool = False,
        transposed_gemm: bool | None = None,
        max_positions: int | None = None,
    ) -> None:
        if config.sliding_window is None or config.rope_local_theta is None:
            raise ValueError("a Gemma 3 config needs sliding_window and rope_local_theta")
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        self.transposed_gemm = transposed_route(self.device, dtype, transposed_gemm)
        #: Decode attention through chorusline's fp32 CPU kernel.
        self.fused = fused

        w = WeightReader(weights, self.device, dtype, packed)
        get, cat, pack = w.get, w.cat, w.pack

        def norm(name: str) -> torch.Tensor:
            """Gemma's RMSNorm multiplies by ``1 + w``: the one is added here, once."""
            return (1.0 + w.raw(name).float()).to(self.device, dtype).contiguous()

        self.embed = get("model.embed_tokens.weight")
        self.embed_scale = torch.tensor(config.hidden_size ** 0.5, dtype=dtype)
        self.layers: list[_GemmaLayer] = []
        for i in range(config.num_hidden_layers):
            p = f"model.layers.{i}."
            qkv = [p + f"self_attn.{x}_proj.weight" for x in ("q", "k", "v")]
            gate_up = [p + f"mlp.{x}_proj.weight" for x in ("gate", "up")]
            self.layers.append(_GemmaLayer(
                sliding=config.is_sliding(i),
                input_norm=norm(p + "input_layernorm.weight"),
                w_qkv=cat(qkv),
                q_norm=norm(p + "self_attn.q_norm.weight"),
                k_norm=norm(p + "self_attn.k_norm.weight"),
                w_o=get(p + "self_attn.o_proj.weight"),
                post_attn_norm=norm(p + "post_attention_layernorm.weight"),
                pre_mlp_norm=norm(p + "pre_feedforward_layernorm.weight"),
                w_gate_up=cat(gate_up),
                w_down=get(p + "mlp.down_proj.weight"),
                post_mlp_norm=norm(p + "post_feedforward_layernorm.weight"),
                packed_qkv=pack(qkv),
                packed_o=pack([p + "self_attn.o_proj.weight"]),
                packed_gate_up=pack(gate_up),
                packed_down=pack([p + "mlp.down_proj.weight"]),
            ))
        self.norm = norm("model.norm.weight")
        self.lm_head = self.embed
        self.packed_head = pack(["model.embed_tokens.weight"])
        self.cos, self.sin = rope_tables(config, rope_inv_freq(config), self.device, dtype,
                                         max_positions)
        self.local_cos, self.local_sin = rope_tables(
            config, rope_inv_freq(config, config.rope_local_theta), self.device, dtype,
            max_positions)
        self.scale = config.attention_scale

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        kv_cache: KVCache,
        sample_rows: torch.Tensor | None,
    ) -> torch.Tensor:
        """Logits ``[S, V]`` (fp32) for ``sample_rows`` of the flat batch (all rows if None)."""
        cfg = self.config
        heads, kv_heads, dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q_width, kv_width = heads * dim, kv_heads * dim
        eps = cfg.rms_norm_eps
        t = input_ids.shape[0]
        tg = self.transposed_gemm
        x = F.embedding(input_ids, self.embed) * self.embed_scale
        hidden = (x.shape[-1],)
        rope = {
            False: (self.cos.index_select(0, positions).unsqueeze(1),
                    self.sin.index_select(0, positions).unsqueeze(1)),
            True: (self.local_cos.index_select(0, positions).unsqueeze(1),
                   self.local_sin.index_select(0, positions).unsqueeze(1)),
        }
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, hidden, layer.input_norm, eps)
            qkv = linear(h, layer.w_qkv, None, layer.packed_qkv, tg)
            q = F.rms_norm(qkv[:, :q_width].view(t, heads, dim), (dim,), layer.q_norm, eps)
            k = F.rms_norm(qkv[:, q_width:q_width + kv_width].view(t, kv_heads, dim), (dim,),
                           layer.k_norm, eps)
            v = qkv[:, q_width + kv_width:].view(t, kv_heads, dim)
            cos, sin = rope[layer.sliding]
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
            kv_cache.write(i, meta.slots(layer.sliding), k, v)  # the layer's own pool
            k_layer, v_layer = kv_cache.layer(i)
            attn = paged_attention(q, k_layer, v_layer, meta, local=layer.sliding,
                                   fused=self.fused)
            h = linear(attn, layer.w_o, None, layer.packed_o, tg)
            x = x + F.rms_norm(h, hidden, layer.post_attn_norm, eps)
            h = F.rms_norm(x, hidden, layer.pre_mlp_norm, eps)
            gate, up = linear(h, layer.w_gate_up, None, layer.packed_gate_up, tg).chunk(2, -1)
            h = linear(F.gelu(gate, approximate="tanh") * up, layer.w_down, None,
                       layer.packed_down, tg)
            x = x + F.rms_norm(h, hidden, layer.post_mlp_norm, eps)
        if sample_rows is not None:
            x = x.index_select(0, sample_rows)
        x = F.rms_norm(x, hidden, self.norm, eps)
        return linear(x, self.lm_head, None, self.packed_head, tg).float()
