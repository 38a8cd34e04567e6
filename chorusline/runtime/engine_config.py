"""What an engine is built with: KV blocks, batch limits, device, dtype, threads.

Kept apart from ``engine`` (which re-exports it) so the defaults and the measurements
behind them read on their own, and the engine module stays about its step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EngineConfig:
    #: Tokens per KV block; None: 8 on CPU, 16 on CUDA. Prefix caching reuses whole
    #: blocks, so the block size is the granularity of reuse: the bundled model's chat
    #: template starts every prompt with the same 29-token system prompt, of which 16
    #: tokens are reusable with 16-token blocks and 24 with 8-token blocks. Measured on
    #: the 2-core AVX2 CPU (``benchmarks/service.py``'s engine-direct method, 2 waves of
    #: 32 distinct chat prompts, 32 new tokens, prefix caching on, a fresh engine per run,
    #: 3 runs each): TTFT p50 2.22-2.43 s with 16 against 1.05-1.28 s with 8, and 106-118
    #: against 118-138 output tok/s; without a shared prefix the two are within noise
    #: (batch 32: 141/141 vs 130/147 tok/s; single stream 16.4/17.3 vs 15.6/16.4). CUDA
    #: keeps 16 (not measured here; its graph buckets are sized in blocks).
    block_size: int | None = None
    #: KV cache budget; ignored when ``num_blocks`` is given. With a local pool it is
    #: split between the pools (``kv_cache.split_budget``).
    kv_cache_bytes: int = 512 * 1024 * 1024
    #: Blocks of the (global) pool; with a local pool, None: what the budget leaves.
    num_blocks: int | None = None
    #: Sliding-window layers (Gemma 3) keep their KV in a pool of their own that hands
    #: blocks back as they leave the window. False: every layer keeps every position in
    #: the one pool, as full layers do (the layout before; for comparisons and tests).
    local_kv_pool: bool = True
    #: Blocks of that local pool; None: what ``max_num_seqs`` sequences can hold at most
    #: (``block_manager.local_blocks_needed``), but no more than the global pool has.
    num_local_blocks: int | None = None
    #: Tokens computed per step; None: 512 on CPU, 2048 on CUDA. A step's prefill delays
    #: every first token it carries, and a CPU computes ~1,000 prompt tokens/s for this
    #: model, so on CPU a smaller budget lets early arrivals start streaming sooner.
    max_num_batched_tokens: int | None = None
    max_num_seqs: int = 64
    #: Context window; defaults to the model's ``max_position_embeddings``.
    max_model_len: int | None = None
    enable_prefix_caching: bool = True
    device: str | None = None
    dtype: torch.dtype | None = None
    cuda_graphs: bool = True
    seed: int | None = None
    #: torch intra-op threads for CPU work (process-wide); None leaves torch's default.
    cpu_threads: int | None = None
    #: Packed copies of the weights that lie on a quantisation grid, for small CPU steps
    #: (see ``packing``: exact 4/8-bit kernels for fp32, torch's int4 kernel for bf16);
    #: None means wherever supported.
    packed_weights: bool | None = None
    #: chorusline's fused fp32 CPU kernels for a step's norms, RoPE, KV writes and decode
    #: attention (``fused_llama``); None means wherever they build (fp32 on CPU).
    fused_kernels: bool | None = None
