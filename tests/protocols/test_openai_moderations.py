"""``chorusline.protocols.openai_moderations``: input forms, model names, and the
mapping of chorusline's categories onto OpenAI's thirteen."""

from __future__ import annotations

from typing import Any

import pytest

from chorusline.protocols import (
    InvalidRequest,
    ModelNotFound,
    UnknownParameter,
    openai_moderations as mwire,
)

Finding = mwire.ModerationFinding


def test_the_input_forms() -> None:
    parse = mwire.parse_moderation_request
    assert parse({"input": "hi"}).inputs == ("hi",)
    assert parse({"input": ["a", "b"]}).inputs == ("a", "b")
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert parse({"input": parts}).inputs == ("a", "b")


@pytest.mark.parametrize(("value", "param"), [
    (None, "input"), (3, "input"), ([], "input"), ([1], "input[0]"),
    ([{"type": "image_url", "image_url": {"url": "http://x"}}], "input[0].type"),
    ([{"type": "text"}], "input[0].text"), ([{"type": "text", "text": "a", "x": 1}],
                                            "input[0].x"),
    ([{"type": "audio"}], "input[0].type"), (["a"] * 33, "input"),
])
def test_a_bad_input_is_a_400_naming_it(value: Any, param: str) -> None:
    body = {} if value is None else {"input": value}
    with pytest.raises(InvalidRequest) as caught:
        mwire.parse_moderation_request(body)
    assert caught.value.param == param


def test_image_parts_say_why() -> None:
    with pytest.raises(InvalidRequest, match="image inputs are not supported"):
        mwire.parse_moderation_request({"input": [{"type": "image_url"}]})


def test_models_map_to_the_one_policy() -> None:
    for name in ("omni-moderation-latest", "text-moderation-latest", mwire.MODERATION_MODEL):
        assert mwire.parse_moderation_request({"input": "x", "model": name}).model == name
    assert mwire.parse_moderation_request({"input": "x"}).model == "omni-moderation-latest"
    with pytest.raises(ModelNotFound) as caught:
        mwire.parse_moderation_request({"input": "x", "model": "gpt-4o"})
    assert caught.value.param == "model"
    assert caught.value.message == "The model 'gpt-4o' does not exist"
    with pytest.raises(UnknownParameter):
        mwire.parse_moderation_request({"input": "x", "threshold": 1})


def test_nothing_found_is_all_false_with_every_key() -> None:
    result = mwire.moderation_result([], blocked=False, action="allow")
    keys = set(mwire.OPENAI_CATEGORIES) | set(mwire.EXTENSION_CATEGORIES)
    assert len(mwire.OPENAI_CATEGORIES) == 13
    assert set(result["categories"]) == set(result["category_scores"]) == keys
    assert set(result["category_applied_input_types"]) == keys
    assert not result["flagged"] and not any(result["categories"].values())
    assert all(v == ["text"] for v in result["category_applied_input_types"].values())


def test_chorusline_categories_map_to_openais() -> None:
    result = mwire.moderation_result([Finding("weapons", 1.0, True)], True, "block")
    hits = {k for k, v in result["categories"].items() if v}
    assert hits == {"illicit", "illicit/violent"} and result["flagged"]
    assert result["category_scores"]["illicit"] == 1.0 and result["action"] == "block"
    for category, keys in [("drugs", {"illicit"}),
                           ("self_harm", {"self-harm", "self-harm/intent"}),
                           ("sexual_minors", {"sexual", "sexual/minors"})]:
        found = mwire.moderation_result([Finding(category, 1.0, True)], True, "block")
        assert {k for k, v in found["categories"].items() if v} == keys


def test_extension_categories_are_reported_without_flagging() -> None:
    result = mwire.moderation_result([Finding("pii", 1.0, True)], False, "redact")
    assert result["categories"]["pii"] and not result["flagged"]
    assert result["action"] == "redact"
    # A stricter policy that blocks PII flags it: the chat path would refuse the text.
    assert mwire.moderation_result([Finding("pii", 1.0, True)], True, "block")["flagged"]


def test_a_finding_the_policy_allows_scores_but_is_not_a_category() -> None:
    result = mwire.moderation_result([Finding("hate", 0.9, False)], False, "allow")
    assert not result["categories"]["hate"] and result["category_scores"]["hate"] == 0.9
    custom = mwire.moderation_result([Finding("spam", 0.7, True)], False, "allow")
    assert custom["categories"]["spam"] and not custom["flagged"]


def test_the_response_names_chorusline() -> None:
    body = mwire.moderation_response("modr-1", [])
    assert body == {"id": "modr-1", "model": mwire.MODERATION_MODEL, "results": []}
