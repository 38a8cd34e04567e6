"""What the benchmark scripts share: report rows, percentiles, prompts and the report tail.

Kept in one place so that every script computes p50/p99 the same way and writes the same
JSON shape, which the benchmark tests (``tests/benchmarks``) read.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOPICS = ["the sea", "volcanoes", "bread", "chess", "the moon", "bees", "rivers", "trains",
          "glass", "owls", "paper", "tea", "clocks", "maps", "salt", "wind"]


@dataclass(frozen=True)
class Row:
    """One printed measurement; ``key`` names it in the JSON report."""

    key: str
    label: str
    value: float
    unit: str
    note: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (with few samples p99 is the maximum); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def user_texts(concurrency: int, count: int) -> list[str]:
    """Distinct ~20-token user messages (distinct per level, so no run reuses another's)."""
    return [f"Question {concurrency}.{i}: in two short sentences, tell a child about "
            f"{TOPICS[i % len(TOPICS)]} and why it matters." for i in range(count)]


def print_checks(checks: Sequence[dict[str, Any]], width: int) -> None:
    """One ``PASS``/``MISS`` line per target (``label``, ``passed``, ``shown``)."""
    for check in checks:
        print(f"{'PASS' if check['passed'] else 'MISS'}  {check['label']:<{width}} "
              f"{check['shown']}")


def print_table(rows: Sequence[Row], checks: Sequence[dict[str, Any]],
                fmt: Callable[[float, str], str], width: int = 70) -> None:
    """The measurements as an aligned table, then the targets."""
    label_width = max(len(row.label) for row in rows)
    print(f"{'measurement':<{label_width}}  {'value':>14}  note")
    for row in rows:
        print(f"{row.label:<{label_width}}  {fmt(row.value, row.unit):>14}  {row.note}")
    print()
    print("# targets")
    print_checks(checks, width)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def write_report(path: Path | None, **report: Any) -> None:
    """The run as JSON at ``path`` (nothing when None); values JSON lacks become strings."""
    if path is not None:
        path.write_text(json.dumps(report, indent=2, default=str))
