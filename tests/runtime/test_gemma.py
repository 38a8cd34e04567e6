"""Gemma 3 270M: our decoder against transformers on the same dequantised weights.

transformers dequantises the GGUF itself and its state dict is handed to our engine, so a
difference is in our model maths, paged attention (with its sliding window), batching or
chunked prefill, not in the loader; the loader is checked on its own against the same
state dict. One prompt is longer than the 512-token window and than the CPU engine's
512-token step budget, so its prefill is chunked and its local layers must forget. The
engine keeps those layers' KV in a pool of its own that hands blocks back as they leave
the window, which a longer context (more than two windows) checks against the engine
that keeps every position.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from chorusline.protocols import GenerationRequest, SamplingParams
from chorusline.runtime.attention import AttentionMetadata, build_group
from chorusline.runtime.block_manager import local_blocks_per_seq
from chorusline.runtime.config import FULL, SLIDING, ModelConfig
from chorusline.runtime.engine import Engine, EngineConfig
from chorusline.runtime.gemma import GemmaModel
from chorusline.runtime.gguf_weights import hf_state_dict, open_gguf
from chorusline.runtime.kv_cache import KVCache

pytestmark = pytest.mark.slow

NEW_TOKENS = 40
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    # ~700 tokens: past the sliding window and past one CPU step's token budget.
    " ".join(f"Item {i}: the {w} of the {v}." for i, (w, v) in enumerate(
        [("colour", "sky"), ("weight", "stone"), ("name", "river"), ("shape", "cloud")] * 18))
    + " In summary,",
]


@pytest.fixture(scope="module")
def reference(gemma_gguf_path: Path) -> Any:
    transformers = pytest.importorskip("transformers")
    directory, name = str(gemma_gguf_path.parent), gemma_gguf_path.name
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=name, dtype=torch.float32)
    model.eval()
    tok = transformers.AutoTokenizer.from_pretrained(directory, gguf_file=name)
    gguf = open_gguf(gemma_gguf_path)
    config = ModelConfig.from_gguf_metadata(gguf.metadata, tensor_names=gguf.tensor_names)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    prompts = [list(tok(p)["input_ids"]) for p in PROMPTS]
    return SimpleNamespace(model=model, config=config, weights=weights, prompts=prompts,
                           gguf=gguf)


def test_config_comes_from_the_metadata(reference: Any) -> None:
    cfg = reference.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads,
            cfg.num_key_value_heads, cfg.head_dim, cfg.vocab_size) == (18, 640, 4, 1, 256,
                                                                       262_144)
    assert cfg.sliding_window == 512 and cfg.tie_word_embeddings
    assert [i for i, kind in enumerate(cfg.layer_types) if kind == FULL] == [5, 11, 17]
    assert cfg.layer_types.count(SLIDING) == 15
    assert (cfg.rope_theta, cfg.rope_local_theta) == (1e6, 1e4)
    ref = reference.model.config
    assert list(cfg.layer_types) == list(ref.layer_types)
    assert cfg.sliding_window == ref.sliding_window
    assert cfg.attention_scale == ref.query_pre_attn_scalar ** -0.5


def test_loader_weights_equal_transformers(reference: Any) -> None:
    ours = hf_state_dict(reference.gguf, reference.config, progress=False)
    theirs = {k: v for k, v in reference.weights.items() if k != "lm_head.weight"}
    assert set(ours) == set(theirs)
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert different == []


def _hf_greedy(ref: Any, prompt: list[int]) -> list[int]:
    with torch.inference_mode():
        out = ref.model.generate(torch.tensor([prompt]), attention_mask=torch.ones(
            1, len(prompt), dtype=torch.long), max_new_tokens=NEW_TOKENS, do_sample=False)
    return [int(t) for t in out[0, len(prompt):]]


def test_greedy_matches_transformers(reference: Any) -> None:
    assert len(reference.prompts[2]) > 600
    source = SimpleNamespace(config=reference.config, weights=reference.weights,
                             tokenizer=SimpleNamespace(token_bytes=lambda t: b""))
    engine = Engine(source, EngineConfig(num_blocks=256, device="cpu", dtype=torch.float32,
                                         max_num_batched_tokens=256))
    ours = engine.generate({str(i): p for i, p in enumerate(reference.prompts)},
                           SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS))
    for i, prompt in enumerate(reference.prompts):
        theirs = _hf_greedy(reference, prompt)
        assert len(theirs) >= 32, "too short an answer to be a useful oracle"
        assert ours[str(i)] == theirs, i


def _paged_run(model: GemmaModel, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefill all but the last 8 tokens in one go, then decode those one at a time:
    the prefill's logits and the last decode step's."""
    block = 16
    cache = KVCache(model.config, -(-len(ids) // block) + 1, block, torch.float32,
                    torch.device("cpu"))
    table = list(range(-(-len(ids) // block)))
    window = model.config.sliding_window

    def run(start: int, tokens: list[int]) -> torch.Tensor:
        slots = torch.tensor([table[p // block] * block + p % block
                              for p in range(start, start + len(tokens))])
        group = build_group(0, [len(tokens)], [start], [table], block, cache.null_block,
                            torch.device("cpu"), window=window)
        meta = AttentionMetadata(slots, [group], model.scale)
        with torch.inference_mode():
            return model.forward(torch.tensor(tokens), torch.arange(start, start + len(tokens)),
                                 meta, cache, None)

    split = len(ids) - 8
    prefill = run(0, ids[:split])
    for pos in range(split, len(ids)):
        last = run(pos, [ids[pos]])[-1]
    return prefill, last


@pytest.mark.parametrize("prompt", [0, 2], ids=["short", "past-the-window"])
def test_logits_match_a_dense_forward(reference: Any, prompt: int) -> None:
    """Paged prefill then decode vs transformers' one dense forward: the last position
    within 1e-3, every prefill position within 1e-2 (a 700-token fp32 forward's noise)."""
    model = GemmaModel(reference.config, reference.weights, max_positions=2048)
    ids = reference.prompts[prompt] + _hf_greedy(reference, reference.prompts[prompt])[:8]
    prefill, last = _paged_run(model, ids)
    with torch.inference_mode():
        dense = reference.model(torch.tensor([ids])).logits[0].float()
    assert (prefill - dense[:len(prefill)]).abs().max().item() < 1e-2
    assert (last - dense[-1]).abs().max().item() < 1e-3


def test_the_window_is_what_makes_long_prompts_match(reference: Any) -> None:
    """The same model with every layer global is far off past position 512: the window
    mask is doing the work, not failing to matter."""
    config = dataclasses.replace(reference.config, layer_types=())
    model = GemmaModel(config, reference.weights, max_positions=2048)
    ids = reference.prompts[2]
    prefill, _ = _paged_run(model, ids)
    with torch.inference_mode():
        dense = reference.model(torch.tensor([ids])).logits[0].float()
    assert (prefill[600:] - dense[600:len(prefill)]).abs().max().item() > 1.0


def test_long_context_forgets_old_local_blocks(reference: Any) -> None:
    """About 1,400 tokens of context, prefilled 256 tokens a step: greedy tokens equal
    the engine's without the local pool, the local pool never holds more than one
    window and one step's slice, and the global pool keeps every position."""
    prompt = reference.prompts[2] + reference.prompts[2][1:]  # the second BOS dropped
    assert len(prompt) > 2 * reference.config.sliding_window + 256
    source = SimpleNamespace(config=reference.config, weights=reference.weights,
                             tokenizer=SimpleNamespace(token_bytes=lambda t: b""))
    config = EngineConfig(num_blocks=256, device="cpu", dtype=torch.float32,
                          max_num_batched_tokens=256)
    params = SamplingParams(temperature=0.0, max_tokens=24)
    shared = Engine(source, dataclasses.replace(config, local_kv_pool=False))
    expected = shared.generate({"long": prompt}, params)["long"]

    engine = Engine(source, config)
    assert engine.kv_cache.has_local_pool and engine.block_manager.block_size == 8
    bound = local_blocks_per_seq(512, 8, 256)
    engine.add_request(GenerationRequest("long", tuple(prompt), params))
    tokens: list[int] = []
    used: list[tuple[int, int]] = []  # (global, local) blocks in use after each step
    while engine.has_unfinished():
        tokens.extend(t for out in engine.step() for t in out.new_token_ids)
        pools = engine.kv_pools()
        used.append((pools["global"].used, pools["local"].used))
    assert tokens == expected
    assert len(tokens) == 24
    assert max(local for _, local in used) <= bound
    most = max(g for g, _ in used[:-1])  # the last step freed everything
    assert most == -(-(len(prompt) + 23) // 8) > 2 * bound
    assert used[-1] == (0, 0)
