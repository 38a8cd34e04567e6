"""The quality benchmark: the default CPU path scores the held-out text as the fp32
reference does (it is exact up to summation order), and the report has every row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_path_matches_the_reference_on_held_out_text(tmp_path: Path) -> None:
    out = tmp_path / "quality.json"
    done = subprocess.run([sys.executable, "benchmarks/quality.py", "--chunks", "1",
                           "--paths", "reference,default", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    paths = json.loads(out.read_text())["paths"]
    assert set(paths) == {"reference", "default"}
    assert 1 < paths["reference"]["perplexity"] < 100
    assert abs(paths["default"]["delta"]) < 1e-4
    assert paths["default"]["agreement"] == [64, 64, 64]
