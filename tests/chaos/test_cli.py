"""``chorusline chaos``: its listing, its usage errors, and a run against a deployment it
did not start (``--target``: actor faults through the admin API only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chorusline.chaos import SCENARIOS
from tests.cli_server import running_server


def chaos(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chorusline.cli", "chaos", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_list_shows_every_scenario_on_one_line() -> None:
    result = chaos("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [s.name for s in SCENARIOS]
    assert "[needs: postgres, process, redis]" in lines[-1]


@pytest.mark.parametrize(("args", "message"), [
    (["run", "no-such-scenario"], "unknown scenario 'no-such-scenario'"),
    (["run", "--target", "http://127.0.0.1:1"], "--target needs --admin-key"),
    (["run", "--store", "mysql://x"], "--store takes 'sqlite' or a postgresql:// URL"),
    (["run", "--duration", "0"], "--duration must be positive"),
    (["run", "--clients", "0"], "--clients at least 1"),
    (["run", "--target", "http://x", "--admin-key", "k", "--redis", "redis://x"],
     "apply to --spawn only"),
    (["run", "--target", "http://x", "--spawn"], "not allowed with argument"),
])
def test_bad_usage_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = chaos(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_target_is_one_line_and_exit_1() -> None:
    result = chaos("run", "session-crash", "--target", "http://127.0.0.1:9",
                   "--admin-key", "ck_x", "--duration", "1", timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("chorusline chaos: ")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_run_against_a_target_injects_through_its_admin_api(tmp_path: Path) -> None:
    with running_server(tmp_path / "target.db") as (url, key):
        result = chaos("run", "session-crash", "sigkill-restart", "--target", url,
                       "--admin-key", key, "--duration", "4", "--report",
                       str(tmp_path / "report.json"), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    crash, kill = report["scenarios"]
    assert crash["ok"] and crash["counts"]["faults"] == 2 and crash["counts"]["ok"] > 0
    assert kill["skipped"] == "needs --spawn"
    assert "session-crash" in result.stdout and "skipped (needs --spawn)" in result.stdout
