"""The console's view over a real chat tree (SmolLM2, SQLite): its snapshot is the actor
system's own, its traces follow a turn across every actor, and its engine figures move
with the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from chorusline.chat import ChatRequest, ChatService, ChatSettings, Principal, open_chat_service
from chorusline.chat.console import percentile, with_restarting
from chorusline.protocols import NotFound, SamplingParams, ServiceUnavailable
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import SqliteStore
from tests.chat.streams import read

#: A stored turn's journey, in the order its spans start.
WATERFALL = ["accept", "session", "bucket", "conversation", "moderation", "begin_turn",
             "history", "prompt", "draft", "admission", "queue", "prefill", "first_token",
             "decode", "persist", "final_chunk"]


@asynccontextmanager
async def service(model: LoadedModel, tmp_path: Path
                  ) -> AsyncIterator[tuple[ChatService, Principal, str]]:
    store = SqliteStore(tmp_path / "chat.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=32 * 1024 * 1024))
    async with open_chat_service(settings, model=model, store=store) as chat:
        user = store.create_user("ada")
        principal = await chat.authenticate(
            store.create_api_key(user.id, tier="enterprise").plaintext)
        yield chat, principal, store.create_conversation(user.id, title="t").id


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children", []):
        yield from nodes(child)


async def turn(chat: ChatService, principal: Principal, conversation: str) -> str:
    handle = await chat.chat(principal, ChatRequest(
        SamplingParams(temperature=0.0, max_tokens=6), conversation, "Say hi."))
    await read(handle)
    await handle.persisted.wait()
    return handle.request_id


async def test_a_stored_turn_leaves_its_whole_waterfall(chat_model: LoadedModel,
                                                        tmp_path: Path) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conversation):
        request_id = await turn(chat, principal, conversation)
        trace = chat.admin.trace(request_id)
        assert [span["name"] for span in trace["spans"]] == WATERFALL
        assert trace["status"] == "complete" and trace["state"] == "finished"
        assert trace["tenant"] == principal.user_id and trace["tier"] == "enterprise"
        assert trace["conversation_id"] == conversation
        assert trace["prompt_tokens"] > 0 and trace["generated_tokens"] == 6
        spans = {span["name"]: span for span in trace["spans"]}
        assert spans["prefill"]["path"] == "/chat/engines/smollm2-135m-instruct/driver"
        assert spans["decode"]["steps"] == 5 and spans["prefill"]["steps"] == 1
        assert spans["draft"]["path"].startswith("/chat/conversations/conv-")
        assert 0 < trace["ttft_ms"] <= trace["age_ms"]
        starts = [span["start_ms"] for span in trace["spans"]]
        assert starts == sorted(starts)
        assert all(span["duration_ms"] >= 0 for span in trace["spans"])
        assert chat.admin.traces()["finished"][-1]["request_id"] == request_id
        with pytest.raises(NotFound):
            chat.admin.trace("chatcmpl-nobody")


async def test_the_snapshot_is_the_systems_own_with_engine_figures_that_move(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conversation):
        feed = chat.admin.watch()
        try:
            first = await feed.snapshot()
            assert first["engine"]["rates"] is None  # no earlier figures to differ from
            own = chat.system.snapshot()
            assert [n["path"] for n in nodes(first["tree"])] == \
                [n["path"] for n in nodes(own["tree"])]
            assert first["faults"] == own["faults"] == {}
            engine = first["engine"]
            assert engine["driver"]["path"] == "/chat/engines/smollm2-135m-instruct/driver"
            assert engine["engine"]["kv_blocks_free"] == engine["engine"]["kv_blocks_total"]
            blocks = engine["block_map"]
            assert len(blocks["states"]) == engine["engine"]["kv_blocks_total"]
            assert set(blocks["states"]) == {"f"} and engine["ttft_ms"]["count"] == 0
            await turn(chat, principal, conversation)
            second = await feed.snapshot()
            rates = second["engine"]["rates"]
            assert rates["output_tps"] > 0 and rates["prompt_tps"] > 0
            assert rates["steps_per_s"] > 0
            assert second["engine"]["ttft_ms"]["count"] == 1
            assert "c" in second["engine"]["block_map"]["states"]  # the cached prefix
            assert second["requests"] == []
        finally:
            feed.close()
        assert not chat.system.recorder.watched


async def test_children_are_paged_and_searched_and_detail_has_restart_history(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    async with service(chat_model, tmp_path) as (chat, principal, conversation):
        await turn(chat, principal, conversation)
        path = f"/chat/conversations/conv-{conversation}"
        page = chat.admin.children("/chat/conversations", conversation[:8])
        assert page["total"] == page["matched"] == 1
        assert [c["path"] for c in page["children"]] == [path]
        assert chat.admin.children("/chat/conversations", "zzz")["matched"] == 0
        assert chat.admin.children("/chat", offset=1, limit=1)["children"][0]["path"] \
            == [c["path"] for c in chat.admin.children("/chat")["children"]][1]
        chat.admin.inject_fault(path, "crash")
        with pytest.raises(ServiceUnavailable):  # the crash hits this turn...
            await turn(chat, principal, conversation)
        await turn(chat, principal, conversation)  # ...and the retry succeeds
        detail = chat.admin.detail(path)
        assert detail["node"]["restarts"] >= 1
        (entry, *_) = detail["restart_history"]
        assert entry["child"] == path.rsplit("/", 1)[1] and entry["action"] == "restart"
        assert "InjectedFault" in entry["reason"]
        with pytest.raises(NotFound):
            chat.admin.detail("/chat/nobody")
        with pytest.raises(NotFound):
            chat.admin.children("/chat/nobody")


def test_a_static_supervisors_restarting_child_gets_a_placeholder() -> None:
    tree = {"path": "/", "children": [
        {"path": "/chat/engines", "restarting": ["smollm2-135m-instruct"], "children": []}]}
    placeholder = with_restarting(tree)["children"][0]["children"][0]
    assert placeholder["path"] == "/chat/engines/smollm2-135m-instruct"
    assert placeholder["state"] == "restarting"


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0
    assert percentile([1.0, 2.0], 50) == 1.0
