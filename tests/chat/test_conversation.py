"""The conversation actor's durability rules, on both stores (real model, real stores).

Each test here is a regression test for a defect an outside probe found: a retry after a
failure before the answer was refused forever, and a replayed truncated reply claimed
``finish_reason: "stop"``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
import trio

from chorusline.chat import ChatRequest, ChatService, ChatSettings, Principal, open_chat_service
from chorusline.protocols import SamplingParams, ServiceUnavailable
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import MessageStatus, PostgresStore, Role, SqliteStore, Store
from tests.chat.streams import read
from tests.cli_server import start_server

GREEDY = SamplingParams(temperature=0.0, max_tokens=8)
SCHEDULER = "/chat/engines/smollm2-135m-instruct/driver"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.db'}"
    conninfo: str = request.getfixturevalue("service_postgres")[0]
    return conninfo


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    return PostgresStore(url, max_size=4)


@asynccontextmanager
async def served(model: LoadedModel, url: str
                 ) -> AsyncIterator[tuple[ChatService, Store, Principal, str]]:
    store = open_store(url)
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=64 * 1024 * 1024))
    async with open_chat_service(settings, model=model, store=store) as chat:
        # The first user and conversation, made here or by a process before this one.
        users = store.list_users()
        user = users[0] if users else store.create_user("ada")
        principal = await chat.authenticate(store.create_api_key(user.id).plaintext)
        page = store.list_conversations(user.id)
        conv = page.items[0].id if page.items else store.create_conversation(user.id).id
        yield chat, store, principal, conv


async def test_a_retry_after_a_scheduler_crash_before_the_answer_starts_the_reply_once(
    chat_model: LoadedModel, store_url: str
) -> None:
    async with served(chat_model, store_url) as (chat, store, principal, conv):
        request = ChatRequest(GREEDY, conv, "Name a colour.", idempotency_key="k-crash")
        chat.system.faults.crash(SCHEDULER, on_message=1)
        with pytest.raises(ServiceUnavailable):
            await chat.chat(principal, request)
        with trio.fail_after(300):  # a hang guard: the scheduler restarts
            retried = await chat.chat(principal, request)
            text, finish = await read(retried)
            await retried.persisted.wait()
        assert not retried.replayed and finish in ("stop", "length") and text
        again = await chat.chat(principal, request)  # a third try replays, exactly once
        assert again.replayed and await read(again) == (text, finish)
        assert again.request_id == retried.request_id
        tree = store.get_message_tree(principal.user_id, conv)
        assert [m.role for m in tree] == [Role.USER, Role.ASSISTANT]
        assert tree[1].status is MessageStatus.COMPLETE and tree[1].content == text


async def test_a_turn_left_open_by_a_dead_process_is_answered_on_retry(
    chat_model: LoadedModel, store_url: str
) -> None:
    # What a SIGKILL between the draft and the answer leaves: a user message and an
    # open, empty draft linked to the key. The next process must answer the retry.
    store = open_store(store_url)
    user = store.create_user("ada")
    conv = store.create_conversation(user.id).id
    store.begin_turn(user.id, conv, "k-killed", content="Name a fruit.", request_id="r1")
    draft, made = store.claim_reply(user.id, "k-killed", request_id="r1")
    assert made and draft.is_open_draft
    store.close()
    async with served(chat_model, store_url) as (chat, store, principal, conv):
        # The restart closed the orphan: a GET already says how it ended.
        orphan = store.get_message(principal.user_id, conv, draft.id)
        assert orphan.status is MessageStatus.INCOMPLETE and orphan.finish_reason
        request = ChatRequest(GREEDY, conv, "Name a fruit.", idempotency_key="k-killed")
        with trio.fail_after(300):
            handle = await chat.chat(principal, request)
            text, finish = await read(handle)
            await handle.persisted.wait()
        assert not handle.replayed and finish in ("stop", "length") and text
        assert handle.assistant_message_id == draft.id  # the same message, answered
        tree = store.get_message_tree(principal.user_id, conv)
        assert [m.seq for m in tree] == [1, 2]
        assert tree[1].content == text and tree[1].status is MessageStatus.COMPLETE


async def test_a_replayed_truncated_reply_reports_how_it_ended(
    chat_model: LoadedModel, store_url: str
) -> None:
    async with served(chat_model, store_url) as (chat, store, principal, conv):
        params = SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True)
        request = ChatRequest(params, conv, "Tell me a story.", idempotency_key="k-cut")
        handle = await chat.chat(principal, request)
        shown = ""
        while not shown:  # until the client has seen part of the reply
            chunks = await handle.stream.next()
            assert chunks
            shown += "".join(c.text for c in chunks)
        assert chat.system.faults.kill(f"/chat/conversations/conv-{conv}")
        with pytest.raises(Exception, match="mid-reply"):
            await read(handle)
        await handle.persisted.wait()
        stored = store.get_message(principal.user_id, conv, handle.assistant_message_id or "")
        assert stored.status is MessageStatus.INCOMPLETE
        assert stored.finish_reason == "interrupted"
        replay = await chat.chat(principal, request)
        assert replay.replayed and replay.request_id == handle.request_id
        text, finish = await read(replay)
        assert finish == "interrupted" and text == stored.content


async def test_a_replay_while_the_original_still_streams_is_a_503_not_a_truncated_reply(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    async with served(chat_model, f"sqlite:///{tmp_path / 'chat.db'}") as (
            chat, _store, principal, conv):
        params = SamplingParams(temperature=0.0, max_tokens=64, ignore_eos=True)
        request = ChatRequest(params, conv, "Count to ten.", idempotency_key="k-live")
        first = await chat.chat(principal, request)
        with pytest.raises(ServiceUnavailable, match="still being answered"):
            await chat.chat(principal, request)
        text, finish = await read(first)
        await first.persisted.wait()
        replay = await chat.chat(principal, request)
        assert replay.replayed and await read(replay) == (text, finish)


def test_a_retry_after_a_sigkill_before_the_answer_is_answered_by_the_next_process(
    tmp_path: Path,
) -> None:
    db = tmp_path / "chat.db"
    server, url, key = start_server(db)
    try:
        assert key is not None
        auth = {"Authorization": f"Bearer {key}"}
        conv = httpx2.post(f"{url}/conversations", json={}, headers=auth, timeout=60).json()
        # The engine driver sits on its next message for a minute: the turn is committed
        # and its draft claimed, and the answer never starts.
        fault = {"path": "/chat/engines/smollm2-135m-instruct/driver", "action": "delay",
                 "seconds": 60}
        assert httpx2.post(f"{url}/admin/faults", json=fault, headers=auth,
                           timeout=60).status_code == 200
        turn = {"content": "Name a colour.", "max_tokens": 8, "temperature": 0}
        headers = {**auth, "Idempotency-Key": "k-sigkill"}
        def first_attempt() -> None:  # its server is killed under it
            with contextlib.suppress(httpx2.HTTPError):
                httpx2.post(f"{url}/conversations/{conv['id']}/messages", json=turn,
                            headers=headers, timeout=120)

        first = threading.Thread(target=first_attempt, daemon=True)
        first.start()
        deadline = time.monotonic() + 300  # a hang guard
        while not httpx2.get(f"{url}/conversations/{conv['id']}/messages", headers=auth,
                             timeout=60).json()["data"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)  # polling another process: there is no event to wait on
        server.kill()
        server.wait(60)
        first.join(60)
        server, url, _ = start_server(db)
        retried = httpx2.post(f"{url}/conversations/{conv['id']}/messages", json=turn,
                              headers=headers, timeout=300)
        assert retried.status_code == 200, retried.text
        reply = retried.json()
        assert reply["content"] and reply["status"] == "complete"
        stored = httpx2.get(f"{url}/conversations/{conv['id']}/messages", headers=auth,
                            timeout=60).json()["data"]
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert stored[1]["content"] == reply["content"]
    finally:
        server.kill()
        server.wait(60)
