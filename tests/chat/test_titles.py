"""Automatic titles on the real engine and store: an untitled conversation is named
after its first reply by the model, or from the user's words when the model cannot answer
in time; a title the owner gave is never replaced."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from chorusline.chat import (
    ChatRequest,
    ChatService,
    ChatSettings,
    Principal,
    open_chat_service,
    titles,
)
from chorusline.protocols import SamplingParams
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import SqliteStore
from tests.chat.streams import read

QUESTION = "What is the capital of France, and why is it famous?"


@asynccontextmanager
async def service(model: LoadedModel, tmp_path: Path, **settings: Any
                  ) -> AsyncIterator[tuple[ChatService, Principal]]:
    store = SqliteStore(tmp_path / "chat.db")
    config = ChatSettings(engine=EngineConfig(kv_cache_bytes=32 * 1024 * 1024), **settings)
    async with open_chat_service(config, model=model, store=store) as chat:
        user = store.create_user("ada")
        yield chat, await chat.authenticate(
            store.create_api_key(user.id, tier="enterprise").plaintext)


async def first_turn(chat: ChatService, principal: Principal, title: str = "") -> str:
    conversation = await chat.conversations.create(principal, title=title)
    handle = await chat.chat(principal, ChatRequest(
        SamplingParams(temperature=0.0, max_tokens=4), conversation.id, QUESTION))
    await read(handle)
    await handle.persisted.wait()
    return conversation.id


async def titled(chat: ChatService) -> dict[str, Any]:
    """The next ``conversation_titled`` event (a hang guard bounds the wait)."""
    subscription = chat.system.recorder.subscribe()
    try:
        with trio.fail_after(120):
            while True:
                await subscription.wait()
                for kind, event in subscription.take()[1]:
                    if kind == "event" and event.kind == "conversation_titled":
                        return dict(event.detail)
    finally:
        subscription.close()


async def test_the_model_names_an_untitled_conversation_after_its_first_reply(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    async with service(chat_model, tmp_path) as (chat, principal):
        events: list[dict[str, Any]] = []

        async def watch() -> None:
            events.append(await titled(chat))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await trio.testing.wait_all_tasks_blocked()
            cid = await first_turn(chat, principal)
        stored = await chat.conversations.get(principal, cid)
    (event,) = events
    assert event["conversation_id"] == cid and event["source"] == "model"
    title = event["title"]
    assert stored.title == title
    assert 0 < len(title) <= titles.MAX_TITLE and "\n" not in title
    assert title != titles.derived_title(QUESTION)


async def test_a_busy_engine_gets_the_users_words(chat_model: LoadedModel, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(titles, "TITLE_DEADLINE_S", 0.0)  # no slot in time: a timeout
    async with service(chat_model, tmp_path) as (chat, principal), trio.open_nursery() as n:
        events: list[dict[str, Any]] = []

        async def watch() -> None:
            events.append(await titled(chat))

        n.start_soon(watch)
        await trio.testing.wait_all_tasks_blocked()
        cid = await first_turn(chat, principal)
    (event,) = events
    assert event["source"] == "derived" and event["conversation_id"] == cid
    assert event["title"] == QUESTION  # short enough to be the title as it is


async def test_a_rename_before_the_title_is_ready_wins(
        chat_model: LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked, answer, tried = trio.Event(), trio.Event(), threading.Event()
    outcomes: list[bool] = []

    async def slow_title(*_args: Any) -> str:
        asked.set()
        await answer.wait()
        return "The model's title"

    monkeypatch.setattr(titles, "generated_title", slow_title)
    async with service(chat_model, tmp_path) as (chat, principal):
        store, original = chat.store, chat.store.title_if_untitled

        def recorded(*args: Any) -> bool:
            outcomes.append(original(*args))
            tried.set()
            return outcomes[-1]

        monkeypatch.setattr(store, "title_if_untitled", recorded)
        cid = await first_turn(chat, principal)
        with trio.fail_after(60):
            await asked.wait()
        await chat.conversations.rename(principal, cid, "Mine")
        answer.set()
        await trio.to_thread.run_sync(tried.wait, 60)
        assert outcomes == [False]
        assert (await chat.conversations.get(principal, cid)).title == "Mine"


async def test_titles_can_be_turned_off(chat_model: LoadedModel, tmp_path: Path) -> None:
    async with service(chat_model, tmp_path, auto_titles=False) as (chat, principal):
        cid = await first_turn(chat, principal)
        await trio.testing.wait_all_tasks_blocked()
        assert (await chat.conversations.get(principal, cid)).title == ""
        assert "conversation_titled" not in [e.kind for e in chat.system.recorder.events]


def test_derived_titles_and_cleaned_answers() -> None:
    assert titles.derived_title("  Hello\n  there ") == "Hello there"
    long = "word " * 30
    derived = titles.derived_title(long)
    assert len(derived) <= titles.MAX_TITLE and derived.endswith("…")
    assert titles.cleaned('Title: "Paris, the City of Light."\nmore') == \
        "Paris, the City of Light"
    assert titles.cleaned("## **A trip**") == "A trip"
    assert titles.cleaned("\n\n") == ""
