"""Engine throughput on the bundled models (SmolLM2-135M, Gemma 3 270M), one table.

    .venv/bin/python benchmarks/engine.py [--models smollm2,gemma] [--threads N]
                                          [--batches 1,8,32,64] [--dtypes default,fp32]
                                          [--no-hf] [--repeats 3]

Each model's rows carry its name. Gemma is a base model: its prompts are plain text
after ``<bos>`` (~40 tokens, as SmolLM2's chat prompts), and transformers' ``generate``
is run for SmolLM2 only.

Rows: model load (cold: dequantise into an empty cache dir; cached: second load), single
stream decode tok/s (time between first and last token, so prefill is excluded), aggregate
output tok/s for B concurrent requests (~40-token prompts, 64 new tokens each, wall time
from submission to the last token, prefill included), and transformers' ``generate`` on
the same weights (64 new tokens, greedy, wall time), in fp32 (the dequantised weights as
loaded) and in bf16, so that the comparison can be made against its faster setting.
``default`` is whatever ``EngineConfig`` picks on this machine (dtype, packed weights and
fused kernels); ``fp32-torch`` is fp32 through torch alone, the path before them. The
targets compare the default against transformers' *faster* dtype. Every throughput is the
median of ``--repeats`` runs, printed with the range: on the shared VM the same command
moved by up to a quarter between runs minutes apart. Report ``uptime`` with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import TOPICS
from chorusline.protocols import GenerationRequest, SamplingParams
from chorusline.runtime import (
    Engine,
    EngineConfig,
    LoadedModel,
    gemma_model_path,
    load_model,
    prompt_prefix,
)

REPEATS = 3


def median_of(measure: Callable[[], float]) -> str:
    """``measure()`` run REPEATS times: the median tok/s and the range."""
    values = sorted(measure() for _ in range(REPEATS))
    if len(values) == 1:
        return f"{values[0]:.1f} tok/s"
    return f"{statistics.median(values):.1f} tok/s  ({values[0]:.1f}-{values[-1]:.1f})"


NEW_TOKENS = 64
#: ``--dtypes`` names -> EngineConfig settings. ``fp32-torch`` is fp32 without
#: chorusline's CPU kernels (no packed grid weights, no fused step): the path before them.
DTYPES: dict[str, dict[str, Any]] = {
    "default": {},
    "fp32": {"dtype": torch.float32},
    "fp32-torch": {"dtype": torch.float32, "packed_weights": False, "fused_kernels": False},
    "bf16": {"dtype": torch.bfloat16},
}


def prompts(model: LoadedModel, count: int) -> list[list[int]]:
    """Distinct ~40-token prompts (no system prompt: they would share a prefix): chat
    prompts for a chat model, the same text after ``<bos>`` for a base model."""
    out = []
    for i in range(count):
        text = (f"Question {i}: write a few plain sentences about {TOPICS[i % len(TOPICS)]} "
                f"for a child who is {5 + i % 7} years old. Keep it short, simple and kind.")
        if model.chat_template is None:
            out.append([*prompt_prefix(model.tokenizer), *model.tokenizer.encode(text)])
            continue
        rendered = f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
        out.append(model.tokenizer.encode(rendered, allow_special=True))
    return out


def single_stream(engine: Engine, prompt: list[int]) -> float:
    params = SamplingParams(temperature=0.0, max_tokens=128, ignore_eos=True)
    engine.add_request(GenerationRequest("single", tuple(prompt), params))
    stamps = []
    while engine.has_unfinished():
        if engine.step():
            stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def aggregate(engine: Engine, batch: list[list[int]]) -> float:
    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)
    start = time.perf_counter()
    got = engine.generate({f"r{i}": p for i, p in enumerate(batch)}, params)
    elapsed = time.perf_counter() - start
    assert all(len(v) == NEW_TOKENS for v in got.values())
    return len(batch) * NEW_TOKENS / elapsed


def transformers_generate(model: LoadedModel, prompt: list[int], dtype: torch.dtype) -> float:
    import transformers

    c = model.config
    hf_config = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads, num_key_value_heads=c.num_key_value_heads,
        head_dim=c.head_dim, rms_norm_eps=c.rms_norm_eps,
        max_position_embeddings=c.max_position_embeddings,
        tie_word_embeddings=c.tie_word_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta})
    hf: Any = transformers.LlamaForCausalLM(hf_config)
    hf.train(False)
    hf.load_state_dict(model.weights, strict=False)
    hf.to(dtype)
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        hf.generate(ids, max_new_tokens=4, do_sample=False)
        start = time.perf_counter()
        out = hf.generate(ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                          do_sample=False)
        elapsed = time.perf_counter() - start
    return float(out.shape[1] - len(prompt)) / elapsed


def head_share(model: LoadedModel) -> str:
    """How much of one single-sequence decode step is the output projection (a
    [1, hidden] x [hidden, vocab] matmul): Gemma's 262,144-token vocabulary makes it the
    largest matmul of the step. Timed as the default CPU engine runs it (its packed copy
    where it has one), median of 20."""
    engine = Engine(model, EngineConfig(device="cpu", dtype=torch.float32,
                                        enable_prefix_caching=False))
    prompt = prompts(model, 1)[0]
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    engine.add_request(GenerationRequest("head", tuple(prompt), params))
    engine.step()  # prefill
    steps = []
    while engine.has_unfinished():
        start = time.perf_counter()
        engine.step()
        steps.append(time.perf_counter() - start)
    lm_head = engine.model.lm_head  # type: ignore[attr-defined]
    packed = getattr(engine.model, "packed_head", None)
    x = torch.randn(1, lm_head.shape[1])
    heads = []
    with torch.inference_mode():
        for _ in range(20):
            start = time.perf_counter()
            if packed is not None:
                packed.matmul(x)
            else:
                torch.nn.functional.linear(x, lm_head)
            heads.append(time.perf_counter() - start)
    step, head = statistics.median(steps), statistics.median(heads)
    return f"{head * 1e3:.1f} of {step * 1e3:.1f} ms ({head / step:.0%})"


#: ``--models`` names -> the bundled file (None: SmolLM2, ``load_model``'s default).
MODELS: dict[str, Callable[[], Path | None]] = {"smollm2": lambda: None,
                                                "gemma": gemma_model_path}


def measure_model(name: str, args: argparse.Namespace, rows: list[tuple[str, str]]) -> None:
    path = MODELS[name]()
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        load_model(path, cache_dir=Path(cache), progress=False)
        rows.append((f"{name} load, cold (dequantise)", f"{time.perf_counter() - start:.2f} s"))
        start = time.perf_counter()
        model = load_model(path, cache_dir=Path(cache), progress=False)
        rows.append((f"{name} load, cached", f"{time.perf_counter() - start:.2f} s"))

    batches = [int(b) for b in args.batches.split(",")]
    batch_prompts = prompts(model, max(batches))
    rows.append((f"{name} prompt tokens (mean)",
                 f"{sum(map(len, batch_prompts)) / len(batch_prompts):.1f}"))
    for dtype_name in args.dtypes.split(","):
        config = EngineConfig(device="cpu", max_num_seqs=max(64, *batches),
                              max_num_batched_tokens=4096, enable_prefix_caching=False,
                              **DTYPES[dtype_name])
        engine = Engine(model, config)
        engine.generate({"warm": batch_prompts[0]}, SamplingParams(temperature=0, max_tokens=4))
        stream = median_of(partial(single_stream, engine, batch_prompts[0]))
        label = f"{name} {dtype_name}: {str(engine.dtype).removeprefix('torch.')}"
        if any(getattr(layer, "packed_qkv", None) is not None
               for layer in getattr(engine.model, "layers", [])):
            label += " + packed"
        if getattr(engine.model, "fused", False):
            label += " + fused"
        rows.append((f"[{label}] single-stream decode", stream))
        for b in batches:
            rows.append((f"[{label}] aggregate output, batch {b}",
                         median_of(partial(aggregate, engine, batch_prompts[:b]))))
        del engine
    rows.append((f"{name} LM head share of a batch-1 decode step", head_share(model)))
    if not args.no_hf and model.config.architecture == "llama":
        for hf_label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            rate = median_of(partial(transformers_generate, model, batch_prompts[0], dtype))
            rows.append((f"{name} transformers generate {hf_label}, single stream", rate))


def main() -> None:
    global REPEATS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="smollm2,gemma")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--dtypes", default="default,fp32")
    parser.add_argument("--no-hf", action="store_true")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    REPEATS = max(1, args.repeats)
    torch.set_num_threads(args.threads)
    rows: list[tuple[str, str]] = [("torch threads", str(args.threads)),
                                   ("load average (1 min)", f"{os.getloadavg()[0]:.2f}")]
    for name in args.models.split(","):
        measure_model(name, args, rows)
    rows.append(("load average (1 min, end)", f"{os.getloadavg()[0]:.2f}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
