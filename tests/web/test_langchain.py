"""LangChain's ``ChatOpenAI`` (``langchain-openai``, unmodified) pointed at a real server:
plain and streamed replies, tools bound and called, a tool round trip, and structured
output both ways LangChain asks for it.

LangChain's clients block (sync httpx) or run on asyncio (async httpx), so each call runs
in a worker thread while the server keeps serving in the test's trio run; the async one
gets its own asyncio loop there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import pytest
import trio
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tests.web.conftest import MODEL, Web

T = TypeVar("T")
QUESTION = "What is the capital of France?"
WEATHER_QUESTION = "What is the weather in Paris?"
City = Literal["Paris", "London", "Tokyo"]


async def in_thread(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


def chat(web: Web, max_tokens: int = 12, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=web.base_url, api_key=SecretStr(web.key),
                      temperature=0, max_completion_tokens=max_tokens, max_retries=0,
                      timeout=120, **options)


def merged(chunks: list[Any]) -> AIMessageChunk:
    """A stream's chunks added up, as LangChain's own streaming consumers do."""
    assert chunks and all(isinstance(c, AIMessageChunk) for c in chunks)
    return add_ai_message_chunks(chunks[0], *chunks[1:])


class GetWeather(BaseModel):
    """The current weather in a city."""

    model_config = ConfigDict(extra="forbid")
    city: City = Field(description="The city")


class GetTime(BaseModel):
    """The local time in a city."""

    model_config = ConfigDict(extra="forbid")
    city: City
    hour24: bool


class CityFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=20)
    country: str = Field(max_length=20)


async def test_invoke_and_stream_give_the_same_reply(web: Web) -> None:
    llm = chat(web, stream_usage=True)
    whole = await in_thread(lambda: llm.invoke(QUESTION))
    chunks = await in_thread(lambda: list(llm.stream(QUESTION)))
    assert isinstance(whole, AIMessage) and "Paris" in whole.text
    assert whole.response_metadata["finish_reason"] in ("stop", "length")
    assert whole.response_metadata["model_name"] == MODEL
    usage = whole.usage_metadata
    assert usage is not None and 0 < usage["output_tokens"] <= 12
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert len(chunks) > 2
    streamed = merged(chunks)
    assert streamed.text == whole.text
    assert streamed.usage_metadata == usage  # the final usage chunk, as OpenAI sends it


async def test_bound_tools_come_back_as_parsed_tool_calls(web: Web) -> None:
    tools: dict[str, type[BaseModel]] = {"GetWeather": GetWeather, "GetTime": GetTime}
    required = chat(web, 64).bind_tools(list(tools.values()), tool_choice="required",
                                        strict=True, parallel_tool_calls=False)
    named = chat(web, 64).bind_tools(list(tools.values()), tool_choice="GetTime",
                                     strict=True)

    def ask(llm: Runnable[LanguageModelInput, Any]) -> Callable[[], Any]:
        return lambda: llm.invoke(WEATHER_QUESTION)

    for llm, name in ((required, None), (named, "GetTime")):
        reply = await in_thread(ask(llm))
        assert isinstance(reply, AIMessage) and not reply.invalid_tool_calls
        assert reply.response_metadata["finish_reason"] == "tool_calls"
        assert reply.tool_calls and reply.content == ""
        for call in reply.tool_calls:
            assert name is None or call["name"] == name
            tools[call["name"]].model_validate(call["args"])  # the args fit its schema
            assert call["id"] is not None and call["id"].startswith("call_")
    # LangChain reassembles streamed tool-call chunks into the same call.
    chunks = await in_thread(lambda: list(named.stream(WEATHER_QUESTION)))
    streamed = merged(chunks)
    assert len(streamed.tool_calls) >= 1
    assert streamed.tool_calls[0]["name"] == "GetTime"
    GetTime.model_validate(streamed.tool_calls[0]["args"])


async def test_a_tool_message_round_trip(web: Web) -> None:
    caller = chat(web, 64).bind_tools([GetWeather], tool_choice="required", strict=True,
                                      parallel_tool_calls=False)
    answerer = chat(web, 24).bind_tools([GetWeather], tool_choice="none")

    def round_trip() -> tuple[AIMessage, Any]:
        question = HumanMessage(WEATHER_QUESTION)
        called = caller.invoke([question])
        assert isinstance(called, AIMessage)
        (call,) = called.tool_calls
        result = ToolMessage("Sunny and 21 degrees.", tool_call_id=call["id"])
        return called, answerer.invoke([question, called, result])

    called, answer = await in_thread(round_trip)
    assert called.tool_calls[0]["args"] == {"city": "Paris"}
    assert isinstance(answer, AIMessage) and not answer.tool_calls
    assert "21" in answer.text, answer.text  # the answer uses the tool's result


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
async def test_structured_output_is_a_validated_instance(web: Web, method: str) -> None:
    llm = chat(web, 40).with_structured_output(CityFacts, method=method,  # type: ignore[arg-type]
                                               include_raw=True)
    out = await in_thread(lambda: llm.invoke("Paris: name and country."))
    assert isinstance(out, dict) and out["parsing_error"] is None
    parsed, raw = out["parsed"], out["raw"]
    assert isinstance(parsed, CityFacts) and parsed.name
    assert isinstance(raw, AIMessage)
    if method == "function_calling":  # the schema went as a tool, forced by name
        assert [c["name"] for c in raw.tool_calls] == ["CityFacts"]
        assert CityFacts.model_validate(raw.tool_calls[0]["args"]) == parsed
    else:  # the schema went as response_format
        assert CityFacts.model_validate_json(raw.text) == parsed


async def test_the_async_client_streams_on_its_own_event_loop(web: Web) -> None:
    llm = chat(web, 8)

    async def ask() -> tuple[AIMessage, list[AIMessageChunk]]:
        whole = await llm.ainvoke(QUESTION)
        assert isinstance(whole, AIMessage)
        return whole, [chunk async for chunk in llm.astream(QUESTION)]

    whole, chunks = await in_thread(lambda: asyncio.run(ask()))
    assert whole.text and "".join(c.text for c in chunks) == whole.text
