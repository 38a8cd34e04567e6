"""The grid-kernel benchmark prints a row per shape and row count (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chorusline.runtime.grid_kernels import load_kernels

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not load_kernels(), reason="no C++ compiler here")
def test_every_shape_and_row_count_is_reported() -> None:
    done = subprocess.run([sys.executable, "benchmarks/grid.py", "--rows", "1,9",
                           "--budget", "0.01"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert {(r[0], r[1]) for r in rows} == {
        (shape, m) for shape in ("qkv", "o", "gate_up", "down", "lm_head") for m in ("1", "9")}
    assert all(float(r[-1]) > 0 for r in rows)
