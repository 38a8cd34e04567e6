"""Tool calls in stored conversations over real HTTP with the real model: a call kept as
OpenAI shapes it, results posted back, the answer, export/share/branch, and each 400."""

from __future__ import annotations

import json
from typing import Any

from tests.web.conftest import MODEL, Web, api

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Paris", "London"]}},
        "required": ["city"], "additionalProperties": False}}}
CALL = {"tools": [WEATHER], "tool_choice": "required", "max_tokens": 40, "temperature": 0}
ANSWER = {"tools": [WEATHER], "tool_choice": "none", "max_tokens": 8, "temperature": 0}


async def conversation(web: Web) -> str:
    created = await api(web, "POST", "/conversations", json={"title": "weather"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def turn(web: Web, cid: str, body: dict[str, Any], key: str | None = None
               ) -> dict[str, Any]:
    sent = await api(web, "POST", f"/conversations/{cid}/messages", json=body,
                     headers={"Idempotency-Key": key} if key else None)
    assert sent.status_code == 200, sent.text
    reply: dict[str, Any] = sent.json()
    return reply


async def error(web: Web, cid: str, body: dict[str, Any]) -> dict[str, Any]:
    refused = await api(web, "POST", f"/conversations/{cid}/messages", json=body)
    assert refused.status_code == 400, refused.text
    found: dict[str, Any] = refused.json()["error"]
    return found


async def test_a_call_is_kept_answered_and_carried_everywhere(web: Web) -> None:
    cid = await conversation(web)
    called = await turn(web, cid, {"content": "What is the weather in Paris?", **CALL}, "ask")
    assert called["finish_reason"] == "tool_calls", called
    [call] = called["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"])["city"] in ("Paris", "London")
    assert "<tool_call>" not in called["content"]
    # A retry replays the same call, under the same id.
    again = await turn(web, cid, {"content": "What is the weather in Paris?", **CALL}, "ask")
    assert again["replayed"] is True and again["tool_calls"] == called["tool_calls"]

    answered = await turn(web, cid, {
        "tool_results": [{"tool_call_id": call["id"], "content": "18 C and sunny"}],
        **ANSWER}, "result")
    assert answered["role"] == "assistant" and answered["status"] == "complete"
    assert "tool_calls" not in answered

    listed = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"]
    assert [(m["role"], m.get("tool_call_id")) for m in listed] == [
        ("user", None), ("assistant", None), ("tool", call["id"]), ("assistant", None)]
    assert listed[1]["tool_calls"] == called["tool_calls"]
    assert listed[2]["content"] == "18 C and sunny"

    dump = (await api(web, "GET", f"/conversations/{cid}/export")).json()
    assert dump["messages"][1]["tool_calls"] == called["tool_calls"]
    assert dump["messages"][2]["tool_call_id"] == call["id"]
    token = (await api(web, "POST", f"/conversations/{cid}/share")).json()["token"]
    shared = (await api(web, "GET", f"/shared/{token}", auth=False)).json()["messages"]
    assert shared[1]["tool_calls"] == called["tool_calls"]
    assert shared[2]["tool_call_id"] == call["id"]
    branched = await api(web, "POST", f"/conversations/{cid}/branch",
                         json={"message_id": listed[2]["id"]})
    assert branched.status_code == 201, branched.text
    copied = (await api(web, "GET", f"/conversations/{branched.json()['id']}/messages")
              ).json()["data"]
    assert copied[1]["tool_calls"] == called["tool_calls"]
    assert copied[2]["tool_call_id"] == call["id"]


async def test_the_chat_route_takes_the_results_as_trailing_tool_messages(web: Web) -> None:
    cid = await conversation(web)
    ask = [{"role": "user", "content": "Weather in London?"}]
    first = await api(web, "POST", "/chat/completions", json={
        "model": MODEL, "conversation_id": cid, "messages": ask, **CALL})
    assert first.status_code == 200, first.text
    choice = first.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    history = [*ask, choice["message"],
               {"role": "tool", "tool_call_id": call["id"], "content": "rain"}]
    second = await api(web, "POST", "/chat/completions", json={
        "model": MODEL, "conversation_id": cid, "messages": history, **ANSWER})
    assert second.status_code == 200, second.text
    assert second.json()["choices"][0]["message"]["role"] == "assistant"
    stored = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[1]["tool_calls"] == [call]


async def test_bad_tool_results_are_400s_naming_the_field(web: Web) -> None:
    cid = await conversation(web)
    nothing_to_answer = await error(web, cid, {
        "tool_results": [{"tool_call_id": "call_x", "content": "18 C"}], **ANSWER})
    assert nothing_to_answer["param"] == "tool_results"
    called = await turn(web, cid, {"content": "Weather in Paris?", **CALL})
    [call] = called["tool_calls"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tool_results": [{"tool_call_id": "call_x", "content": "18 C"}]},
         "tool_results[0].tool_call_id"),
        ({"tool_results": [{"tool_call_id": call["id"], "content": "a"},
                           {"tool_call_id": call["id"], "content": "b"}]},
         "tool_results[1].tool_call_id"),
        ({"tool_results": [{"tool_call_id": call["id"], "content": "a", "name": "x"}]},
         "tool_results[0].name"),
        ({"tool_results": [{"content": "a"}]}, "tool_results[0].tool_call_id"),
        ({"tool_results": []}, "tool_results"),
        ({"tool_results": [{"tool_call_id": call["id"], "content": "a"}], "content": "hi"},
         "tool_results"),
    ]
    for body, param in cases:
        found = await error(web, cid, {**body, **ANSWER})
        assert found["param"] == param, (body, found)
    listed = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"]
    assert [m["role"] for m in listed] == ["user", "assistant"]  # nothing was written


async def test_the_chat_route_names_bad_results_after_its_messages(web: Web) -> None:
    cid = await conversation(web)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = await api(web, "POST", "/chat/completions", json={
        "model": MODEL, "conversation_id": cid, "messages": ask, **CALL})
    assert first.status_code == 200, first.text
    message = first.json()["choices"][0]["message"]
    [call] = message["tool_calls"]
    result = {"role": "tool", "tool_call_id": call["id"], "content": "rain"}
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([{**result, "tool_call_id": "call_x"}], "messages[2].tool_call_id"),
        ([result, result], "messages[3].tool_call_id"),  # the call answered twice
        ([], "messages"),  # the call left unanswered: the last message is the assistant's
    ]
    for results, param in cases:
        refused = await api(web, "POST", "/chat/completions", json={
            "model": MODEL, "conversation_id": cid, "messages": [*ask, message, *results],
            **ANSWER})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param, (results, refused.text)
    stored = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"]
    assert [m["role"] for m in stored] == ["user", "assistant"]  # nothing was written
