"""Llama decoder in plain torch, run over a flat varlen token batch with a paged KV cache.

It is a plain object holding fused tensors rather than an ``nn.Module`` tree: the hot path
on a 2-core CPU is dominated by per-op overhead, so Q/K/V are one matmul, gate/up one
matmul, RoPE is applied to Q and K in one go, and the LM head only runs on the rows that
will be sampled (a 40-token prompt would otherwise pay 40 vocab-sized matmuls for one).
Numerics follow Hugging Face's ``LlamaForCausalLM`` (rotate-half RoPE, RMSNorm in fp32).

With ``packed=True`` each linear layer (and the LM head) whose weights lie on a
quantisation grid also keeps a packed copy, used for steps of at most its ``max_rows``
tokens, where reading the weights is the whole cost (see ``packing``).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from chorusline.runtime.attention import AttentionMetadata, paged_attention
from chorusline.runtime.config import ModelConfig
from chorusline.runtime.fused_llama import fused_forward
from chorusline.runtime.kv_cache import KVCache
from chorusline.runtime.linear import linear, transposed_route
from chorusline.runtime.packing import Packed, pack


def rope_inv_freq(config: ModelConfig, theta: float | None = None) -> torch.Tensor:
    """Inverse frequencies for RoPE base ``theta`` (default: the config's), with
    linear/llama3 scaling applied."""
    dim = config.head_dim
    base = config.rope_theta if theta is None else theta
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).double() / dim))
    scaling = config.rope_scaling or {}
    kind = str(scaling.get("rope_type", scaling.get("type", "default")))
    if kind in ("default", "none"):
        pass
    elif kind == "linear":
        inv_freq = inv_freq / float(scaling["factor"])
    elif kind == "llama3":
        inv_freq = _llama3_inv_freq(inv_freq, scaling)
    else:
        raise ValueError(f"unsupported rope scaling {kind!r} (supported: linear, llama3)")
    return inv_freq.float()


def _llama3_inv_freq(inv_freq: torch.Tensor, scaling: dict[str, object]) -> torch.Tensor:
    """Llama 3.1's frequency-dependent interpolation: long wavelengths are stretched by
    ``factor``, short ones kept, and the band in between blended smoothly."""
    factor = float(scaling["factor"])  # type: ignore[arg-type]
    low = float(scaling.get("low_freq_factor", 1.0))  # type: ignore[arg-type]
    high = float(scaling.get("high_freq_factor", 4.0))  # type: ignore[arg-type]
    old_ctx = float(scaling.get("original_max_position_embeddings", 8192))  # type: ignore[arg-type]
    low_wavelen = old_ctx / low
    high_wavelen = old_ctx / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_ctx / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    mid = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(mid, blended, scaled)


def rope_tables(config: ModelConfig, inv_freq: torch.Tensor, device: torch.device,
                dtype: torch.dtype, max_positions: int | None) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """cos and sin ``[positions, head_dim]`` for rotate-half RoPE, for every position the
    engine will use (``max_positions``, default the model's whole context: Gemma's 32k
    positions cost 32 MB per table)."""
    count = min(max_positions or config.max_position_embeddings,
                config.max_position_embeddings)
    freqs = torch.outer(torch.arange(count, dtype=torch.float32), inv_freq)
    emb = torch.cat([freqs, freqs], -1)
    # Computed in fp32 and then cast, as Hugging Face does, so bf16 matches it too.
    return emb.cos().to(device, dtype), emb.sin().to(device, dtype)


@dataclass
class _Layer:
    input_norm: torch.Tensor
    w_qkv: torch.Tensor
    b_qkv: torch.Tensor | None
    w_o: torch.Tensor
    b_o: torch.Tensor | None
    post_norm: torch.Tensor
    w_gate_up: torch.Tensor
    b_gate_up: torch.Tensor | None
    w_down: torch.Tensor
    b_down: torch.Tensor | None
    packed_qkv: Packed | None = None
    packed_o: Packed | None = None
    packed_gate_up: Packed | None = None
    packed_down: Packed | None = None


class WeightReader:
    """HF-named weights as a decoder keeps them: cast once to its device and dtype,
    fused by concatenation, and (``packed``) packed from the source values."""

    def __init__(self, weights: dict[str, torch.Tensor], device: torch.device,
                 dtype: torch.dtype, packed: bool) -> None:
        self.weights, self.device, self.dtype, self.packed = weights, device, dtype, packed

    def raw(self, name: str) -> torch.Tensor:
        if name not in self.weights:
            raise KeyError(f"model weights lack {name!r}")
        return self.weights[name]

    def get(self, name: str) -> torch.Tensor:
        return self.raw(name).to(self.device, self.dtype).contiguous()

    def opt(self, name: str) -> torch.Tensor | None:
        return self.get(name) if name in self.weights else None

    def cat(self, names: list[str]) -> torch.Tensor:
        return torch.cat([self.get(n) for n in names], 0).contiguous()

    def cat_opt(self, names: list[str]) -> torch.Tensor | None:
        return self.cat(names) if all(n in self.weights for n in names) else None

    def pack(self, names: list[str]) -> Packed | None:
        # From the source values: a bf16 cast first would move them off the grid.
        if not self.packed:
            return None
        sources = [self.raw(n) for n in names]
        # Finding grids takes seconds for a whole model; engines built again on the same
        # loaded weights (tests, a restarted worker) reuse what the first one found.
        anchor = id(sources[0])
        if anchor not in _PACKED:
            _PACKED[anchor] = {}
            weakref.finalize(sources[0], _PACKED.pop, anchor, None)
        memo = _PACKED[anchor]
        key = (tuple(names), tuple(t.data_ptr() for t in sources), self.dtype)
        if key not in memo:
            memo[key] = pack(torch.cat(sources, 0), self.dtype)
        return memo[key]


#: Packed copies by their first source tensor's id, dropped when that tensor is freed.
_PACKED: dict[int, dict[tuple[object, ...], Packed | None]] = {}


class LlamaModel:
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
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        #: ``linear``'s ``W @ x^T`` route; by default where it was measured to pay.
        self.transposed_gemm = transposed_route(self.device, dtype, transposed_gemm)
        #: Steps run through chorusline's fused fp32 CPU kernels (``fused_llama``).
        self.fused = fused

        w = WeightReader(weights, self.device, dtype, packed)
        get, opt, cat, cat_opt, pack = w.get, w.opt, w.cat, w.cat_opt, w.pack

        self.embed = get("model.embed_tokens.weight")
        self.layers: list[_Layer] = []
        for i in range(config.num_hidden_layers):
            p = f"model.layers.{i}."
            qkv = [p + f"self_attn.{x}_proj" for x in ("q", "k", "v")]
            gu = [p + f"mlp.{x}_proj" for x in ("gate", "up")]
            self.layers.append(_Layer(
                input_norm=get(p + "input_layernorm.weight"),
                w_qkv=cat([n + ".weight" for n in qkv]),
                b_qkv=cat_opt([n + ".bias" for n in qkv]),
                w_o=get(p + "self_attn.o_proj.weight"),
                b_o=opt(p + "self_attn.o_proj.bias"),
                post_norm=get(p + "post_attention_layernorm.weight"),
                w_gate_up=cat([n + ".weight" for n in gu]),
                b_gate_up=cat_opt([n + ".bias" for n in gu]),
                w_down=get(p + "mlp.down_proj.weight"),
                b_down=opt(p + "mlp.down_proj.bias"),
                packed_qkv=pack([n + ".weight" for n in qkv]),
                packed_o=pack([p + "self_attn.o_proj.weight"]),
                packed_gate_up=pack([n + ".weight" for n in gu]),
                packed_down=pack([p + "mlp.down_proj.weight"]),
            ))
        self.norm = get("model.norm.weight")
        if config.tie_word_embeddings or "lm_head.weight" not in weights:
            self.lm_head, head = self.embed, "model.embed_tokens.weight"
        else:
            self.lm_head, head = get("lm_head.weight"), "lm_head.weight"
        self.packed_head = pack([head])
        self.cos, self.sin = rope_tables(config, rope_inv_freq(config), self.device, dtype,
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
        if self.fused:
            return fused_forward(self, input_ids, positions, meta, kv_cache, sample_rows)
        cfg = self.config
        heads, kv_heads, dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q_width = heads * dim
        qk_heads = heads + kv_heads
        eps = cfg.rms_norm_eps
        t = input_ids.shape[0]
        x = F.embedding(input_ids, self.embed)
        cos = self.cos.index_select(0, positions).unsqueeze(1)
        sin = self.sin.index_select(0, positions).unsqueeze(1)
        half = dim // 2
        tg = self.transposed_gemm
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (x.shape[-1],), layer.input_norm, eps)
            qkv = linear(h, layer.w_qkv, layer.b_qkv, layer.packed_qkv, tg)
            qk = qkv[:, : qk_heads * dim].view(t, qk_heads, dim)
            rotated = torch.cat([-qk[..., half:], qk[..., :half]], -1)
            qk = qk * cos + rotated * sin
            q = qk[:, :heads]
            k = qk[:, heads:]
            v = qkv[:, q_width + kv_heads * dim:].view(t, kv_heads, dim)
            kv_cache.write(i, meta.slot_mapping, k, v)
            k_layer, v_layer = kv_cache.layer(i)
            attn = paged_attention(q, k_layer, v_layer, meta)
            x = x + linear(attn, layer.w_o, layer.b_o, layer.packed_o, tg)
            h = F.rms_norm(x, (x.shape[-1],), layer.post_norm, eps)
            gate_up = linear(h, layer.w_gate_up, layer.b_gate_up, layer.packed_gate_up, tg)
            gate, up = gate_up.chunk(2, -1)
            x = x + linear(F.silu(gate) * up, layer.w_down, layer.b_down, layer.packed_down, tg)
        if sample_rows is not None:
            x = x.index_select(0, sample_rows)
        x = F.rms_norm(x, (x.shape[-1],), self.norm, eps)
        return linear(x, self.lm_head, None, self.packed_head, tg).float()
