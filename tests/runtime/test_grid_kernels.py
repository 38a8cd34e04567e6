"""Building chorusline's CPU kernels: used where they build, never required.

Each case runs in a fresh interpreter, because a loaded kernel library (and the choice of
its AVX2 or portable path) lasts for the life of a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chorusline.runtime.grid import pack_grid
from chorusline.runtime.grid_kernels import load_kernels
from tests.runtime.test_grid import grid4_values, grid8_values


def run(code: str, **env: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


ENGINE = """
import torch
from chorusline.protocols import SamplingParams
from chorusline.runtime import Engine, EngineConfig, default_model_path, load_model
from chorusline.runtime.grid_kernels import load_kernels
loaded = load_kernels()
model = load_model(default_model_path(), progress=False)
engine = Engine(model, EngineConfig(device="cpu", dtype=torch.float32, num_blocks=32))
out = engine.generate({"r": model.tokenizer.encode("Hello")},
                      SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))
print(loaded, engine.model.fused, engine.model.packed_head is None, len(out["r"]))
"""


@pytest.mark.slow
def test_without_a_compiler_the_engine_runs_on_torch(tmp_path: Path) -> None:
    got = run(ENGINE, CXX=str(tmp_path / "no-such-compiler"),
              CHORUSLINE_CACHE_DIR=str(tmp_path))
    assert got.splitlines()[-1] == "False False True 4"


def test_kernels_can_be_switched_off() -> None:
    code = ("from chorusline.runtime.grid_kernels import load_kernels; "
            "print(load_kernels())")
    assert run(code, CHORUSLINE_KERNELS="0") == "False"


@pytest.mark.skipif(not load_kernels(), reason="no C++ compiler here")
def test_the_portable_path_computes_what_the_avx2_path_does(tmp_path: Path) -> None:
    x = torch.randn(5, 96, generator=torch.Generator().manual_seed(3))
    for i, w in enumerate([grid4_values(48, 96), grid8_values(48, 96)]):
        packed = pack_grid(w)
        assert packed is not None
        torch.save({"x": x, "packed": packed, "here": packed.matmul(x)}, tmp_path / f"{i}.pt")
    assert torch.ops.chorusline.grid_isa() in ("avx2", "portable")
    code = f"""
import torch
from chorusline.runtime.grid_kernels import load_kernels
assert load_kernels()
print(torch.ops.chorusline.grid_isa())
for i in range(2):
    saved = torch.load("{tmp_path}/%d.pt" % i, weights_only=False)
    there = saved["packed"].matmul(saved["x"])
    print(float((there - saved["here"]).abs().max()))
"""
    isa, *diffs = run(code, CHORUSLINE_KERNELS_PORTABLE="1").splitlines()
    assert isa == "portable"
    for diff in diffs:
        assert float(diff) < 1e-5  # the same products, summed in another order
