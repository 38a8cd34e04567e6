"""The verdicts, for people (a table) and for programs (a JSON report)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from chorusline.chaos.run import Outcome, RunOptions

COLUMNS = ("scenario", "ops", "ack", "lost", "dup", "hung", "5xx", "max recovery",
           "verdict")


def shown(figure: object) -> str:
    return "-" if figure is None else str(figure)


def row(outcome: Outcome) -> list[str]:
    name = outcome.scenario.name
    if outcome.skipped is not None or outcome.history is None:
        return [name, "", "", "", "", "", "", "", f"skipped ({outcome.skipped})"]
    counts = outcome.history.counts()
    recovery = outcome.figure("recovered", "max_recovery_s")
    failed = [v.name for v in outcome.verdicts if not v.ok]
    return [name, str(counts["operations"]), str(counts["acknowledged"]),
            shown(outcome.figure("acknowledged_stored", "lost")),
            shown(outcome.figure("no_duplicates", "duplicates")),
            shown(outcome.figure("streams_ended", "hung")),
            shown(outcome.figure("documented_errors_only", "server_errors")),
            "-" if recovery is None else f"{recovery:.1f}s",
            "ok" if not failed else "FAILED: " + ", ".join(failed)]


def verdict_table(outcomes: list[Outcome]) -> str:
    rows = [list(COLUMNS), *(row(outcome) for outcome in outcomes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True))
             .rstrip() for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def violation_lines(outcomes: list[Outcome]) -> str:
    """Each broken invariant with the first few of its violations."""
    lines = []
    for outcome in outcomes:
        for found in outcome.verdicts:
            if not found.ok:
                lines.append(f"{outcome.scenario.name} / {found.name}: {found.count} "
                             "violation(s)")
                lines.extend(f"    {text}" for text in found.violations[:5])
    return "\n".join(lines)


def report_json(outcomes: list[Outcome], target: str, options: RunOptions) -> dict[str, Any]:
    return {"object": "chaos.report", "created_at": int(time.time()), "target": target,
            "machine": platform.platform(), "duration": options.duration,
            "clients": options.clients, "seed": options.seed,
            "ok": all(outcome.ok for outcome in outcomes),
            "scenarios": [outcome.to_json() for outcome in outcomes]}


def write_report(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1))
