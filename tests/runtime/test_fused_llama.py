"""The fp32 CPU step through chorusline's kernels decodes what the torch path decodes."""

from __future__ import annotations

import pytest
import torch

from chorusline.protocols import SamplingParams
from chorusline.runtime import Engine, EngineConfig, LoadedModel
from chorusline.runtime.grid_kernels import load_kernels

pytestmark = pytest.mark.skipif(not load_kernels(), reason="no C++ compiler here")

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time",
           "Summarise the history of Rome. " * 80]  # in chunks, and past Gemma's window


def greedy(model: LoadedModel, **config: object) -> dict[str, list[int]]:
    engine = Engine(model, EngineConfig(device="cpu", dtype=torch.float32, num_blocks=512,
                                        max_num_batched_tokens=128, seed=0,
                                        **config))  # type: ignore[arg-type]
    prompts = {f"r{i}": model.tokenizer.encode(p) for i, p in enumerate(PROMPTS)}
    return engine.generate(prompts, SamplingParams(temperature=0, max_tokens=40,
                                                   ignore_eos=True))


def test_packed_and_fused_smollm2_decodes_like_the_torch_path(smollm: LoadedModel) -> None:
    reference = greedy(smollm, packed_weights=False, fused_kernels=False)
    assert greedy(smollm, packed_weights=True, fused_kernels=True) == reference
    assert greedy(smollm, packed_weights=True, fused_kernels=False) == reference


def test_the_kernels_are_the_fp32_default(smollm: LoadedModel) -> None:
    engine = Engine(smollm, EngineConfig(device="cpu", dtype=torch.float32, num_blocks=8))
    assert engine.model.fused  # type: ignore[attr-defined]
    assert engine.model.packed_head is not None  # type: ignore[attr-defined]


def test_fused_decode_attention_keeps_gemmas_window(gemma_model: LoadedModel) -> None:
    """Gemma's local layers read their own pool through the trimmed view; the kernel
    takes the same view and mask, so greedy decoding past the window agrees."""
    fused = greedy(gemma_model, fused_kernels=True)
    assert fused == greedy(gemma_model, fused_kernels=False, packed_weights=False)


def test_fused_kernels_are_refused_where_they_cannot_run(smollm: LoadedModel) -> None:
    with pytest.raises(ValueError, match="fused kernels"):
        Engine(smollm, EngineConfig(device="cpu", dtype=torch.bfloat16, fused_kernels=True,
                                    num_blocks=8))
