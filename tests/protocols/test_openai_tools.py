"""The tool and structured-output fields of a chat body: every fault a 400 naming it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chorusline.protocols import (
    Grammar,
    InvalidRequest,
    ToolChoice,
    UnknownParameter,
    openai as wire,
)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


def refused(fields: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        wire.parse_chat_request(fields)
    return caught.value


def test_tools_history_and_choice_are_parsed() -> None:
    parsed = wire.parse_chat_request(body(
        tools=[WEATHER], tool_choice="required", parallel_tool_calls=False,
        messages=[{"role": "user", "content": "weather?"},
                  {"role": "assistant", "content": None, "tool_calls": [CALL]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]))
    assert parsed.tools[0].name == "get_weather"
    assert parsed.tools[0].parameters["required"] == ["city"]
    assert parsed.tool_choice == ToolChoice("required")
    assert parsed.parallel_tool_calls is False
    assistant, tool = parsed.messages[1], parsed.messages[2]
    assert assistant.tool_calls[0].name == "get_weather"
    assert json.loads(assistant.tool_calls[0].arguments) == {"city": "Paris"}
    assert (tool.role, tool.tool_call_id, tool.name, tool.content) == (
        "tool", "call_1", "get_weather", "sunny")


def test_tool_choice_defaults_to_auto_with_tools_and_none_without() -> None:
    assert wire.parse_chat_request(body(tools=[WEATHER])).tool_choice.mode == "auto"
    assert wire.parse_chat_request(body()).tool_choice.mode == "none"
    named = wire.parse_chat_request(body(tools=[WEATHER], tool_choice={
        "type": "function", "function": {"name": "get_weather"}}))
    assert named.tool_choice == ToolChoice("function", "get_weather")


@pytest.mark.parametrize(("fields", "param"), [
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]},
     "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "string"}}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]},
     "tools[0].function.parameters"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice.function.name"),
    ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"parallel_tool_calls": True}, "parallel_tool_calls"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "tool", "tool_call_id": "call_9", "content": "r"}]},
     "messages[1].tool_call_id"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {**CALL, "function": {"name": "f", "arguments": "{not json"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {**CALL, "function": {"name": "f", "arguments": "[1]"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
    ({"response_format": {"type": "sound"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
     "response_format.json_schema.name"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
                                                                  "schema": "{}"}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_object"}, "tools": [WEATHER]}, "response_format"),
    ({"truncation": "sometimes"}, "truncation"),
    ({"store": True}, "store"),
])
def test_each_fault_is_a_400_naming_its_field(fields: dict[str, Any], param: str) -> None:
    error = refused(body(**fields))
    assert error.http_status == 400
    assert error.param == param


@pytest.mark.parametrize(("fields", "param"), [
    ({"foo": 1}, "foo"),
    ({"temprature": 0.5}, "temprature"),
    ({"functions": []}, "functions"),
    ({"stream_options": {"include_usage": True, "extra": 1}}, "stream_options.extra"),
    ({"messages": [{"role": "user", "content": "x", "colour": "red"}]},
     "messages[0].colour"),
    ({"tools": [{**WEATHER, "extra": 1}]}, "tools[0].extra"),
    ({"response_format": {"type": "json_object", "schema": {}}}, "response_format.schema"),
])
def test_unknown_fields_are_refused_as_openai_refuses_them(fields: dict[str, Any],
                                                           param: str) -> None:
    error = refused(body(**fields))
    assert isinstance(error, UnknownParameter)
    assert error.param == param
    assert error.message == f"Unrecognized request argument supplied: {param}"


def test_response_format_becomes_the_grammar() -> None:
    schema = {"type": "object", "properties": {"b": {"type": "integer"},
                                               "a": {"type": "string"}}}
    parsed = wire.parse_chat_request(body(response_format={
        "type": "json_schema", "json_schema": {"name": "thing", "schema": schema,
                                               "strict": True}}))
    grammar = parsed.sampling["grammar"]
    assert grammar.kind == "json_schema"
    assert list(json.loads(grammar.source)["properties"]) == ["b", "a"]  # order kept
    assert wire.parse_chat_request(body(response_format={"type": "json_object"})).sampling[
        "grammar"] == Grammar("json_object")
    assert "grammar" not in wire.parse_chat_request(body(response_format={"type": "text"})
                                                    ).sampling


def test_truncation_is_an_opt_in_extension() -> None:
    assert wire.parse_chat_request(body()).truncate is False
    assert wire.parse_chat_request(body(truncation="auto")).truncate is True


def test_bodies_carry_tool_calls_in_openai_shape() -> None:
    from chorusline.protocols import ToolCall

    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    done = wire.completion("id", 1, "m", [("", "tool_calls")], 3, 4, None, [[call]])
    message = done["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert done["choices"][0]["finish_reason"] == "tool_calls"
    first = wire.tool_call_delta(0, id="call_1", name="get_weather")
    assert first == {"index": 0, "id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": ""}}
    assert wire.tool_call_delta(0, arguments='{"ci') == {"index": 0,
                                                         "function": {"arguments": '{"ci'}}
