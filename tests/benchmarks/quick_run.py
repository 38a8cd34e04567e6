"""Run a benchmark script's ``--quick`` mode and check the shape of what it printed.

Shared by the benchmark tests: each names its script, the rows and the target lines it
must print; timing goals are reported by the scripts (PASS/MISS), never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_quick(
    script: str,
    rows: list[str],
    targets: list[str],
    tmp_path: Path,
    *,
    timeout: float = 300,
    row_end: str = "  ",
    args: Sequence[str] = (),
) -> tuple[list[str], dict[str, Any]]:
    """Run ``benchmarks/<script> --quick [args]``; returns its stdout lines and JSON
    figures."""
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json", str(out),
         *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for row in rows:
        assert any(line.startswith(row + row_end) for line in lines), f"missing row {row!r}"
    for target in targets:
        assert any(
            line[:4] in ("PASS", "MISS") and target in line for line in lines
        ), f"missing target {target!r}"
    figures: dict[str, Any] = json.loads(out.read_text())
    assert {row["label"] for row in figures["rows"]} == set(rows)
    return lines, figures
