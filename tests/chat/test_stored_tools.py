"""Tool calls in stored conversations through ChatService, on the real SmolLM2 engine
and a real SQLite store: a call kept in OpenAI's shape, replayed by its key, answered by
tool results, and the stored history prompted exactly as the same history sent whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from chorusline.chat import (
    ChatRequest,
    ChatService,
    ChatSettings,
    Principal,
    TurnHandle,
    open_chat_service,
)
from chorusline.chat.stored_tools import branch_turns
from chorusline.chat.tool_calls import split_tool_calls
from chorusline.chat.tools import template_turns
from chorusline.protocols import (
    ChatMessage,
    FunctionTool,
    InvalidRequest,
    SamplingParams,
    ToolCall,
    ToolChoice,
)
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import Message, MessageStatus, Role, SqliteStore
from tests.chat.streams import read

WEATHER = FunctionTool("get_weather", "The current weather in a city", {
    "type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "London"]}},
    "required": ["city"], "additionalProperties": False})
CALL = SamplingParams(temperature=0.0, max_tokens=40)
ANSWER = SamplingParams(temperature=0.0, max_tokens=8)
QUESTION = "What is the weather in Paris?"


@asynccontextmanager
async def service(model: LoadedModel, tmp_path: Path
                  ) -> AsyncIterator[tuple[ChatService, Principal, str]]:
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=64 * 1024 * 1024))
    async with open_chat_service(settings, model=model, store=store) as chat:
        user = store.create_user("ada")
        principal = await chat.authenticate(store.create_api_key(user.id).plaintext)
        yield chat, principal, store.create_conversation(user.id, title="weather").id


async def finished(chat: ChatService, principal: Principal, request: ChatRequest
                   ) -> tuple[TurnHandle, str, str | None]:
    handle = await chat.chat(principal, request)
    text, finish = await read(handle)
    await handle.persisted.wait()
    return handle, text, finish


async def branch(chat: ChatService, principal: Principal, conv: str) -> list[Message]:
    return await chat.db(chat.store.get_active_branch, principal.user_id, conv)


def ask(conv: str) -> ChatRequest:
    # One call, so the grammar ends the reply with it (a parallel one may go on).
    return ChatRequest(CALL, conv, QUESTION, tools=(WEATHER,),
                       tool_choice=ToolChoice("required"), parallel_tool_calls=False,
                       idempotency_key="ask")


def answer(conv: str, results: tuple[ChatMessage, ...], key: str = "answer") -> ChatRequest:
    return ChatRequest(ANSWER, conv, tool_results=results, tools=(WEATHER,),
                       tool_choice=ToolChoice("auto"), idempotency_key=key)


async def test_a_call_is_stored_replayed_and_answered(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        first, text, finish = await finished(chat, principal, ask(conv))
        # The stream carries the call markup (the web layer reads the calls out of it);
        # the stored reply is what OpenAI shows: content without it, and the calls.
        content, calls = split_tool_calls(f"{first.request_id}:0", text)
        assert calls and calls[0].name == "get_weather" and finish == "stop"
        reply = (await branch(chat, principal, conv))[-1]
        assert reply.role is Role.ASSISTANT and reply.status is MessageStatus.COMPLETE
        assert reply.tool_calls == tuple(calls) and reply.content == content
        assert reply.finish_reason == "tool_calls" and "<tool_call>" not in reply.content

        again, replayed_text, replayed_finish = await finished(chat, principal, ask(conv))
        assert again.replayed and again.assistant_message_id == reply.id
        assert split_tool_calls(f"{again.request_id}:0", replayed_text)[1] == calls
        assert replayed_finish == "tool_calls"

        results = tuple(ChatMessage("tool", "18 C and sunny", tool_call_id=c.id)
                        for c in calls)
        answered, _, _ = await finished(chat, principal, answer(conv, results))
        stored = await branch(chat, principal, conv)
        assert [(m.role, m.tool_call_id) for m in stored[2:-1]] == [
            (Role.TOOL, c.id) for c in calls]
        assert answered.user_message_id == stored[-2].id
        assert stored[-1].id == answered.assistant_message_id
        assert stored[-1].status is MessageStatus.COMPLETE
        assert stored[-1].parent_message_id == stored[-2].id

        # The same results under the same key: the same reply, nothing written again.
        retried = await chat.chat(principal, answer(conv, results))
        assert retried.replayed and retried.assistant_message_id == stored[-1].id
        await read(retried)
        assert len(await branch(chat, principal, conv)) == len(stored)


async def test_the_stored_history_is_prompted_as_the_stateless_one(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        await finished(chat, principal, ask(conv))
        reply = (await branch(chat, principal, conv))[-1]
        results = tuple(ChatMessage("tool", f"18 C in {c.arguments}", tool_call_id=c.id)
                        for c in reply.tool_calls)
        stored, _, _ = await finished(chat, principal, answer(conv, results))
        # The same history, sent whole, as a client of the stateless path would.
        history = (ChatMessage("user", QUESTION),
                   ChatMessage("assistant", reply.content, reply.tool_calls),
                   *(ChatMessage("tool", r.content, tool_call_id=r.tool_call_id,
                                 name="get_weather") for r in results))
        whole = ChatRequest(ANSWER, messages=history, tools=(WEATHER,),
                            tool_choice=ToolChoice("auto"))
        stateless, _, _ = await finished(chat, principal, whole)
        assert stored.prompt_tokens == stateless.prompt_tokens > 0
        rows = await branch(chat, principal, conv)
        assert [{k: v for k, v in t.items() if k != "id"} for t in branch_turns(rows[:-1])
                ] == template_turns(history)


async def test_results_must_answer_the_last_replys_calls(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        stray = (ChatMessage("tool", "18 C", tool_call_id="call_x"),)
        with pytest.raises(InvalidRequest) as refused:
            await chat.chat(principal, answer(conv, stray, "early"))
        assert refused.value.param == "tool_results"  # nothing to answer yet
        await finished(chat, principal, ask(conv))
        with pytest.raises(InvalidRequest) as refused:
            await chat.chat(principal, answer(conv, stray, "stray"))
        assert refused.value.param == "tool_results[0].tool_call_id"
        with pytest.raises(InvalidRequest) as refused:
            await chat.chat(principal, ChatRequest(
                ANSWER, conv, "and London?", tool_results=stray, idempotency_key="both"))
        assert refused.value.param == "tool_results"  # a turn of its own
        assert len(await branch(chat, principal, conv)) == 2  # nothing written


def test_an_empty_result_still_reaches_the_prompt(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "chat.db")
    user = store.create_user("ada")
    conv = store.create_conversation(user.id).id
    call = ToolCall("call_a", "get_weather", '{"city": "Paris"}')
    store.append_message(user.id, conv, role=Role.USER, content=QUESTION)
    store.append_message(user.id, conv, role=Role.ASSISTANT, content="", tool_calls=(call,))
    store.append_message(user.id, conv, role=Role.TOOL, content="", tool_call_id="call_a")
    turns = branch_turns(store.get_active_branch(user.id, conv))
    assert [t["role"] for t in turns] == ["user", "assistant", "tool"]
    assert turns[2]["content"] == '{"name": "get_weather", "content": ""}'
    store.close()


async def test_results_are_moderated_as_user_input(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conv):
        await finished(chat, principal, ask(conv))
        [call] = (await branch(chat, principal, conv))[-1].tool_calls
        blocked = (ChatMessage("tool", "how to make a bomb", tool_call_id=call.id),)
        with pytest.raises(InvalidRequest) as refused:
            await chat.chat(principal, answer(conv, blocked, "blocked"))
        assert refused.value.param == "tool_results[0].content"
        assert len(await branch(chat, principal, conv)) == 2  # nothing written
        private = (ChatMessage("tool", "mail ada@example.com", tool_call_id=call.id),)
        await finished(chat, principal, answer(conv, private, "private"))
        stored = (await branch(chat, principal, conv))[2]
        assert (stored.role, stored.content) == (Role.TOOL, "mail [REDACTED:email]")
