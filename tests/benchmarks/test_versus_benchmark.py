"""The side-by-side benchmark stays runnable: it starts a real ``chorusline serve``, drives
it with every workload and compares it with the engine driven directly. Only the shape
of the report is checked, never a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_reports_every_level_for_the_server_and_the_engine(tmp_path: Path) -> None:
    out = tmp_path / "versus.json"
    done = subprocess.run([sys.executable, "benchmarks/versus.py", "--quick",
                           "--engine-direct", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    levels = {(r["server"], r["level"]) for r in report["results"]}
    assert levels == {("chorusline", "c=1"), ("chorusline", "c=8"),
                      ("chorusline", "multi-turn c=4"), ("engine-direct", "c=1"),
                      ("engine-direct", "c=8")}
    assert all(r["failures"] == 0 and r["tok_s"] > 0 for r in report["results"])
    assert report["rss_bytes"]["chorusline"] > 0
    assert "c=1: chorusline / engine-direct" in done.stdout
