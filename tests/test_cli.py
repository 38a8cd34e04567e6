"""The README's first command ends in ``chorusline demo``: it must work end to end."""

from __future__ import annotations

import subprocess
import sys


def test_demo_streams_a_reply_through_a_worker_crash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chorusline.cli", "demo", "--max-tokens", "12"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "status=complete" in result.stderr
    assert "/chat/engine/gpu-worker [thread, running, restarts=1]" in result.stderr


def test_bad_arguments_give_a_one_line_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chorusline.cli", "demo", "--max-tokens", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("--max-tokens must be at least 1")
