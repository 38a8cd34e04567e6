"""Loader: both file layouts give identical HF-named weights; bad paths fail clearly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from chorusline.runtime.config import ModelConfig
from chorusline.runtime.hf_weights import expected_hf_names
from chorusline.runtime.loader import LoadedModel, load_model


def _assert_same(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(weights) == sorted(expected)
    for name, tensor in expected.items():
        assert weights[name].shape == tensor.shape, name
        assert torch.equal(weights[name], tensor), name


def test_tiny_gguf_matches_hf_layout(
    tiny_gguf_path: Path, tiny_hf_weights: dict[str, torch.Tensor], tmp_cache_dir: Path
) -> None:
    loaded = load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=False)
    assert loaded.source == tiny_gguf_path
    assert not loaded.from_cache
    assert loaded.config.tie_word_embeddings is False
    assert loaded.config.num_key_value_heads == 2
    _assert_same(loaded.weights, tiny_hf_weights)


def test_tiny_hf_dir_matches(tiny_hf_dir: Path, tiny_hf_weights: dict[str, torch.Tensor]) -> None:
    loaded = load_model(tiny_hf_dir, progress=False)
    _assert_same(loaded.weights, tiny_hf_weights)
    # Vocab: 3 specials, bytes at 3 + byte value, merges from 259 ("Ġt", "he", "Ġthe", ...).
    assert loaded.tokenizer.encode(" the") == [261]
    assert loaded.tokenizer.encode("the") == [3 + ord("t"), 260]
    assert loaded.tokenizer.eos_token_id == loaded.config.eos_token_id == 2


def test_gguf_and_hf_dir_agree(
    tiny_gguf_path: Path, tiny_hf_dir: Path, tmp_cache_dir: Path
) -> None:
    from_gguf = load_model(tiny_gguf_path, cache_dir=tmp_cache_dir, progress=False)
    from_dir = load_model(tiny_hf_dir)
    # GGUF stores epsilon as float32, so only that field may differ (by float32 rounding).
    assert from_gguf.config.rms_norm_eps == pytest.approx(from_dir.config.rms_norm_eps)
    assert replace(from_gguf.config, rms_norm_eps=0.0) == replace(from_dir.config, rms_norm_eps=0.0)
    _assert_same(from_gguf.weights, from_dir.weights)
    text = "the rain in 2024 is at the station!\n\tok"
    assert from_gguf.tokenizer.encode(text) == from_dir.tokenizer.encode(text)
    chat = [{"role": "user", "content": "hi"}]
    assert from_gguf.chat_template.render(chat) == from_dir.chat_template.render(chat)


def test_dtype_is_applied(tiny_gguf_path: Path, tmp_cache_dir: Path) -> None:
    loaded = load_model(tiny_gguf_path, dtype=torch.bfloat16, cache_dir=tmp_cache_dir)
    assert {t.dtype for t in loaded.weights.values()} == {torch.bfloat16}


@pytest.mark.slow
def test_hf_dir_against_transformers(tiny_hf_dir: Path) -> None:
    """transformers reads the directory into the same tensors and config."""
    from transformers import LlamaForCausalLM

    reference = LlamaForCausalLM.from_pretrained(str(tiny_hf_dir), dtype=torch.float32)
    loaded = load_model(tiny_hf_dir)
    _assert_same(loaded.weights, dict(reference.state_dict()))
    assert loaded.config.head_dim == reference.config.head_dim
    assert loaded.config.rms_norm_eps == reference.config.rms_norm_eps


def test_missing_path() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("/nonexistent/model.gguf")


def test_unsupported_file(tmp_path: Path) -> None:
    bogus = tmp_path / "weights.bin"
    bogus.write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="unsupported model path"):
        load_model(bogus)


def test_not_a_gguf(tmp_path: Path, tmp_cache_dir: Path) -> None:
    bogus = tmp_path / "fake.gguf"
    bogus.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(ValueError, match="GGUF"):
        load_model(bogus, cache_dir=tmp_cache_dir)


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_model(tmp_path)


def test_unsupported_hf_architecture(tiny_hf_dir: Path, tmp_path: Path) -> None:
    config = json.loads((tiny_hf_dir / "config.json").read_text())
    config.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unsupported"):
        load_model(tmp_path)


def test_smollm_bundled_default(smollm: LoadedModel) -> None:
    config = smollm.config
    assert (config.num_hidden_layers, config.hidden_size) == (30, 576)
    assert (config.num_attention_heads, config.num_key_value_heads) == (9, 3)
    assert config.vocab_size == smollm.tokenizer.vocab_size == 49152
    assert config.tie_word_embeddings
    assert "lm_head.weight" not in smollm.weights
    assert sorted(smollm.weights) == sorted(expected_hf_names(config))
    assert smollm.weights["model.embed_tokens.weight"].shape == (49152, 576)
    assert smollm.weights["model.layers.0.self_attn.k_proj.weight"].shape == (192, 576)
    assert isinstance(smollm.config, ModelConfig)
    assert smollm.source.name.endswith(".gguf")
