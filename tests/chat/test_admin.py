"""``Admin`` over a real chat tree (the SmolLM2 engine, SQLite): the snapshot and engine
figures are the live ones, and every fault it injects really hits the actor it names,
after the checks that keep a typo from doing something else. (A crash plan's effect on a
live conversation is in tests/web/test_admin.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from chorusline.actors import open_actor_system
from chorusline.chat import ChatService, ChatSettings, open_chat_service
from chorusline.protocols import InvalidRequest, NotFound
from chorusline.runtime import EngineConfig, LoadedModel
from chorusline.store import SqliteStore

ENGINE = "/chat/engines/smollm2-135m-instruct"


@pytest.fixture
async def chat(chat_model: LoadedModel, tmp_path: Path) -> AsyncIterator[ChatService]:
    settings = ChatSettings(database_url=f"sqlite:///{tmp_path / 'chat.db'}",
                            engine=EngineConfig(kv_cache_bytes=16 * 1024 * 1024))
    store = SqliteStore(tmp_path / "chat.db")
    async with open_actor_system("admin-test") as actors, \
            open_chat_service(settings, system=actors, model=chat_model, store=store) as served:
        yield served


def paths(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {node["path"]: node}
    for child in node.get("children", []):
        found.update(paths(child))
    return found


async def test_the_snapshot_and_engine_figures_are_the_live_ones(chat: ChatService) -> None:
    admin = chat.admin
    tree = paths(admin.snapshot()["tree"])
    assert tree[f"{ENGINE}/gpu-worker"]["kind"] == "thread"
    assert tree[f"{ENGINE}/driver"]["state"] == "running"
    stats = await admin.engine_stats()
    driver, engine = stats["driver"], stats["engine"]
    assert driver["path"] == f"{ENGINE}/driver" and "children" not in driver
    assert engine["kv_blocks_total"] > 0 and engine["num_running"] == 0
    assert engine["kv_blocks_free"] == engine["kv_blocks_total"] - engine["kv_blocks_used"]
    assert admin.gpu_worker_path() == f"{ENGINE}/gpu-worker"


async def test_faults_are_checked_then_planned_listed_and_cleared(chat: ChatService) -> None:
    admin = chat.admin
    sessions, buckets, worker = "/chat/sessions", "/chat/buckets", f"{ENGINE}/gpu-worker"
    refusals: list[tuple[dict[str, Any], type[Exception], str | None]] = [
        ({"path": "/chat/nobody", "action": "crash"}, NotFound, "path"),
        ({"path": "/chat/nobody", "action": "kill"}, NotFound, "path"),
        ({"path": worker, "action": "crash"}, InvalidRequest, "action"),
        ({"path": worker, "action": "delay", "seconds": 1.0}, InvalidRequest, "action"),
        ({"path": sessions, "action": "explode"}, InvalidRequest, "action"),
        ({"path": sessions, "action": "drop", "fraction": 1.5}, InvalidRequest, None),
    ]
    for fault, error, param in refusals:
        with pytest.raises(error) as raised:
            admin.inject_fault(**fault)
        assert getattr(raised.value, "param", None) == param, fault
    assert admin.active_faults() == {}

    driver = f"{ENGINE}/driver"
    admin.inject_fault(sessions, "delay", seconds=0.001)
    admin.inject_fault(buckets, "drop", fraction=0.25, seed=3)
    admin.inject_fault(driver, "crash", on_message=3)
    active = admin.active_faults()
    assert active[sessions]["delay"] == 0.001 and active[buckets]["drop_fraction"] == 0.25
    assert active[driver]["crash_after"] == 3
    assert admin.clear_faults(sessions) == [sessions]
    assert admin.clear_faults(driver) == [driver]
    assert list(admin.active_faults()) == [buckets]
    assert admin.clear_faults(sessions) == []  # live, but no plan left: nothing cleared
    with pytest.raises(NotFound):
        admin.clear_faults("/chat/nobody")
    assert admin.clear_faults() == [buckets] and admin.active_faults() == {}


async def test_killing_the_gpu_worker_restarts_it(chat: ChatService) -> None:
    admin, system = chat.admin, chat.system
    before = system.registry.lookup(chat.deps.models.default.worker_key)
    assert before is not None
    assert admin.kill_gpu_worker() is True
    with trio.fail_after(120):
        await before.join()
        after = await system.registry.wait_for(chat.deps.models.default.worker_key)
        assert after is not before and after.path == before.path
        assert (await admin.engine_stats())["engine"] is not None  # the new one answers
    assert paths(admin.snapshot()["tree"])[before.path]["restarts"] == 1
