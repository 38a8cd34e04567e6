"""Every chaos scenario, bounded, through the product's own command line.

``chorusline chaos run --spawn`` runs once per backend (the embedded defaults: SQLite and
in-process limits; then PostgreSQL and Redis behind the suite's fault proxies) with a
short load phase per scenario; each scenario is then one test that fails on any violated
invariant, with the violations in its message. Only the checks are split per test: the
run is one process per backend, as a user would start it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from chorusline.chaos import SCENARIOS

#: Seconds of load per scenario (the issue's bound is 30).
DURATION = 8
#: A hang guard for a whole backend's run, not a speed target.
RUN_TIMEOUT = 1800
BACKENDS = ("embedded", "postgres-redis")
NEEDS = {"embedded": {"actor", "process"},
         "postgres-redis": {"actor", "process", "postgres", "redis"}}


def chaos_run(workdir: Path, *flags: str) -> dict[str, Any]:
    report = workdir / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "chorusline.cli", "chaos", "run", "--spawn", "--duration",
         str(DURATION), "--workdir", str(workdir / "server"), "--report", str(report),
         *flags], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert report.exists(), f"no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(report.read_text())
    data["exit_status"], data["stdout"] = done.returncode, done.stdout
    return data


@pytest.fixture(scope="module", params=BACKENDS)
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           postgres_admin_url: str, redis_url: str) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp(f"chaos-{request.param}")
    if request.param == "embedded":
        yield chaos_run(workdir)
        return
    name = f"chorusline_chaos_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        store = postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
        yield chaos_run(workdir, "--store", store, "--redis", redis_url)
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


def outcome(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["scenarios"] if s["name"] == name)


def broken(found: dict[str, Any]) -> str:
    return "\n".join(f"{v['name']}: {v['violations'][:5]}" for v in found["verdicts"]
                     if not v["ok"])


@pytest.mark.slow
@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_every_invariant_holds(report: dict[str, Any], name: str) -> None:
    scenario = next(s for s in SCENARIOS if s.name == name)
    found = outcome(report, name)
    backend = "embedded" if "SQLite" in report["target"] else "postgres-redis"
    if not scenario.needs <= NEEDS[backend]:
        assert found["skipped"], f"{name} ran on a backend it needs more than"
        pytest.skip(f"{backend}: {found['skipped']}")
    assert found["skipped"] is None
    assert found["ok"], f"{name} on {backend}:\n{broken(found)}"
    counts = found["counts"]
    assert counts["acknowledged"] > 0 and counts["ok"] > 0, counts
    assert counts["faults"] > 0, "the schedule injected nothing"


@pytest.mark.slow
def test_the_run_reports_its_verdict(report: dict[str, Any]) -> None:
    """The exit status is the verdict and the table names every scenario."""
    assert report["exit_status"] == (0 if report["ok"] else 1)
    for scenario in SCENARIOS:
        assert scenario.name in report["stdout"]
    history = outcome(report, "gpu-worker-kill")["history"]
    assert history["ops"] and all(op["type"] in ("ok", "fail", "info")
                                  for op in history["ops"])
