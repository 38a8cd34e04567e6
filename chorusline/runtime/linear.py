"""One linear layer, by the fastest route measured for its row count and weights.

Kept apart from the decoders so that both of them and the fused step
(``fused_llama``) share one routing rule: a packed copy for small steps, MKL's
``W @ x^T`` form for decode-sized fp32 steps, ``F.linear`` otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from chorusline.runtime.packing import Packed

#: Row counts for which a CPU fp32 matmul runs faster as ``W @ x^T`` (see ``linear``).
TRANSPOSED_ROWS = range(2, 129)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            packed: Packed | None, transposed: bool) -> torch.Tensor:
    """``x @ W^T + b`` by the fastest route measured for this many rows.

    ``transposed``: MKL's fp32 GEMM runs the same product faster when asked for
    ``(W @ x^T)^T`` at decode-sized row counts. Whole engine steps on a 2-core AVX2 EPYC,
    route on vs off interleaved (``Engine.step``, SmolLM2-135M fp32, 2 threads): decode
    batch 4/8/32/64 went 110->68, 134->102, 242->175, 370->317 ms; a 128-token prefill
    408->357 ms; at 1 row, 256 and 512 rows the two are within 4% with the plain form
    ahead at 512, hence ``TRANSPOSED_ROWS``. The result is made contiguous again (a copy
    of ``rows x out`` floats, small next to the product).
    """
    rows = x.shape[0]
    if packed is not None and rows <= packed.max_rows:
        out = packed.matmul(x)
    elif transposed and rows in TRANSPOSED_ROWS:
        out = torch.mm(weight, x.t()).t().contiguous()
    else:
        return F.linear(x, weight, bias)
    return out if bias is None else out + bias


def transposed_route(device: torch.device, dtype: torch.dtype, override: bool | None) -> bool:
    """Whether ``linear`` takes its ``W @ x^T`` route: where it was measured to pay (CPU,
    fp32) unless ``override`` says."""
    return device.type == "cpu" and dtype == torch.float32 if override is None else override
