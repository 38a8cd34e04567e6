"""Tiers: defaults, loading from TOML/JSON, and validation that reports every problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chorusline.ratelimit import Tier, TierConfigError, Tiers, estimate_tokens

TOML = """
default = "team"

[tiers.team]
requests_per_minute = 50
tokens_per_minute = 90000
max_concurrent_streams = 4
priority = 1

[tiers.free]
requests_per_minute = 3
tokens_per_minute = 1000
max_concurrent_streams = 1
priority = 5
"""


def test_defaults_have_the_three_plans_and_paid_ones_come_first() -> None:
    tiers = Tiers.defaults()
    assert {t.name for t in tiers} == {"free", "plus", "enterprise"}
    assert tiers.default.name == "free"
    free, plus, enterprise = tiers.get("free"), tiers.get("plus"), tiers.get("enterprise")
    assert enterprise.priority < plus.priority < free.priority  # lower = served first
    for field in ("requests_per_minute", "tokens_per_minute", "max_concurrent_streams"):
        assert getattr(free, field) < getattr(plus, field) < getattr(enterprise, field)


def test_get_none_is_the_default_and_unknown_names_raise() -> None:
    tiers = Tiers.defaults()
    assert tiers.get(None) is tiers.default
    assert "plus" in tiers and "gold" not in tiers and len(tiers) == 3
    with pytest.raises(KeyError, match="gold"):
        tiers.get("gold")


def test_tier_is_frozen_and_validated() -> None:
    tier = Tier("t", 1, 2, 3, 0)
    with pytest.raises(AttributeError):
        tier.priority = 4  # type: ignore[misc]
    with pytest.raises(TierConfigError, match="requests_per_minute: must be > 0"):
        Tier("t", 0, 2, 3, 0)


def test_toml_and_json_files_load_the_same_tiers(tmp_path: Path) -> None:
    toml_file = tmp_path / "tiers.toml"
    toml_file.write_text(TOML)
    from_toml = Tiers.load(toml_file)
    assert from_toml.default.name == "team"
    assert from_toml.get("team") == Tier("team", 50, 90_000, 4, 1)
    json_file = tmp_path / "tiers.json"
    json_file.write_text(
        json.dumps({"default": "team", "tiers": {t.name: {
            "requests_per_minute": t.requests_per_minute,
            "tokens_per_minute": t.tokens_per_minute,
            "max_concurrent_streams": t.max_concurrent_streams,
            "priority": t.priority,
        } for t in from_toml}})
    )
    assert dict(Tiers.load(json_file).by_name) == dict(from_toml.by_name)


def test_default_falls_back_to_free_when_not_named() -> None:
    body = {"requests_per_minute": 1, "tokens_per_minute": 1, "max_concurrent_streams": 1,
            "priority": 0}
    assert Tiers.from_mapping({"tiers": {"free": body, "x": body}}).default.name == "free"
    with pytest.raises(TierConfigError, match="default: required"):
        Tiers.from_mapping({"tiers": {"x": body}})


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    data = {
        "default": "gold",
        "colour": "blue",
        "tiers": {
            "free": {"requests_per_minute": -1, "tokens_per_minute": "many",
                     "max_concurrent_streams": True, "priority": 0, "burst": 3},
            "plus": {"requests_per_minute": 5, "tokens_per_minute": 5, "priority": -2},
            "bad name!": {"requests_per_minute": 1, "tokens_per_minute": 1,
                          "max_concurrent_streams": 1, "priority": 0},
            "x": 7,
        },
    }
    with pytest.raises(TierConfigError) as caught:
        Tiers.from_mapping(data, source="tiers.toml")
    problems = caught.value.problems
    expected = [
        "colour: unknown top-level key",
        "tiers.free.requests_per_minute: must be > 0, got -1",
        "tiers.free.tokens_per_minute: must be an integer, got 'many'",
        "tiers.free.max_concurrent_streams: must be an integer, got True",
        "tiers.free.burst: unknown field",
        "tiers.plus.max_concurrent_streams: missing",
        "tiers.plus.priority: must be >= 0, got -2",
        "'bad name!': a tier name is",
        "tiers.x: must be a table",
        "default: 'gold' is not one of the tiers",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) == len(expected)
    assert str(caught.value).startswith("tiers.toml: invalid rate-limit tiers")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("tiers.yaml", "x", "must end in .toml or .json"),
        ("tiers.toml", "default = ", "cannot parse"),
        ("tiers.json", "{", "cannot parse"),
        ("tiers.json", "[]", "must be a table"),
        ("tiers.toml", "default = 'free'", "tiers: must be a non-empty table"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TierConfigError, match=message) as caught:
        Tiers.load(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TierConfigError, match="cannot read"):
        Tiers.load(tmp_path / "nope.toml")


def test_estimate_is_prompt_plus_max_tokens_or_the_configured_default() -> None:
    assert estimate_tokens(100, 50) == 150
    assert estimate_tokens(100, None, default_completion=7) == 107
    assert estimate_tokens(0, 0) == 0
    with pytest.raises(ValueError):
        estimate_tokens(-1, 5)


def test_a_tier_may_list_the_models_it_uses() -> None:
    body = {"requests_per_minute": 1, "tokens_per_minute": 10, "max_concurrent_streams": 1,
            "priority": 1}
    tiers = Tiers.from_mapping({"tiers": {"free": {**body, "models": ["fast"]},
                                          "plus": body}})
    assert tiers.get("free").models == ("fast",)
    assert tiers.get("free").may_use("smollm2", "fast")
    assert not tiers.get("free").may_use("gemma-3-270m")
    assert tiers.get("plus").models is None and tiers.get("plus").may_use("anything")
    for bad in ([], "fast", [1], [""]):
        with pytest.raises(TierConfigError, match=r"tiers\.free\.models: must be a "
                                                  "non-empty list of model names"):
            Tiers.from_mapping({"tiers": {"free": {**body, "models": bad}}})
