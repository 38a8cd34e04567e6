"""Where the model runs and in which precision.

CUDA gets bf16: tensor cores make it both faster and half the memory of fp32.

CPU: fp32 by default, bf16 (with the 4-bit decode path) only when asked for. bf16 is
faster where the CPU has native bf16 dot products (AVX512-BF16 or AMX), but it is not
lossless for this small model: on a 2-core Intel Xeon with AMX-BF16 (2026-12-02), greedy
decoding of "What is the capital of France?" gives "The capital of France is Paris." in
fp32 and "L'Étoile, la Marseillaise," in bf16, with and without the 4-bit weights (the
same wrong answer llama.cpp gives with 8-bit activations). Quality is not traded for speed
by default; ``EngineConfig.dtype`` (``serve --dtype bf16``) opts in. Measured speed:

- 2-core AMD EPYC with AVX512-BF16 (``benchmarks/engine.py --threads 2 --dtypes bf16,fp32``,
  quiet machine): single-stream decode bf16 31.1 vs fp32 17.2 tok/s; 32 concurrent requests
  256.7 vs 188.3 output tok/s. A ``[32, 576] x [576, 3072]`` matmul runs 3x faster in bf16.
- 2-core AMD EPYC with AVX2 only (``--threads 1``, load ~2-3): single stream fp32 16.6 vs
  bf16 12.3 tok/s; 8 concurrent fp32 48.9 vs bf16 15.1. Without native bf16 instructions
  every bf16 matmul pays a widening conversion that costs more than the bandwidth it saves.

The fp32 path stays the reference: the transformers oracle test runs it explicitly.

Threads: on a shared 2-core machine a second torch thread made everything 4-7x *slower*
(OpenMP workers spin waiting for a core another process holds), hence
``EngineConfig.cpu_threads``; on an idle machine the default (all cores) is the right one.
"""

from __future__ import annotations

import torch


def select_device(preferred: str | torch.device | None = None) -> torch.device:
    """``preferred`` if given, else the first CUDA device when one is usable, else CPU."""
    if preferred is not None:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was requested but no CUDA device is available")
        return device
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def native_cpu_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def select_dtype(device: torch.device, preferred: torch.dtype | None = None) -> torch.dtype:
    """bf16 on CUDA, fp32 on CPUs (see the module docstring), unless ``preferred`` says
    otherwise. ``native_cpu_bf16`` tells whether asking for bf16 on this CPU pays."""
    if preferred is not None:
        if preferred not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"unsupported model dtype {preferred}")
        return preferred
    if device.type == "cuda":
        return torch.bfloat16
    return torch.float32
