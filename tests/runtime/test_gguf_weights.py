"""GGUF -> HF state dict: names, the q/k row un-permutation, and agreement with transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chorusline.runtime.gguf_weights import hf_name, open_gguf, unpermute_rope_rows
from chorusline.runtime.loader import LoadedModel


def llamacpp_permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf's q/k row permutation, re-implemented independently."""
    rows = weight.shape[0]
    shaped = weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:])
    return shaped.swapaxes(1, 2).reshape(weight.shape)


@pytest.mark.parametrize(
    ("gguf_name", "expected"),
    [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
        ("blk.12.ffn_norm.weight", "model.layers.12.post_attention_layernorm.weight"),
        ("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight"),
        ("blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"),
        ("blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"),
        ("blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"),
        ("blk.29.ffn_gate.weight", "model.layers.29.mlp.gate_proj.weight"),
        ("blk.29.ffn_up.weight", "model.layers.29.mlp.up_proj.weight"),
        ("blk.29.ffn_down.weight", "model.layers.29.mlp.down_proj.weight"),
        ("rope_freqs.weight", None),
    ],
)
def test_hf_name(gguf_name: str, expected: str | None) -> None:
    assert hf_name(gguf_name) == expected


def test_unknown_tensor_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unexpected tensor"):
        hf_name("blk.0.ffn_gate_exps.weight")


@pytest.mark.parametrize(("heads", "head_dim", "cols"), [(9, 64, 576), (3, 64, 576), (4, 16, 1)])
def test_unpermute_inverts_llamacpp_permute(heads: int, head_dim: int, cols: int) -> None:
    shape = (heads * head_dim,) if cols == 1 else (heads * head_dim, cols)  # 1-D: a bias
    original: np.ndarray = np.arange(heads * head_dim * cols, dtype=np.float32).reshape(shape)
    permuted = torch.from_numpy(np.ascontiguousarray(llamacpp_permute(original, heads)))
    assert not torch.equal(permuted, torch.from_numpy(original))
    assert torch.equal(unpermute_rope_rows(permuted, heads), torch.from_numpy(original))


def test_open_gguf_decodes_metadata(tiny_gguf_path: Path) -> None:
    opened = open_gguf(tiny_gguf_path)
    assert opened.metadata["general.architecture"] == "llama"
    assert opened.metadata["llama.attention.head_count"] == 4
    assert isinstance(opened.metadata["tokenizer.ggml.tokens"], list)
    assert "output.weight" in opened.tensor_names


def test_open_gguf_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_gguf(tmp_path / "absent.gguf")


@pytest.mark.slow
def test_smollm_weights_equal_transformers(smollm: LoadedModel) -> None:
    """Every tensor equals what transformers' own GGUF loader produces, bit for bit."""
    from transformers import LlamaConfig as HFLlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    cfg = smollm.config
    hf_config = HFLlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        tie_word_embeddings=cfg.tie_word_embeddings,
    )
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(hf_config)
    parsed = load_gguf_checkpoint(  # type: ignore[no-untyped-call]
        str(smollm.source), return_tensors=True, model_to_load=skeleton
    )
    reference = parsed["tensors"]
    assert sorted(reference) == sorted(smollm.weights)
    for name, tensor in reference.items():
        assert torch.equal(smollm.weights[name], torch.as_tensor(tensor)), name
    hf = parsed["config"]
    assert hf["rope_theta"] == cfg.rope_theta
    assert hf["rms_norm_eps"] == cfg.rms_norm_eps
    assert hf["max_position_embeddings"] == cfg.max_position_embeddings
