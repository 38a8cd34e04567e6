"""The scenario table: names unique, needs the targets can name, selection by name."""

from __future__ import annotations

import pytest

from chorusline.chaos import SCENARIOS, select_scenarios
from chorusline.chaos.targets import ACTOR, POSTGRES, PROCESS, REDIS


def test_names_are_unique_and_needs_are_abilities_a_target_has() -> None:
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    for scenario in SCENARIOS:
        assert scenario.needs <= {ACTOR, PROCESS, POSTGRES, REDIS}
        assert scenario.workers == 1 or PROCESS in scenario.needs


def test_selection_keeps_the_order_asked_and_refuses_unknown_names() -> None:
    assert [s.name for s in select_scenarios(["slow-readers", "escalation"])] == [
        "slow-readers", "escalation"]
    assert select_scenarios([]) == list(SCENARIOS)
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        select_scenarios(["nope"])
