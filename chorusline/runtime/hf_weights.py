"""Load a Hugging Face Llama or Gemma 3 checkpoint directory (`*.safetensors`) into a state dict.

HF names are already what the torch model expects, so this only selects the right files,
keeps the tensors the model uses, casts them, and checks nothing is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from chorusline.runtime.config import ModelConfig

HF_LAYER_PARTS = (
    "input_layernorm",
    "post_attention_layernorm",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)

#: What a Gemma 3 layer has besides: query/key norms and norms around the MLP.
GEMMA3_LAYER_PARTS = (
    "self_attn.q_norm",
    "self_attn.k_norm",
    "pre_feedforward_layernorm",
    "post_feedforward_layernorm",
)


def expected_hf_names(config: ModelConfig) -> list[str]:
    """The weight names HF's model for `config` needs (optional biases excluded)."""
    parts = HF_LAYER_PARTS + (GEMMA3_LAYER_PARTS if config.architecture == "gemma3" else ())
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not config.tie_word_embeddings:
        names.append("lm_head.weight")
    for i in range(config.num_hidden_layers):
        names.extend(f"model.layers.{i}.{part}.weight" for part in parts)
    return names


def safetensors_files(directory: Path) -> list[Path]:
    """The shards named by the index file, or every `*.safetensors` in the directory."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [directory / name for name in sorted(set(weight_map.values()))]
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {directory}")
    return files


def load_safetensors_dir(
    directory: Path, config: ModelConfig, *, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    weights: dict[str, torch.Tensor] = {}
    for file in safetensors_files(directory):
        for name, tensor in load_file(str(file)).items():
            if not name.startswith(("model.", "lm_head.")) or name.endswith("rotary_emb.inv_freq"):
                continue
            weights[name] = tensor.to(dtype).contiguous()
    if config.tie_word_embeddings:
        weights.pop("lm_head.weight", None)
    missing = [n for n in expected_hf_names(config) if n not in weights]
    if missing:
        raise ValueError(f"{directory} lacks tensors: {', '.join(missing[:5])}")
    return weights
