"""Load a Hugging Face Llama checkpoint directory (`*.safetensors`) into a state dict.

HF names are already what the torch model expects, so this only selects the right files,
keeps the tensors the model uses, casts them, and checks nothing is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from chorusline.runtime.config import LlamaConfig

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


def expected_hf_names(config: LlamaConfig) -> list[str]:
    """The weight names `LlamaForCausalLM` needs for `config` (optional biases excluded)."""
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not config.tie_word_embeddings:
        names.append("lm_head.weight")
    for i in range(config.num_hidden_layers):
        names.extend(f"model.layers.{i}.{part}.weight" for part in HF_LAYER_PARTS)
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
    directory: Path, config: LlamaConfig, *, dtype: torch.dtype = torch.float32
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
