"""Where the model runs and in which precision.

CUDA gets bf16: tensor cores make it both faster and half the memory of fp32.

CPU defaults to fp32. Measured with ``benchmarks/engine.py --threads 1`` on the 2-core
AMD EPYC (AVX2, no AVX-512/AMX) this project develops on, SmolLM2-135M, load average ~2-3
from other work: single-stream decode fp32 16.6 tok/s vs bf16 12.3 tok/s; 8 concurrent
requests fp32 48.9 vs bf16 15.1 output tok/s. A bare [64, 576] x [576, 3072] matmul is
about 7x slower in bf16. Without native bf16 dot-product instructions every bf16 matmul
pays a widening conversion, which costs more than the memory bandwidth it saves. On a CPU
with AVX512-BF16 or AMX the balance can flip; pass ``dtype`` explicitly there.

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


def select_dtype(device: torch.device, preferred: torch.dtype | None = None) -> torch.dtype:
    """bf16 on CUDA, fp32 on CPU, unless ``preferred`` says otherwise."""
    if preferred is not None:
        if preferred not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"unsupported model dtype {preferred}")
        return preferred
    return torch.bfloat16 if device.type == "cuda" else torch.float32
