"""The embeddings benchmark script stays runnable and complete.

Only the shape of the output is checked: embeddings per second depend on the machine and
its load, so they are reported, never asserted here.
"""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks.quick_run import run_quick

SIZES = [1, 32, 256]
ROWS = ([f"model, batch of {n}" for n in SIZES] + [f"http, 1 request x {n}" for n in SIZES]
        + ["http, 32 concurrent x 1"])


def test_quick_run_prints_every_batch_size(tmp_path: Path) -> None:
    lines, figures = run_quick("embeddings.py", ROWS, [], tmp_path)
    assert lines[0].startswith("machine: ") and "inputs of 40 tokens" in lines[0]
    assert all(row["value"] > 0 and row["unit"] == "embeddings/s" for row in figures["rows"])
