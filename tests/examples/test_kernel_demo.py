"""The kernel demo runs as a plain script and recovers from both injected faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_kernel_demo_recovers_and_prints_the_tree(tmp_path: Path) -> None:
    # Run from elsewhere, as a user would, to prove the script finds the package itself.
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "kernel_demo.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "crash injected: worker died" in out
    assert "recovered: worker restarted" in out
    assert "recovered: digester killed and restarted" in out
    assert "store kept 4 digests across both faults" in out
    tree = out.split("tree snapshot:", 1)[1].splitlines()
    rows = {line.split()[0]: line for line in tree if line.strip().startswith("/")}
    assert set(rows) >= {"/pipeline", "/pipeline/store", "/pipeline/digester", "/pipeline/worker"}
    assert all(" running " in line for line in rows.values())
    assert "restarts=2" in rows["/pipeline/worker"]
    assert "restarts=1" in rows["/pipeline/digester"]
    assert "restarts=0" in rows["/pipeline/store"]
