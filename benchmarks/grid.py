"""Grid kernels against fp32 GEMM on SmolLM2's shapes, to place ``grid.MAX_ROWS``.

Times one product ``[M, K] x [K, N]`` three ways: the packed 4-bit (or 8-bit for the LM
head) grid kernel, and fp32 GEMM in the two forms ``linear.linear`` chooses between. The
packed weights read 1/6.4 (4-bit) or 1/3.6 (8-bit) of fp32's bytes, so they win while a
product is bound by reading its weights; fp32 GEMM wins once enough rows share each weight.
Each call takes the next of 30 copies of the matrix, as a step takes the next layer's, so
the weights come from memory and not from a cache that a real step would not have.

    PYTHONPATH=. .venv/bin/python benchmarks/grid.py [--threads 2] [--rows 1,2,4,8,16,32,64]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from chorusline.runtime import load_kernels, pack_grid

# (name, out, in, bits) for SmolLM2-135M: fused QKV, O, fused gate/up, down, LM head.
SHAPES = [("qkv", 960, 576, 4), ("o", 576, 576, 4), ("gate_up", 3072, 576, 4),
          ("down", 576, 1536, 4), ("lm_head", 49152, 576, 8)]


LAYERS = 30


class Turn:
    """0, 1, ..., n - 1, 0, ...: which copy the next call reads."""

    def __init__(self, n: int) -> None:
        self.n, self.i = n, -1

    def __call__(self) -> int:
        self.i = (self.i + 1) % self.n
        return self.i


def grid_matrix(out: int, cols: int, bits: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if bits == 4:
        q = torch.randint(0, 16, (out, cols // 32, 32), generator=gen).float()
        return (q * 0.01 - 0.08).reshape(out, cols)
    q = torch.randint(-127, 128, (out, cols // 32, 32), generator=gen).float()
    q[..., 0] = 127
    return (q * 0.001).reshape(out, cols)


def timed(fn: Callable[[], object], budget: float) -> float:
    """Median microseconds per call over ``budget`` seconds."""
    for _ in range(3):
        fn()
    samples = []
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline or len(samples) < 5:
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2] * 1e6


def routes(packs: list[Any], ws: list[torch.Tensor], m: int, cols: int
           ) -> list[Callable[[], object]]:
    """The three ways of one product, each taking the next copy per call."""
    x = torch.randn(m, cols)
    turn = Turn(len(ws))
    return [lambda: packs[turn()].matmul(x),
            lambda: torch.nn.functional.linear(x, ws[turn()]),
            lambda: torch.mm(ws[turn()], x.t()).t().contiguous()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default="1,2,4,8,16,24,32,64")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not load_kernels():
        raise SystemExit("chorusline's CPU kernels did not build here")
    print(f"{'shape':>8} {'M':>4} {'grid µs':>9} {'F.linear µs':>12} {'W@xT µs':>9} "
          f"{'grid / best fp32':>17}")
    for name, out, cols, bits in SHAPES:
        copies = 1 if name == "lm_head" else LAYERS
        ws = [grid_matrix(out, cols, bits) + 0 for _ in range(copies)]
        packs = [p for p in map(pack_grid, ws) if p is not None]
        for m in (int(r) for r in args.rows.split(",")):
            g, f, t = (timed(fn, args.budget) for fn in routes(packs, ws, m, cols))
            print(f"{name:>8} {m:>4} {g:>9.0f} {f:>12.0f} {t:>9.0f} {g / min(f, t):>17.2f}")


if __name__ == "__main__":
    main()
