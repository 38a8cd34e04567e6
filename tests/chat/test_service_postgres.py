"""The whole chat service on PostgreSQL: a round trip, and connections dropped between turns.

Each test gets a throw-away database (``service_postgres`` in ``conftest.py``). An
unreachable server fails the tests loudly, as the store tests do; nothing is skipped.
The server itself is never restarted (other tests share it): the outage is staged by
terminating every backend of the test's own database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest
import trio
from psycopg import sql

from chorusline.chat import (
    ChatRequest,
    ChatService,
    ChatSettings,
    Principal,
    TurnHandle,
    open_chat_service,
)
from chorusline.protocols import SamplingParams, StoreUnavailable
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import Message, MessageStatus, Role
from chorusline.store.postgres_store import PostgresStore
from tests.services import POSTGRES_URL

GREEDY = SamplingParams(temperature=0.0, max_tokens=12)


@asynccontextmanager
async def service(model: LoadedModel, conninfo: str, pool_timeout: float = 10.0
                  ) -> AsyncIterator[tuple[ChatService, PostgresStore, Principal, str]]:
    store = await trio.to_thread.run_sync(
        lambda: PostgresStore(conninfo, max_size=8, timeout=pool_timeout))
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=64 * 1024 * 1024))
    async with open_chat_service(settings, model=model, store=store) as chat:
        user = await chat.db(store.create_user, "ada")
        issued = await chat.db(store.create_api_key, user.id, tier="enterprise")
        principal = await chat.authenticate(issued.plaintext)
        conversation = await chat.db(store.create_conversation, user.id, title="t")
        yield chat, store, principal, conversation.id


async def turn(chat: ChatService, principal: Principal, conv: str, content: str
               ) -> tuple[TurnHandle, str]:
    with trio.fail_after(300):  # a hang guard, not a speed bound
        handle = await chat.chat(principal, ChatRequest(GREEDY, conv, content))
        text, finish = "", None
        async for chunks in handle.stream:
            for chunk in chunks:
                text += chunk.text
                finish = chunk.finish_reason or finish
        await handle.persisted.wait()
    assert finish in ("stop", "length")
    return handle, text


def terminate_backends(dbname: str) -> list[bool]:
    """Kill every connection to ``dbname`` from a separate connection. The two-argument
    ``pg_terminate_backend`` waits (up to 5 s) until each backend has exited, so the
    next turn meets dead sockets, not dying ones."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    return [bool(row[0]) for row in rows]


async def test_a_turn_round_trip_on_postgres(
    chat_model: LoadedModel, service_postgres: tuple[str, str]
) -> None:
    conninfo, _dbname = service_postgres
    async with service(chat_model, conninfo) as (chat, store, principal, conv):
        handle, text = await turn(chat, principal, conv, "What is the capital of France?")
        assert text
        messages = await chat.db(store.get_active_branch, principal.user_id, conv)
        assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT]
        assert [m.id for m in messages] == [handle.user_message_id, handle.assistant_message_id]
        assert messages[0].content == "What is the capital of France?"
        reply = messages[1]
        assert reply.status is MessageStatus.COMPLETE and reply.content == text
        assert reply.completion_tokens and reply.prompt_tokens
        usage = await chat.db(store.list_usage, user_id=principal.user_id)
        assert len(usage) == 1 and usage[0].completion_tokens == reply.completion_tokens
    # Durable: a fresh store on the same database sees the turn.
    reopened = await trio.to_thread.run_sync(PostgresStore, conninfo)
    try:
        tree = await trio.to_thread.run_sync(reopened.get_message_tree, principal.user_id, conv)
        assert [(m.seq, m.status) for m in tree] == [
            (1, MessageStatus.COMPLETE), (2, MessageStatus.COMPLETE)
        ]
    finally:
        await trio.to_thread.run_sync(reopened.close)


async def test_connections_dropped_between_turns_lose_nothing(
    chat_model: LoadedModel, service_postgres: tuple[str, str]
) -> None:
    conninfo, dbname = service_postgres
    async with service(chat_model, conninfo) as (chat, store, principal, conv):
        first, first_text = await turn(chat, principal, conv, "Name a colour.")
        killed = await trio.to_thread.run_sync(terminate_backends, dbname)
        assert killed and all(killed)  # the pool's connections were really cut
        second, second_text = await turn(chat, principal, conv, "Name a fruit.")
        tree = await chat.db(store.get_message_tree, principal.user_id, conv)
        assert [m.seq for m in tree] == [1, 2, 3, 4]
        assert all(m.status is MessageStatus.COMPLETE for m in tree)
        by_id = {m.id: m for m in tree}
        assert by_id[first.user_message_id or ""].content == "Name a colour."
        assert by_id[first.assistant_message_id or ""].content == first_text
        assert by_id[second.user_message_id or ""].content == "Name a fruit."
        assert by_id[second.assistant_message_id or ""].content == second_text
        usage = await chat.db(store.list_usage, user_id=principal.user_id)
        assert len(usage) == 2


async def finalised(chat: ChatService, store: PostgresStore, principal: Principal, conv: str,
                    message_id: str) -> Message:
    """The message once it is no longer an open draft. The condition lives in another
    process (the database), so there is no event to wait on: poll it."""
    while True:
        try:
            message = await chat.db(store.get_message, principal.user_id, conv, message_id)
        except StoreUnavailable:  # the pool is still reconnecting
            message = None
        if message is not None and not message.is_open_draft:
            return message
        await trio.sleep(0.2)


def allow_connections(dbname: str, allowed: bool) -> None:
    """Take one database down for new connections (or bring it back): an outage of that
    database alone, since the server is shared with the rest of the suite."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
            sql.Identifier(dbname), sql.SQL("true" if allowed else "false")))


async def test_a_store_outage_longer_than_the_pool_timeout_ends_the_stream_in_flight(
    chat_model: LoadedModel, service_postgres: tuple[str, str]
) -> None:
    conninfo, dbname = service_postgres
    async with service(chat_model, conninfo, pool_timeout=2.0) as (chat, store, principal,
                                                                  conv):
        params = SamplingParams(temperature=0.0, max_tokens=48, ignore_eos=True)
        handle = await chat.chat(principal, ChatRequest(params, conv, "Tell me a story."))
        assert await handle.stream.next()
        await trio.to_thread.run_sync(allow_connections, dbname, False)
        try:
            await trio.to_thread.run_sync(terminate_backends, dbname)
            with trio.fail_after(300), pytest.raises(StoreUnavailable, match="not be saved"):
                # The stream must end, with the reply or an error, whatever the store does.
                async for _chunks in handle.stream:
                    pass
        finally:
            await trio.to_thread.run_sync(allow_connections, dbname, True)
        with trio.fail_after(300):  # the reply reaches the store once it is back
            reply = await finalised(chat, store, principal, conv,
                                    handle.assistant_message_id or "")
        assert reply.status is MessageStatus.INCOMPLETE and reply.finish_reason == "error"
        assert reply.content and reply.completion_tokens == 48
