"""The official ``openai`` SDK, unmodified, on tool calls and structured outputs over a
real socket: what an application written for OpenAI does with ``tools``, ``tool_choice``
and ``response_format``, and the typed errors it gets for requests that do not fit.

Every constrained reply here is short by construction (an enum argument, a two-field
object), so a few dozen tokens finish it on the suite's CPU.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Literal

import jsonschema
import openai
import pytest
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from pydantic import BaseModel, ConfigDict, Field

from tests.web.conftest import MODEL, Web
from tests.web.test_openai_sdk import client, in_thread

CITY = {"type": "string", "enum": ["Paris", "London", "Tokyo"]}
WEATHER: ChatCompletionToolParam = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": CITY}, "required": ["city"],
                   "additionalProperties": False}}}
TIME: ChatCompletionToolParam = {"type": "function", "function": {
    "name": "get_time", "description": "The local time in a city.",
    "parameters": {"type": "object", "properties": {"city": CITY,
                                                    "hour24": {"type": "boolean"}},
                   "required": ["city", "hour24"], "additionalProperties": False}}}
SCHEMAS = {t["function"]["name"]: t["function"].get("parameters") for t in (WEATHER, TIME)}
ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather in Paris?"}]
#: Room for one call of either tool (about 30 tokens) and its closing tag.
CALL_TOKENS = 64


class GetWeather(BaseModel):
    """The current weather in a city."""

    model_config = ConfigDict(extra="forbid")
    city: Literal["Paris", "London", "Tokyo"] = Field(description="The city")


class CityFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=20)
    country: str = Field(max_length=20)


def function_calls(message: Any) -> list[ChatCompletionMessageFunctionToolCall]:
    calls = message.tool_calls or []
    assert all(isinstance(c, ChatCompletionMessageFunctionToolCall) for c in calls)
    return list(calls)


def check_call(call: ChatCompletionMessageFunctionToolCall, name: str | None = None
               ) -> dict[str, Any]:
    """A call as OpenAI shapes it, whose arguments parse and fit its function's schema."""
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name in SCHEMAS and (name is None or call.function.name == name)
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMAS[call.function.name])
    assert isinstance(arguments, dict)
    return arguments


async def test_required_and_named_tool_choices_give_parsed_calls(web: Web) -> None:
    sdk = client(web)
    ask = partial(sdk.chat.completions.create, model=MODEL, messages=ASK,
                  tools=[WEATHER, TIME], temperature=0, max_tokens=CALL_TOKENS)
    required = await in_thread(partial(ask, tool_choice="required",
                                       parallel_tool_calls=False))
    named = await in_thread(partial(ask, tool_choice={"type": "function",
                                                      "function": {"name": "get_time"}}))
    for reply, name in ((required, None), (named, "get_time")):
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        assert choice.message.content is None  # the call markup never leaks into content
        calls = function_calls(choice.message)
        assert calls and all(check_call(call, name) for call in calls)
        assert len({call.id for call in calls}) == len(calls)
    assert len(function_calls(required.choices[0].message)) == 1  # parallel_tool_calls
    time_args = check_call(function_calls(named.choices[0].message)[0])
    assert set(time_args) == {"city", "hour24"}


async def test_a_tool_result_goes_back_and_the_model_answers_from_it(web: Web) -> None:
    sdk = client(web)

    def round_trip() -> tuple[Any, Any]:
        first = sdk.chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required",
            parallel_tool_calls=False, temperature=0, max_tokens=CALL_TOKENS)
        message = first.choices[0].message
        (call,) = function_calls(message)
        history: list[Any] = [*ASK, message,  # the SDK's own message object, sent back
                              {"role": "tool", "tool_call_id": call.id,
                               "content": "Sunny and 21 degrees."}]
        final = sdk.chat.completions.create(
            model=MODEL, messages=history, tools=[WEATHER], tool_choice="none",
            temperature=0, max_tokens=24)
        return first, final

    first, final = await in_thread(round_trip)
    assert check_call(function_calls(first.choices[0].message)[0]) == {"city": "Paris"}
    choice = final.choices[0]
    assert choice.finish_reason in ("stop", "length") and not choice.message.tool_calls
    # The answer uses the tool's result, which only the tool message carried.
    assert "21" in (choice.message.content or ""), choice.message.content


async def test_streamed_call_deltas_reassemble_into_the_same_call(web: Web) -> None:
    sdk = client(web)
    fields: dict[str, Any] = {
        "model": MODEL, "messages": ASK, "tools": [WEATHER], "tool_choice": "required",
        "parallel_tool_calls": False, "temperature": 0, "max_tokens": CALL_TOKENS}
    whole = await in_thread(lambda: sdk.chat.completions.create(**fields))
    chunks: list[ChatCompletionChunk] = await in_thread(
        lambda: list(sdk.chat.completions.create(**fields, stream=True)))
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas and all(d.index == 0 for d in deltas)
    head, rest = deltas[0], deltas[1:]
    assert head.id is not None and head.id.startswith("call_") and head.type == "function"
    assert head.function is not None and head.function.name == "get_weather"
    assert all(d.id is None and (d.function is None or d.function.name is None)
               for d in rest)
    fragments = [d.function.arguments or "" for d in deltas if d.function is not None]
    assert len([f for f in fragments if f]) >= 2, fragments  # arguments in pieces
    expected = function_calls(whole.choices[0].message)[0].function.arguments
    assert "".join(fragments) == expected and json.loads(expected) == {"city": "Paris"}
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks
                if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


async def test_the_sdks_stream_helper_accumulates_a_parsed_call(web: Web) -> None:
    """``chat.completions.stream`` merges the deltas itself (by index) and parses the
    finished arguments into the tool's pydantic model."""
    sdk = client(web)

    def run() -> tuple[list[str], Any]:
        with sdk.chat.completions.stream(
                model=MODEL, messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)],
                tool_choice="required", parallel_tool_calls=False, temperature=0,
                max_tokens=CALL_TOKENS) as stream:
            kinds: list[str] = [event.type for event in stream]
            return kinds, stream.get_final_completion()

    kinds, final = await in_thread(run)
    assert kinds.count("tool_calls.function.arguments.done") == 1
    assert kinds.count("tool_calls.function.arguments.delta") >= 2
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="Paris")


async def test_parse_gives_validated_pydantic_objects(web: Web) -> None:
    """``chat.completions.parse`` (the SDK's structured-output helper; ``beta`` is its
    old alias) sends a strict ``json_schema`` or strict tools and validates the reply
    into the model itself: a reply off the schema would raise in the SDK."""
    sdk = client(web)
    facts = await in_thread(lambda: sdk.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Paris: name and country."}],
        response_format=CityFacts, temperature=0, max_tokens=40))
    message = facts.choices[0].message
    assert facts.choices[0].finish_reason == "stop"
    assert isinstance(message.parsed, CityFacts) and message.parsed.name
    assert CityFacts.model_validate_json(message.content or "") == message.parsed
    tool = await in_thread(lambda: sdk.chat.completions.parse(
        model=MODEL, messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice="required", parallel_tool_calls=False, temperature=0,
        max_tokens=CALL_TOKENS))
    (call,) = tool.choices[0].message.tool_calls or []
    assert call.function.parsed_arguments == GetWeather(city="Paris")


async def test_json_object_output_parses(web: Web) -> None:
    reply = await in_thread(lambda: client(web).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Reply in JSON: what is the "
                                                           "capital of France?"}],
        response_format={"type": "json_object"}, temperature=0, max_tokens=40))
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice
    assert isinstance(json.loads(choice.message.content or ""), dict)


BAD_REQUESTS: list[tuple[dict[str, Any], str, str | None]] = [
    ({"tools": [{"type": "function", "function": {"name": "not a name"}}]},
     "tools[0].function.name", None),
    ({"tools": [WEATHER, {"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {
            "xs": {"type": "array", "uniqueItems": True}}}}}]},
     "tools[1].function.parameters", "invalid_grammar"),
    ({"tool_choice": "required"}, "tool_choice", None),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice.function.name", None),
    ({"messages": [*ASK, {"role": "tool", "tool_call_id": "call_x", "content": "r"}]},
     "messages[1].tool_call_id", None),
    ({"extra_body": {"temprature": 1}}, "temprature", "unknown_parameter"),
    ({"extra_body": {"tools": [{**WEATHER, "colour": "red"}]}}, "tools[0].colour",
     "unknown_parameter"),
    ({"messages": [{"role": "user", "content": "hello " * 3000}]}, "messages",
     "context_length_exceeded"),
]


@pytest.mark.parametrize(("fields", "param", "code"), BAD_REQUESTS,
                         ids=[p for _f, p, _c in BAD_REQUESTS])
async def test_requests_that_do_not_fit_raise_bad_request(
        web: Web, fields: dict[str, Any], param: str, code: str | None) -> None:
    body: dict[str, Any] = {"messages": ASK, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        await in_thread(partial(client(web).chat.completions.create, model=MODEL,
                                max_tokens=4, **body))
    error = caught.value
    assert error.status_code == 400 and (error.param, error.code) == (param, code)
    assert isinstance(error.body, dict) and error.body["type"] == "invalid_request_error"
