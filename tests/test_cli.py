"""The README's first command ends in ``chorusline demo``: it must work end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.cli_server import running_server


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


def test_serve_prints_an_admin_key_answers_and_drains_on_sigterm(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv.db") as (url, key):  # asserts exit 0 on SIGTERM
        request = urllib.request.Request(
            f"{url}/chat/completions",
            data=json.dumps({
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "max_tokens": 12,
                "temperature": 0,
            }).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.load(response)
        assert "Paris" in body["choices"][0]["message"]["content"]
