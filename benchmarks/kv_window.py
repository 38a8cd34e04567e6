"""KV memory and decode time of Gemma 3 270M with and without the local (sliding-window) pool.

    .venv/bin/python benchmarks/kv_window.py [--threads N] [--repeats 7] [--no-timing]

"before" keeps every layer's KV for every position in one pool (``local_kv_pool=False``,
the layout before the local pool); "after" gives the 15 sliding-window layers a pool of
their own that hands blocks back once they leave the 512-token window. fp32 KV,
8-token blocks (the CPU default), 512-token steps (the CPU default budget).

Memory: what one sequence holds when it decodes at a context of T tokens, measured by
driving the real scheduler and block manager (pure Python, no model) through its chunked
prefill and one decode step; "peak" is the most it held in any step (the prefill chunks
need their own window too). Then how many 8192-token sequences fit in a 512 MiB budget:
before, one pool of blocks; after, the engine's budget split (``kv_cache.split_budget``)
at the default 64 seats and at the most seats whose split still holds that many.

Time: one decode step (``ModelRunner.execute``: metadata, forward pass, LM head) at batch
8 with 4096-token contexts on the real weights, before and after, the median of
``--repeats`` runs taken alternately after a warm-up. The KV is zeros: a step's cost does
not depend on its values, and prefilling 32k positions would take minutes on a small CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass

import torch

from chorusline.runtime import (
    BlockManager,
    Engine,
    EngineConfig,
    ModelConfig,
    ScheduledSlice,
    Scheduler,
    SchedulerConfig,
    SchedulerOutput,
    SequenceGroup,
    TokenSequence,
    blocks_for_budget,
    bytes_per_block,
    gemma_model_path,
    load_model,
    local_blocks_needed,
    local_blocks_per_seq,
    open_gguf,
    pool_bytes_per_block,
    split_budget,
)

BLOCK = 8
STEP_TOKENS = 512
DTYPE = torch.float32
CONTEXTS = (512, 2048, 8192, 32768)
BUDGET = 512 * 1024 * 1024
SEQ_TOKENS = 8192
MiB = 1024 * 1024


@dataclass(frozen=True)
class Held:
    """Blocks one sequence holds, per pool: at its decode step, and at most."""

    global_blocks: int
    local_blocks: int
    peak_global: int
    peak_local: int


def held(config: ModelConfig, context: int, pool: bool) -> Held:
    """Prefill ``context - 1`` tokens in steps of STEP_TOKENS, then one decode step whose
    context is ``context``; blocks in use once each step is planned."""
    window = config.sliding_window
    assert window is not None
    blocks = -(-context // BLOCK) + 1
    bm = BlockManager(blocks, BLOCK, False, sliding_window=window if pool else None,
                      num_local_blocks=local_blocks_per_seq(window, BLOCK, STEP_TOKENS)
                      if pool else None)
    sched = Scheduler(SchedulerConfig(STEP_TOKENS, 1, max_model_len=context + 1), bm)
    sched.add(SequenceGroup.create("r", [1] * (context - 1), max_tokens=2))
    peak_global = peak_local = 0
    while True:
        out = sched.schedule()
        local = bm.local_usage()
        used_global, used_local = bm.usage().used, 0 if local is None else local.used
        peak_global, peak_local = max(peak_global, used_global), max(peak_local, used_local)
        (sl,) = out.slices
        if sl.context_len == context:
            return Held(used_global, used_local, peak_global, peak_local)
        sched.on_step_finished(out, {s.seq_id: 1 for s in sl.sample_seqs})


def memory(config: ModelConfig) -> None:
    every = bytes_per_block(config, BLOCK, DTYPE)
    full, local = pool_bytes_per_block(config, BLOCK, DTYPE)
    print(f"block of {BLOCK} tokens, fp32: {every:,} B over all 18 layers; "
          f"{full:,} B global pool (3 layers), {local:,} B local pool (15 layers)")
    print(f"{'context':>8}  {'before':>10}  {'after':>10}  {'saved':>6}  "
          f"{'after, peak':>11}  blocks after (global + local, peak local)")
    per_seq: dict[int, Held] = {}
    for context in CONTEXTS:
        one = held(config, context, pool=False)
        two = per_seq[context] = held(config, context, pool=True)
        before = one.global_blocks * every
        after = two.global_blocks * full + two.local_blocks * local
        peak = two.peak_global * full + two.peak_local * local
        print(f"{context:>8}  {before / MiB:>7.1f} MiB  {after / MiB:>7.1f} MiB  "
              f"{1 - after / before:>6.0%}  {peak / MiB:>7.1f} MiB  "
              f"{two.global_blocks} + {two.local_blocks} ({two.peak_local})")

    seq = per_seq[SEQ_TOKENS]
    print(f"\nconcurrent {SEQ_TOKENS}-token sequences (decoding) in a "
          f"{BUDGET // MiB} MiB budget:")
    one_pool = blocks_for_budget(config, BLOCK, DTYPE, BUDGET)
    print(f"  before, one pool of {one_pool} blocks: {one_pool // seq.global_blocks}")
    window = config.sliding_window
    assert window is not None

    def split(seats: int) -> tuple[int, int]:
        needed = local_blocks_needed(window, BLOCK, seats, max(STEP_TOKENS, seats))
        return split_budget(config, BLOCK, DTYPE, BUDGET, needed,
                            local_blocks_per_seq(window, BLOCK, 1))

    def fits(pools: tuple[int, int], seats: int) -> int:
        return min(seats, pools[0] // seq.global_blocks, pools[1] // seq.local_blocks)

    default = split(64)
    print(f"  after, engine split at max_num_seqs=64 ({default[0]} global + {default[1]} "
          f"local blocks): {fits(default, 64)}")
    best = max(range(1, 65), key=lambda s: (fits(split(s), s), -s))
    pools = split(best)
    print(f"  after, engine split at max_num_seqs={best} ({pools[0]} global + {pools[1]} "
          f"local blocks): {fits(pools, best)}")


def decode_slices(engine: Engine, batch: int, context: int) -> SchedulerOutput:
    """``batch`` sequences whose first ``context - 1`` positions count as computed, grown
    the way chunked prefill grows them (so the local pool gives back what leaves the
    window as it goes), each now decoding position ``context - 1``."""
    bm = engine.block_manager
    slices = []
    for i in range(batch):
        seq = TokenSequence(request_id=f"r{i}", prompt_token_ids=[2 + i] * context)
        chunk = min(STEP_TOKENS, context - 1)
        bm.allocate(seq, chunk)
        while True:
            seq.num_computed_tokens += chunk
            bm.mark_computed(seq)
            chunk = min(STEP_TOKENS, context - 1 - seq.num_computed_tokens)
            if chunk == 0:
                break
            bm.append_slots(seq, chunk, [])
        bm.append_slots(seq, 1, [])  # room for the decode at position context - 1
        local = bm.has_local_pool
        slices.append(ScheduledSlice(
            seq, (2 + i,), context - 1, tuple(bm.block_table(seq.seq_id)),
            tuple(bm.slot_mapping(seq.seq_id, context - 1, 1)), (seq,),
            tuple(bm.local_block_table(seq.seq_id)) if local else (),
            tuple(bm.local_slot_mapping(seq.seq_id, context - 1, 1)) if local else ()))
    return SchedulerOutput(tuple(slices), (), ())


def timing(repeats: int, batch: int = 8, context: int = 4096) -> None:
    model = load_model(gemma_model_path(), progress=False)
    blocks = batch * -(-context // BLOCK)
    runs: dict[str, tuple[Engine, SchedulerOutput]] = {}
    for name, pool in (("before", False), ("after", True)):
        engine = Engine(model, EngineConfig(
            num_blocks=blocks, block_size=BLOCK, device="cpu", dtype=DTYPE,
            max_num_seqs=batch, enable_prefix_caching=False, local_kv_pool=pool))
        runs[name] = (engine, decode_slices(engine, batch, context))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats + 1):
        for name, (engine, plan) in runs.items():
            began = time.perf_counter()
            engine.runner.execute(plan)
            if r:  # the first round warms up
                times[name].append((time.perf_counter() - began) * 1000)
    print(f"\ndecode step, batch {batch}, {context}-token contexts, fp32, "
          f"{torch.get_num_threads()} threads (median of {repeats}, range):")
    for name, (engine, _) in runs.items():
        ms = sorted(times[name])
        kv = engine.kv_cache.data.numel() + (0 if engine.kv_cache.local_data is None
                                             else engine.kv_cache.local_data.numel())
        print(f"  {name:<6}  {statistics.median(ms):7.1f} ms  ({ms[0]:.1f}-{ms[-1]:.1f})"
              f"   KV tensors {kv * 4 / MiB:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gguf = open_gguf(gemma_model_path())
    config = ModelConfig.from_gguf_metadata(gguf.metadata, tensor_names=gguf.tensor_names)
    memory(config)
    if not args.no_timing:
        timing(args.repeats)
    print(f"\nload average (1 min, end): {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
