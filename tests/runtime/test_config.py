"""ModelConfig: both constructors read the file's values and reject what we can't run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chorusline.runtime.config import ModelConfig
from chorusline.runtime.gguf_weights import open_gguf
from chorusline.runtime.loader import LoadedModel


def gguf_metadata(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "general.architecture": "llama",
        "llama.block_count": 4,
        "llama.context_length": 4096,
        "llama.embedding_length": 256,
        "llama.feed_forward_length": 688,
        "llama.attention.head_count": 8,
        "llama.attention.head_count_kv": 2,
        "llama.attention.layer_norm_rms_epsilon": 1e-6,
        "llama.rope.freq_base": 500000.0,
        "tokenizer.ggml.tokens": ["a"] * 1000,
        "tokenizer.ggml.bos_token_id": 7,
        "tokenizer.ggml.eos_token_id": 9,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_gguf_values_are_read_not_assumed() -> None:
    config = ModelConfig.from_gguf_metadata(gguf_metadata(), tensor_names=["output.weight"])
    assert config.num_hidden_layers == 4
    assert config.hidden_size == 256
    assert config.intermediate_size == 688
    assert (config.num_attention_heads, config.num_key_value_heads) == (8, 2)
    assert config.num_key_value_groups == 4
    assert config.head_dim == 32
    assert config.rms_norm_eps == 1e-6
    assert config.rope_theta == 500000.0
    assert config.max_position_embeddings == 4096
    assert config.vocab_size == 1000  # from the token list when vocab_size is absent
    assert (config.bos_token_id, config.eos_token_id, config.eos_token_ids) == (7, 9, (9,))
    assert config.tie_word_embeddings is False
    assert config.rope_scaling is None


def test_gguf_tied_when_no_output_tensor() -> None:
    names = ["token_embd.weight", "output_norm.weight"]
    assert ModelConfig.from_gguf_metadata(gguf_metadata(), tensor_names=names).tie_word_embeddings


def test_gguf_optional_keys() -> None:
    config = ModelConfig.from_gguf_metadata(
        gguf_metadata(
            **{
                "llama.attention.head_count_kv": None,
                "llama.attention.key_length": 64,
                "llama.vocab_size": 1234,
                "tokenizer.ggml.eot_token_id": 11,
                "llama.rope.scaling.type": "linear",
                "llama.rope.scaling.factor": 4.0,
                "llama.rope.scaling.original_context_length": 2048,
            }
        )
    )
    assert config.num_key_value_heads == config.num_attention_heads == 8
    assert config.head_dim == 64
    assert config.vocab_size == 1234
    assert config.eos_token_ids == (9, 11)
    assert config.rope_scaling == {
        "rope_type": "linear",
        "factor": 4.0,
        "original_max_position_embeddings": 2048,
    }


def test_gguf_rejects_other_architectures_and_missing_keys() -> None:
    with pytest.raises(ValueError, match="unsupported GGUF architecture 'gpt2'"):
        ModelConfig.from_gguf_metadata(gguf_metadata(**{"general.architecture": "gpt2"}))
    with pytest.raises(ValueError, match=r"llama\.block_count"):
        ModelConfig.from_gguf_metadata(gguf_metadata(**{"llama.block_count": None}))


def hf_config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 128256,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 32.0},
        "max_position_embeddings": 131072,
        "tie_word_embeddings": True,
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
    }
    base.update(overrides)
    return base


def test_hf_config() -> None:
    config = ModelConfig.from_hf_config(hf_config())
    assert config.head_dim == 64  # hidden / heads when head_dim is absent
    assert config.eos_token_ids == (128001, 128008, 128009)
    assert config.eos_token_id == 128001
    assert config.rope_scaling == {"rope_type": "llama3", "factor": 32.0}
    assert config.tie_word_embeddings
    single = ModelConfig.from_hf_config(hf_config(eos_token_id=2, head_dim=128))
    assert (single.eos_token_ids, single.head_dim) == ((2,), 128)


def test_hf_config_rejects_other_models() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        ModelConfig.from_hf_config(hf_config(model_type="mistral", architectures=["Mistral"]))


def test_config_is_frozen() -> None:
    config = ModelConfig.from_hf_config(hf_config())
    with pytest.raises(AttributeError):
        config.hidden_size = 1  # type: ignore[misc]


def test_tiny_gguf_config(tiny_gguf_path: Path) -> None:
    opened = open_gguf(tiny_gguf_path)
    config = ModelConfig.from_gguf_metadata(opened.metadata, tensor_names=opened.tensor_names)
    assert (config.hidden_size, config.num_hidden_layers, config.head_dim) == (64, 2, 16)
    assert not config.tie_word_embeddings


def test_smollm_config(smollm: LoadedModel) -> None:
    config = smollm.config
    assert config.rope_theta == 100000.0  # not Llama's usual 10000: must come from the file
    assert config.max_position_embeddings == 8192
    assert config.head_dim == 64
    assert config.intermediate_size == 1536
    assert (config.bos_token_id, config.eos_token_id) == (1, 2)
    assert config.rms_norm_eps == pytest.approx(1e-5)
