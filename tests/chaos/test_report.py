"""The table and the JSON report say what the verdicts say, skipped scenarios included."""

from __future__ import annotations

import json
from pathlib import Path

from chorusline.chaos import (
    SCENARIOS,
    History,
    Outcome,
    RunOptions,
    Verdict,
    report_json,
    verdict_table,
    violation_lines,
    write_report,
)


def outcomes() -> list[Outcome]:
    passed = Outcome(SCENARIOS[0], History(SCENARIOS[0].name), [
        Verdict("acknowledged_stored", True, figures={"lost": 0}),
        Verdict("recovered", True, figures={"max_recovery_s": 1.25})])
    failed = Outcome(SCENARIOS[1], History(SCENARIOS[1].name), [
        Verdict("no_duplicates", False, ["turn k1: its user message is stored 2 times"],
                {"duplicates": 1}, 1)])
    skipped = Outcome(SCENARIOS[6], skipped="needs --store postgresql://...")
    return [passed, failed, skipped]


def test_the_table_has_a_row_per_scenario_and_names_what_failed() -> None:
    lines = verdict_table(outcomes()).splitlines()
    assert lines[0].split()[:3] == ["scenario", "ops", "ack"]
    assert lines[2].split() == [SCENARIOS[0].name, "0", "0", "0", "-", "-", "-", "1.2s", "ok"]
    assert lines[3].endswith("FAILED: no_duplicates")
    assert lines[4].endswith("skipped (needs --store postgresql://...)")
    assert "stored 2 times" in violation_lines(outcomes())


def test_the_report_is_json_with_the_verdict_and_every_history(tmp_path: Path) -> None:
    data = report_json(outcomes(), "spawned", RunOptions(duration=8.0))
    assert data["ok"] is False  # one scenario failed; a skipped one does not fail a run
    write_report(tmp_path / "r.json", data)
    again = json.loads((tmp_path / "r.json").read_text())
    assert [s["name"] for s in again["scenarios"]] == [o.scenario.name for o in outcomes()]
    assert again["scenarios"][1]["verdicts"][0]["violation_count"] == 1
    assert again["scenarios"][2]["history"] is None
    assert report_json(outcomes()[::2], "spawned", RunOptions())["ok"] is True
