"""What each fast CPU path costs in quality: perplexity on held-out text, greedy agreement.

    PYTHONPATH=. .venv/bin/python benchmarks/quality.py [--paths ...] [--chunks N]
        [--llama-perplexity PATH] [--json PATH]

The text is ``benchmarks/quality/heldout.txt`` (~20k tokens of original prose, dialogue
and code, written for this project so no model was trained on it). It is cut into
512-token chunks; each chunk's first 256 tokens are prefilled and the last 256 are fed one
token a step, teacher-forced, so the scored tokens go through the *decode* path, where the
packed weights and fused kernels run (4 chunks share a step: within both packed paths'
row limits, torch's int4 kernel's 4 and the grid kernels' 8). Perplexity is
``exp(mean NLL)`` over the scored tokens, the protocol of llama.cpp's
``llama-perplexity -c 512``, which ``--llama-perplexity`` runs on the same text and GGUF
for reference (its tokeniser and BOS handling are its own).

Paths: ``reference`` (fp32 through torch alone: the dequantised weights, exact against
transformers), ``default`` (fp32 with packed grid weights and fused kernels), ``bf16``
(torch) and ``bf16-int4`` (bf16 with torch's int4 kernel). The target: every path within
1% of the reference's perplexity. Greedy agreement: the oracle test's three chat prompts,
64 tokens each, the number of leading tokens each path shares with the reference.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import write_report  # noqa: E402
from chorusline.protocols import SamplingParams  # noqa: E402
from chorusline.runtime import (  # noqa: E402
    AttentionMetadata,
    Engine,
    EngineConfig,
    KVCache,
    LoadedModel,
    build_group,
    load_model,
)

TEXT = Path(__file__).resolve().parent / "quality" / "heldout.txt"
CHUNK, PREFIX, BATCH, BLOCK = 512, 256, 4, 8
PATHS: dict[str, dict[str, Any]] = {
    "reference": {"dtype": torch.float32, "packed_weights": False, "fused_kernels": False},
    "default": {"dtype": torch.float32},
    "bf16": {"dtype": torch.bfloat16, "packed_weights": False},
    "bf16-int4": {"dtype": torch.bfloat16, "packed_weights": True},
}
#: The oracle test's prompts (tests/runtime/test_oracle.py).
PROMPTS = ["Write a short story about a lighthouse keeper who finds a message in a bottle.",
           "Explain in detail how photosynthesis works.",
           "List ten tips for learning to play the guitar."]


def chunks(model: LoadedModel, limit: int | None) -> list[list[int]]:
    ids = model.tokenizer.encode(TEXT.read_text())
    found = [ids[i:i + CHUNK] for i in range(0, len(ids) - CHUNK + 1, CHUNK)]
    return found[:limit] if limit else found


def nll(engine: Engine, batch: list[list[int]]) -> list[float]:
    """Negative log-likelihoods of tokens PREFIX+1..CHUNK-1 of each chunk, decoded one
    token a step over a paged cache shared by the batch."""
    model = engine.model
    blocks = CHUNK // BLOCK
    cache = KVCache(model.config, blocks * len(batch), BLOCK, model.dtype, model.device)
    tables = [list(range(i * blocks, (i + 1) * blocks)) for i in range(len(batch))]

    def step(start: int, length: int) -> torch.Tensor:
        ids = [t for c in batch for t in c[start:start + length]]
        slots = [tables[i][p // BLOCK] * BLOCK + p % BLOCK for i in range(len(batch))
                 for p in range(start, start + length)]
        group = build_group(0, [length] * len(batch), [start] * len(batch), tables, BLOCK,
                            cache.null_block, model.device)
        meta = AttentionMetadata(torch.tensor(slots), [group], model.scale)
        positions = torch.arange(start, start + length).repeat(len(batch))
        rows = torch.arange(len(batch)) * length + (length - 1)
        return model.forward(torch.tensor(ids), positions, meta, cache, rows)

    out: list[float] = []
    with torch.inference_mode():
        logits = step(0, PREFIX)
        for pos in range(PREFIX, CHUNK):
            logp = torch.log_softmax(logits.float(), -1)
            out += [-float(logp[i, c[pos]]) for i, c in enumerate(batch)]
            if pos + 1 < CHUNK:
                logits = step(pos, 1)
    return out


def perplexity(engine: Engine, data: list[list[int]]) -> float:
    losses: list[float] = []
    for i in range(0, len(data), BATCH):
        losses += nll(engine, data[i:i + BATCH])
    return math.exp(sum(losses) / len(losses))


def greedy(engine: Engine, model: LoadedModel) -> list[list[int]]:
    assert model.chat_template is not None
    prompts = {str(i): model.tokenizer.encode(model.chat_template.render(
        [{"role": "user", "content": p}], add_generation_prompt=True), allow_special=True)
        for i, p in enumerate(PROMPTS)}
    out = engine.generate(prompts, SamplingParams(temperature=0, max_tokens=64))
    return [out[str(i)] for i in range(len(PROMPTS))]


def shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def llama_perplexity(binary: Path, gguf: Path, threads: int) -> float | None:
    result = subprocess.run([str(binary), "-m", str(gguf), "-f", str(TEXT), "-c", str(CHUNK),
                             "-t", str(threads), "-b", str(CHUNK)], capture_output=True,
                            text=True, timeout=3600)
    found = re.findall(r"Final estimate: PPL = ([0-9.]+)", result.stdout + result.stderr)
    return float(found[-1]) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--chunks", type=int, help="only the first N chunks")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--llama-perplexity", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(progress=False)
    data = chunks(model, args.chunks)
    print(f"{len(data)} chunks of {CHUNK} tokens, {len(data) * (CHUNK - PREFIX)} scored")
    rows: dict[str, dict[str, Any]] = {}
    answers: dict[str, list[list[int]]] = {}
    for name in args.paths.split(","):
        engine = Engine(model, EngineConfig(device="cpu", num_blocks=512, seed=0,
                                            **PATHS[name]))
        start = time.perf_counter()
        ppl = perplexity(engine, data)
        answers[name] = greedy(engine, model)
        rows[name] = {"perplexity": ppl, "seconds": time.perf_counter() - start}
        print(f"  {name}: perplexity {ppl:.4f} ({rows[name]['seconds']:.0f} s)", flush=True)
        del engine
    reference = rows.get("reference")
    print(f"\n{'path':<12} {'perplexity':>10} {'vs reference':>13} {'greedy agreement':>18}")
    for name, row in rows.items():
        ratio = row["perplexity"] / reference["perplexity"] - 1 if reference else math.nan
        agree = [shared_prefix(a, r) for a, r in zip(answers[name], answers["reference"],
                                                    strict=True)] \
            if "reference" in answers else []
        row.update(delta=ratio, agreement=agree)
        print(f"{name:<12} {row['perplexity']:>10.4f} {ratio:>+12.2%} "
              f"{'/'.join(map(str, agree)):>12} of 64")
    theirs = None
    if args.llama_perplexity:
        from chorusline.runtime import default_model_path

        theirs = llama_perplexity(args.llama_perplexity, default_model_path(), args.threads)
        print(f"llama.cpp llama-perplexity -c {CHUNK} on the same text: {theirs}")
    write_report(args.json, paths=rows, llama_cpp_perplexity=theirs, chunks=len(data))
    ok = all(abs(r["delta"]) <= 0.01 for r in rows.values() if not math.isnan(r["delta"]))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
