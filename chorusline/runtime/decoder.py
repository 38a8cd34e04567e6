"""The one shape every decoder has, and the choice of which to build for a config.

The engine and the model runner drive a decoder only through ``forward`` over the flat
batch and a few facts about it, so Llama and Gemma 3 are two classes behind one protocol
rather than one class full of architecture switches.
"""

from __future__ import annotations

from typing import Protocol

import torch

from chorusline.runtime.attention import AttentionMetadata
from chorusline.runtime.config import ModelConfig
from chorusline.runtime.kv_cache import KVCache


class Decoder(Protocol):
    config: ModelConfig
    device: torch.device
    dtype: torch.dtype
    #: Softmax scale of attention scores.
    scale: float

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor,
                meta: AttentionMetadata, kv_cache: KVCache,
                sample_rows: torch.Tensor | None) -> torch.Tensor:
        """Logits ``[S, V]`` (fp32) for ``sample_rows`` of the flat batch (all if None)."""
        ...


def build_decoder(config: ModelConfig, weights: dict[str, torch.Tensor], *,
                  device: torch.device, dtype: torch.dtype, packed: bool = False,
                  fused: bool = False,
                  max_positions: int | None = None) -> Decoder:
    """The decoder class for ``config.architecture``, with its weights fused and cast."""
    if config.architecture == "gemma3":
        from chorusline.runtime.gemma import GemmaModel
        return GemmaModel(config, weights, device=device, dtype=dtype, packed=packed, fused=fused,
                          max_positions=max_positions)
    from chorusline.runtime.model import LlamaModel
    return LlamaModel(config, weights, device=device, dtype=dtype, packed=packed, fused=fused,
                      max_positions=max_positions)
