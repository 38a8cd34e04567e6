"""A BERT encoder forward in plain torch, for sentence-embedding models.

Why not ``transformers``: the serving runtime keeps its own small forwards (like the
Llama model in ``model.py``), so it owns the numerics, the padding rules and the device
placement, and does not pull a model zoo into every server process. The layout of the
weights is BERT's, so a checkpoint written by ``BertModel`` loads as it is.

The padding rule is what makes batching sound: every sequence of a batch is padded to
the longest one, and the attention mask stops any real token from attending to a pad, so
a sentence's hidden states are the same alone or in a batch (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BertConfig:
        """From a ``config.json``; anything but absolute positions and exact GELU is
        refused, since the forward below implements only those."""
        act = data.get("hidden_act", "gelu")
        if act != "gelu":
            raise ValueError(f"unsupported hidden_act {act!r} (only exact gelu)")
        positions = data.get("position_embedding_type", "absolute")
        if positions != "absolute":
            raise ValueError(f"unsupported position_embedding_type {positions!r}")
        return cls(
            vocab_size=int(data["vocab_size"]),
            hidden_size=int(data["hidden_size"]),
            num_hidden_layers=int(data["num_hidden_layers"]),
            num_attention_heads=int(data["num_attention_heads"]),
            intermediate_size=int(data["intermediate_size"]),
            max_position_embeddings=int(data["max_position_embeddings"]),
            type_vocab_size=int(data.get("type_vocab_size", 2)),
            layer_norm_eps=float(data.get("layer_norm_eps", 1e-12)),
            pad_token_id=int(data.get("pad_token_id", 0)),
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class _Layer:
    qkv_weight: torch.Tensor  # [3H, H]: one matmul for query, key and value
    qkv_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    attn_norm: tuple[torch.Tensor, torch.Tensor]
    up_weight: torch.Tensor
    up_bias: torch.Tensor
    down_weight: torch.Tensor
    down_bias: torch.Tensor
    out_norm: tuple[torch.Tensor, torch.Tensor]


class BertEncoder:
    """Token ids in, last hidden states out. Stateless between calls, so one instance
    serves any number of threads' batches one at a time, and a crashed caller leaves
    nothing behind to clean up."""

    def __init__(self, config: BertConfig, weights: Mapping[str, torch.Tensor],
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
                 ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

        def get(name: str) -> torch.Tensor:
            return weights[prefix + name].to(device=self.device, dtype=dtype).contiguous()

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")
        self.embed_norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers = [self._layer(get, f"encoder.layer.{i}.")
                       for i in range(config.num_hidden_layers)]

    @staticmethod
    def _layer(get: Any, p: str) -> _Layer:
        attn, qkv = p + "attention.", ("query", "key", "value")
        return _Layer(
            qkv_weight=torch.cat([get(f"{attn}self.{n}.weight") for n in qkv]),
            qkv_bias=torch.cat([get(f"{attn}self.{n}.bias") for n in qkv]),
            out_weight=get(f"{attn}output.dense.weight"),
            out_bias=get(f"{attn}output.dense.bias"),
            attn_norm=(get(f"{attn}output.LayerNorm.weight"), get(f"{attn}output.LayerNorm.bias")),
            up_weight=get(f"{p}intermediate.dense.weight"),
            up_bias=get(f"{p}intermediate.dense.bias"),
            down_weight=get(f"{p}output.dense.weight"),
            down_bias=get(f"{p}output.dense.bias"),
            out_norm=(get(f"{p}output.LayerNorm.weight"), get(f"{p}output.LayerNorm.bias")),
        )

    def pad(self, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids [B, L], mask [B, L] bool)`` for sequences of any lengths, right-padded."""
        if not batch or any(not ids for ids in batch):
            raise ValueError("every sequence needs at least one token")
        longest = max(len(ids) for ids in batch)
        if longest > self.config.max_position_embeddings:
            raise ValueError(f"a sequence of {longest} tokens exceeds the model's "
                             f"{self.config.max_position_embeddings} positions")
        pad = self.config.pad_token_id
        ids = torch.tensor([row + [pad] * (longest - len(row)) for row in batch],
                           dtype=torch.long)
        lengths = torch.tensor([len(row) for row in batch])
        mask = torch.arange(longest)[None, :] < lengths[:, None]
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[B, L, H]``; rows at padded positions are meaningless."""
        cfg = self.config
        batch, length = ids.shape
        positions = torch.arange(length, device=ids.device)
        x = self.word[ids] + self.position[positions][None] + self.token_type[0]
        x = F.layer_norm(x, (cfg.hidden_size,), *self.embed_norm, eps=cfg.layer_norm_eps)
        # Keys that are padding get -inf-like scores for every query; a pad query still
        # sees the real keys, so no row is all masked and no NaN appears.
        bias = torch.zeros(batch, 1, 1, length, device=ids.device, dtype=x.dtype)
        bias.masked_fill_(~mask[:, None, None, :], torch.finfo(x.dtype).min)
        heads, dim = cfg.num_attention_heads, cfg.head_dim
        for layer in self.layers:
            qkv = F.linear(x, layer.qkv_weight, layer.qkv_bias)
            q, k, v = qkv.view(batch, length, 3, heads, dim).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            attended = attended.transpose(1, 2).reshape(batch, length, cfg.hidden_size)
            x = F.layer_norm(x + F.linear(attended, layer.out_weight, layer.out_bias),
                             (cfg.hidden_size,), *layer.attn_norm, eps=cfg.layer_norm_eps)
            hidden = F.gelu(F.linear(x, layer.up_weight, layer.up_bias))
            x = F.layer_norm(x + F.linear(hidden, layer.down_weight, layer.down_bias),
                             (cfg.hidden_size,), *layer.out_norm, eps=cfg.layer_norm_eps)
        return x


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The average of each sequence's real (unmasked) token states: ``[B, H]``."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first token's state (``[CLS]``), for models pooled that way."""
    del mask
    return hidden[:, 0]
