"""The console page, its files and its feed on a real server over a real socket: the page
is locked down, the feed needs an admin key, says hello with the backlog, then streams
snapshots that are the system's own and events in order, skips a slow reader ahead
instead of buffering for it, and stops collecting when its reader goes."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from chorusline.chat import AdmissionLimits
from chorusline.runtime import LoadedModel
from chorusline.web.console import FEED_CAPACITY
from chorusline.web.pages import CONTENT_SECURITY_POLICY
from tests.web.conftest import Web, gated_server
from tests.web.test_admin import admin_key, nodes

Message = tuple[str, dict[str, Any]]


class Feed:
    """An SSE reader over httpx's line iterator (one ``data:`` line per message)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> Message:
        kind, data = "", ""
        with trio.fail_after(60):  # a hang guard, not a speed
            async for line in self._lines:
                if line.startswith("event: "):
                    kind = line[len("event: "):]
                elif line.startswith("data: "):
                    data = line[len("data: "):]
                elif line == "" and kind:
                    return kind, json.loads(data)
        raise AssertionError("the feed ended")

    async def until(self, kind: str, test: Any = lambda _data: True) -> dict[str, Any]:
        while True:
            got, data = await self.next()
            if got == kind and test(data):
                return data


@asynccontextmanager
async def open_feed(web: Web, key: str, interval: float = 0.25) -> AsyncIterator[Feed]:
    url = f"http://127.0.0.1:{web.port}/v1/admin/events?interval={interval}"
    async with httpx.AsyncClient(timeout=60) as client, client.stream(
            "GET", url, headers={"Authorization": f"Bearer {key}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Feed(response)


async def get(web: Web, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.get(f"http://127.0.0.1:{web.port}{path}", headers=headers, **kw)


async def test_the_page_and_every_file_it_names_are_served_locked_down(web: Web) -> None:
    page = await get(web, "/console")  # no key: the page holds no data
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
    named = re.findall(r'(?:src|href)="(/console/static/[^"]+)"', page.text)
    assert len(named) >= 4
    static = Path(__file__).parents[2] / "chorusline/web/console/static"
    modules = [p.relative_to(static).as_posix() for p in static.glob("*.js")]
    for path in [*named, *(f"/console/static/{m}" for m in modules)]:
        response = await get(web, path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        if path.endswith(".js"):
            assert response.headers["content-type"].startswith("application/javascript")
        for imported in re.findall(r'from "\./([^"]+)"', response.text):
            assert (static / imported).is_file(), f"{path} imports a missing {imported}"
    for missing in ("/console/static/nope.js", "/console/static/../app.py",
                    "/console/static/%2e%2e/app.py", "/console/static/vendor"):
        response = await get(web, missing)
        assert response.status_code == 404, missing
        assert response.json()["error"]["message"]


async def test_the_feed_needs_an_admin_key_and_a_sane_interval(web: Web) -> None:
    assert (await get(web, "/v1/admin/events")).status_code == 401
    refused = await get(web, "/v1/admin/events", key=web.key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_permissions"
    key = admin_key(web)
    for interval in ("0", "0.1", "11", "abc", "nan", "inf"):
        response = await get(web, f"/v1/admin/events?interval={interval}", key=key)
        assert response.status_code == 400, interval
        assert response.json()["error"]["param"] == "interval"
    assert not web.chat.system.recorder.watched


async def test_hello_carries_the_backlog_then_snapshots_and_events_follow_in_order(
        web: Web) -> None:
    key, admin, recorder = admin_key(web), web.chat.admin, web.chat.system.recorder
    admin.inject_fault("/chat/buckets", "delay", seconds=1.0)  # before anyone watches
    async with open_feed(web, key) as feed:
        kind, hello = await feed.next()
        assert kind == "hello" and hello["object"] == "admin.hello"
        assert hello["model"] and hello["system"] and hello["interval"] == 0.25
        assert [e["kind"] for e in hello["events"]] == ["fault_injected"]
        snapshot = await feed.until("snapshot")
        assert snapshot["faults"] == {"/chat/buckets": {"crash_after": None, "delay": 1.0,
                                                        "drop_fraction": 0.0}}
        own = web.chat.system.snapshot()
        assert [n["path"] for n in nodes(snapshot["tree"])] == \
            [n["path"] for n in nodes(own["tree"])]
        assert snapshot["engine"]["engine"]["kv_blocks_total"] > 0
        assert len(snapshot["engine"]["block_map"]["states"]) == \
            snapshot["engine"]["engine"]["kv_blocks_total"]
        admin.clear_faults("/chat/buckets")
        for n in range(1, 4):
            admin.inject_fault("/chat/buckets", "crash", on_message=n)
        admin.clear_faults()
        seen = [await feed.until("event") for _ in range(5)]
        assert [e["kind"] for e in seen] == ["fault_cleared", *["fault_injected"] * 3,
                                             "fault_cleared"]
        assert [e["seq"] for e in seen] == list(range(seen[0]["seq"], seen[0]["seq"] + 5))
        assert [e["detail"].get("crash_after") for e in seen[1:4]] == [1, 2, 3]
        (subscription,) = recorder.subscriptions()
    with trio.fail_after(60):
        await subscription.closed.wait()  # the client went: the feed stopped collecting
    assert not recorder.watched


async def test_a_slow_reader_is_skipped_ahead_with_a_gap_not_buffered(web: Web) -> None:
    recorder = web.chat.system.recorder
    async with open_feed(web, admin_key(web), interval=10) as feed:
        assert (await feed.next())[0] == "hello"
        await feed.until("snapshot")
        # No checkpoint between these: the feed cannot send, its queue must hold.
        for n in range(5 * FEED_CAPACITY):
            recorder.record("tick", "/test", n=n)
        (subscription,) = recorder.subscriptions()
        assert subscription.pending() == FEED_CAPACITY
        gap = await feed.until("gap")
        assert gap == {"skipped": 4 * FEED_CAPACITY}
        first = await feed.until("event")
        assert first["detail"]["n"] == 4 * FEED_CAPACITY  # the oldest kept
        last = await feed.until("event", lambda e: e["detail"]["n"] == 5 * FEED_CAPACITY - 1)
        assert last["seq"] - first["seq"] == FEED_CAPACITY - 1


async def test_a_streamed_turn_is_a_live_request_then_a_finished_trace(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered) as web, \
            open_feed(web, admin_key(web)) as feed:
        conversation = web.chat.store.create_conversation(web.user_id, title="t").id

        async def stream() -> None:
            async with httpx.AsyncClient(timeout=120) as client:
                response = await client.post(
                    f"{web.base_url}/chat/completions",
                    headers={"Authorization": f"Bearer {web.key}"},
                    json={"model": "smollm2-135m-instruct", "stream": True,
                          "max_tokens": 4, "conversation_id": conversation,
                          "messages": [{"role": "user", "content": "Say hi."}]})
                assert response.status_code == 200 and "[DONE]" in response.text

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream)
            await trio.to_thread.run_sync(entered.wait, 60)
            live = await feed.until("snapshot", lambda s: any(
                r["state"] == "prefill" for r in s["requests"]))
            (row,) = live["requests"]
            assert row["tenant"] == web.user_id and row["tier"] == "big"
            assert row["conversation_id"] == conversation and row["prompt_tokens"] > 0
            assert "spans" not in row and row["ttft_ms"] is None
            gate.set()
            trace = await feed.until("trace", lambda t: t["request_id"] == row["request_id"])
        names = [span["name"] for span in trace["spans"]]
        assert names[0] == "accept" and names[-1] == "final_chunk"
        assert {"session", "bucket", "conversation", "draft", "queue", "prefill",
                "first_token", "decode", "persist"} <= set(names)
        assert trace["status"] == "complete" and trace["generated_tokens"] == 4
