"""Read a GGUF file and turn its tensors into a Hugging Face state dict (Llama, Gemma 3).

llama.cpp renames tensors and permutes the rows of Llama's query/key projections to suit
its RoPE kernel; we undo both so the result equals what `transformers` loads, and the
torch model can be written once against HF conventions. Gemma is converted without the
permutation (llama.cpp runs it with NeoX-style RoPE, which is HF's rotate-half), but with
every norm weight stored as ``1 + w``: HF keeps ``w`` and adds the one at run time, so
the one is taken off here, as transformers does.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFReader, ReaderTensor
from tqdm import tqdm

from chorusline.runtime import dequant
from chorusline.runtime.config import ModelConfig
from chorusline.runtime.hf_weights import expected_hf_names

_GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
# Gemma 3 names the norm before the MLP `ffn_norm` (Llama's post-attention norm) and adds
# norms after attention and after the MLP, and on queries and keys.
_GEMMA3_LAYER_NAMES = {
    **_LAYER_NAMES,
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
}
# Tensors llama.cpp derives for its own kernels; HF recomputes them from the config.
_IGNORED = {"rope_freqs.weight"}
_LAYER_RE = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")


@dataclass
class GGUFFile:
    """An opened GGUF file: decoded metadata plus lazily memory-mapped tensors."""

    path: Path
    metadata: dict[str, Any]
    reader: GGUFReader

    @property
    def tensor_names(self) -> list[str]:
        return [t.name for t in self.reader.tensors]

    def tensor_types(self) -> dict[str, GGMLQuantizationType]:
        return {t.name: GGMLQuantizationType(t.tensor_type) for t in self.reader.tensors}


def open_gguf(path: str | Path) -> GGUFFile:
    """Open `path`, decoding every metadata field to plain Python values."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"GGUF file not found: {source}")
    try:
        reader = GGUFReader(source, "r")
    except (ValueError, OSError) as exc:
        raise ValueError(f"not a readable GGUF file: {source}: {exc}") from exc
    metadata = {
        name: field.contents()
        for name, field in reader.fields.items()
        if not name.startswith("GGUF.")
    }
    return GGUFFile(path=source, metadata=metadata, reader=reader)


def hf_name(gguf_name: str, architecture: str = "llama") -> str | None:
    """Map a llama.cpp tensor name to its HF name (None: not needed)."""
    if gguf_name in _IGNORED:
        return None
    stem, _, suffix = gguf_name.rpartition(".")
    if stem in _GLOBAL_NAMES:
        return f"{_GLOBAL_NAMES[stem]}.{suffix}"
    names = _GEMMA3_LAYER_NAMES if architecture == "gemma3" else _LAYER_NAMES
    match = _LAYER_RE.match(gguf_name)
    if match is None or match.group(2) not in names:
        raise ValueError(f"unexpected tensor {gguf_name!r} in a {architecture} GGUF file")
    layer, part, kind = match.groups()
    return f"model.layers.{layer}.{names[part]}.{kind}"


def unpermute_rope_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Invert llama.cpp's q/k row permutation (interleaved RoPE -> HF's rotate-half).

    The converter reshapes rows to (heads, 2, head_dim/2) and swaps the last two axes, so
    the inverse reshapes to (heads, head_dim/2, 2) and swaps them back.
    """
    rows = weight.shape[0]
    half = rows // n_heads // 2
    shaped = weight.reshape(n_heads, half, 2, *weight.shape[1:])
    return shaped.transpose(1, 2).reshape(weight.shape).contiguous()


def _tensor_shape(tensor: ReaderTensor) -> tuple[int, ...]:
    """GGUF lists dimensions fastest-first; torch wants them slowest-first."""
    return tuple(int(n) for n in reversed(tensor.shape.tolist()))


def iter_hf_tensors(
    gguf_file: GGUFFile,
    config: ModelConfig,
    *,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (HF name, dequantised tensor) pairs, one file tensor at a time."""
    tensors = gguf_file.reader.tensors
    bar = tqdm(
        tensors,
        desc=f"dequantising {gguf_file.path.name}",
        unit="tensor",
        file=sys.stderr,
        disable=not progress,
    )
    gemma = config.architecture == "gemma3"
    for tensor in bar:
        name = hf_name(tensor.name, config.architecture)
        if name is None:
            continue
        values = dequant.dequantize(np.asarray(tensor.data), tensor.tensor_type)
        out = torch.from_numpy(values.reshape(_tensor_shape(tensor)))
        if gemma:
            if name.endswith("norm.weight"):
                out = out - 1.0
        elif name.endswith("q_proj.weight") or name.endswith("q_proj.bias"):
            out = unpermute_rope_rows(out, config.num_attention_heads)
        elif name.endswith("k_proj.weight") or name.endswith("k_proj.bias"):
            out = unpermute_rope_rows(out, config.num_key_value_heads)
        yield name, out.to(dtype).contiguous()


def hf_state_dict(
    gguf_file: GGUFFile,
    config: ModelConfig,
    *,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Every weight of the model under HF names; checks nothing the config needs is missing."""
    weights = dict(iter_hf_tensors(gguf_file, config, dtype=dtype, progress=progress))
    missing = [n for n in expected_hf_names(config) if n not in weights]
    if missing:
        raise ValueError(f"{gguf_file.path.name} lacks tensors: {', '.join(missing[:5])}")
    return weights
