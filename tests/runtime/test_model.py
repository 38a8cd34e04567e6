"""The torch model against transformers' Llama on small random models (fast, no files)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from chorusline.runtime.attention import AttentionMetadata, build_group
from chorusline.runtime.config import ModelConfig
from chorusline.runtime.kv_cache import KVCache
from chorusline.runtime.model import LlamaModel, rope_inv_freq

transformers = pytest.importorskip("transformers")

SCALINGS: list[dict[str, Any] | None] = [
    None,
    {"rope_type": "linear", "factor": 4.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 64},
]


def make_pair(scaling: dict[str, Any] | None, tied: bool) -> tuple[LlamaModel, Any]:
    torch.manual_seed(0)
    ours = ModelConfig(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                       num_attention_heads=6, num_key_value_heads=2, head_dim=8,
                       rms_norm_eps=1e-5, rope_theta=5000.0, max_position_embeddings=512,
                       tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2,
                       rope_scaling=scaling)
    rope = {"rope_type": "default", "rope_theta": 5000.0, **(scaling or {})}
    theirs = transformers.LlamaConfig(
        vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
        max_position_embeddings=512, tie_word_embeddings=tied, rope_parameters=rope)
    hf = transformers.LlamaForCausalLM(theirs).eval()
    with torch.no_grad():
        for p in hf.parameters():  # default init is too tame to expose mistakes
            p.normal_(0.0, 0.2)
    weights = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    return LlamaModel(ours, weights), hf


def prefill_logits(model: LlamaModel, ids: list[int]) -> torch.Tensor:
    cache = KVCache(model.config, 64, 8, torch.float32, torch.device("cpu"))
    table = list(range(-(-len(ids) // 8)))[::-1]  # non-contiguous, reversed blocks
    slots = torch.tensor([table[p // 8] * 8 + p % 8 for p in range(len(ids))])
    group = build_group(0, [len(ids)], [0], [table], 8, cache.null_block, torch.device("cpu"))
    with torch.inference_mode():
        return model.forward(torch.tensor(ids), torch.arange(len(ids)),
                             AttentionMetadata(slots, [group], model.scale), cache, None)


@pytest.mark.parametrize("scaling", SCALINGS, ids=["default", "linear", "llama3"])
@pytest.mark.parametrize("tied", [False, True])
def test_logits_match_transformers(scaling: dict[str, Any] | None, tied: bool) -> None:
    model, hf = make_pair(scaling, tied)
    ids = torch.randint(0, 97, (150,), generator=torch.Generator().manual_seed(1)).tolist()
    ours = prefill_logits(model, ids)
    with torch.inference_mode():
        theirs = hf(torch.tensor([ids])).logits[0]
    assert (ours - theirs).abs().max().item() < 1e-4


def test_rope_scaling_changes_frequencies_as_specified() -> None:
    model, _ = make_pair(None, False)
    base = rope_inv_freq(model.config)
    linear, _ = make_pair(SCALINGS[1], False)
    torch.testing.assert_close(rope_inv_freq(linear.config), base / 4.0)
    llama3, _ = make_pair(SCALINGS[2], False)
    scaled = rope_inv_freq(llama3.config)
    assert scaled[0] == base[0]  # the fastest rotation is kept
    assert scaled[-1] == pytest.approx(base[-1].item() / 8.0)  # the slowest is stretched
    bad = ModelConfig(**{**model.config.__dict__, "rope_scaling": {"rope_type": "yarn"}})
    with pytest.raises(ValueError, match="unsupported rope scaling"):
        rope_inv_freq(bad)


def test_sample_rows_select_logits() -> None:
    model, _ = make_pair(None, True)
    ids = [3, 5, 7, 11, 13]
    full = prefill_logits(model, ids)
    cache = KVCache(model.config, 8, 8, torch.float32, torch.device("cpu"))
    group = build_group(0, [5], [0], [[0]], 8, cache.null_block, torch.device("cpu"))
    with torch.inference_mode():
        picked = model.forward(torch.tensor(ids), torch.arange(5),
                               AttentionMetadata(torch.arange(5), [group], model.scale),
                               cache, torch.tensor([4, 1]))
    torch.testing.assert_close(picked, full[[4, 1]])


@pytest.mark.parametrize("length", [1, 2, 40, 128, 129, 300])
def test_transposed_gemm_route_gives_the_same_logits(length: int) -> None:
    """The ``W @ x^T`` route (CPU fp32 default inside ``TRANSPOSED_ROWS``) is only a faster
    order of the same product: logits agree with the plain route at every row count."""
    model, hf = make_pair(None, False)
    weights = {k: v.detach().clone() for k, v in hf.state_dict().items()}
    plain = LlamaModel(model.config, weights, transposed_gemm=False)
    assert model.transposed_gemm and not plain.transposed_gemm
    ids = torch.randint(0, 97, (length,), generator=torch.Generator().manual_seed(2)).tolist()
    torch.testing.assert_close(prefill_logits(model, ids), prefill_logits(plain, ids),
                               rtol=1e-5, atol=1e-5)
