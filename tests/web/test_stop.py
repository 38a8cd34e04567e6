"""Stopping a reply on a real server: by its assistant message or by its request id, by
its owner only; the stream ends with ``finish_reason: "abort"``, the reply is stored
``incomplete`` with what was generated, and a reply that already ended is a 409."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from chorusline.chat import AdmissionLimits
from chorusline.runtime import LoadedModel
from tests.web.conftest import MODEL, Web, api, gated_server


@asynccontextmanager
async def streaming(web: Web, path: str, body: dict[str, Any]
                    ) -> AsyncIterator[tuple[httpx.Response, Callable[[], Any]]]:
    """A streamed POST whose headers have arrived; the callable reads the rest and
    returns the finish reasons the stream carried."""
    async with httpx.AsyncClient(timeout=120) as client, client.stream(
            "POST", f"{web.base_url}{path}", json={**body, "stream": True},
            headers={"Authorization": f"Bearer {web.key}"}) as response:
        assert response.status_code == 200

        async def finishes() -> list[str]:
            reasons = []
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    for choice in json.loads(line[6:]).get("choices", []):
                        if choice.get("finish_reason"):
                            reasons.append(choice["finish_reason"])
            return reasons

        yield response, finishes


def other_key(web: Web) -> str:
    user = web.chat.store.create_user("mallory")
    return str(web.chat.store.create_api_key(user.id, tier="big").plaintext)


async def test_the_owner_stops_a_stored_reply_by_its_message(chat_model: LoadedModel,
                                                             tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered) as web:
        cid = (await api(web, "POST", "/conversations", json={"title": "t"})).json()["id"]
        turn = {"content": "Count to fifty.", "max_tokens": 200, "ignore_eos": True}
        async with streaming(web, f"/conversations/{cid}/messages", turn) as (_, finishes):
            await trio.to_thread.run_sync(entered.wait, 60)
            messages = (await api(web, "GET", f"/conversations/{cid}/messages")).json()
            user, draft = messages["data"]
            assert draft["role"] == "assistant" and draft["status"] == "incomplete"
            stop = f"/conversations/{cid}/messages/{draft['id']}/stop"
            for refused, status in ((await api(web, "POST", stop, key=other_key(web)), 404),
                                    (await api(web, "POST", stop, auth=False), 401),
                                    (await api(web, "POST", f"/conversations/{cid}/messages/"
                                               f"{user['id']}/stop"), 409)):
                assert refused.status_code == status, refused.text
            (live,) = web.chat.admin.traces()["live"]
            stopped = await api(web, "POST", stop)
            assert stopped.status_code == 200, stopped.text
            assert stopped.json() == {"object": "chat.completion.stop",
                                      "id": live["request_id"], "stopped": True,
                                      "message_id": draft["id"]}
            gate.set()
            assert await finishes() == ["abort"]
        await web.handles[-1].persisted.wait()
        stored = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"][1]
        assert (stored["status"], stored["finish_reason"]) == ("incomplete", "abort")
        again = await api(web, "POST", stop)
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


async def test_the_owner_stops_a_stateless_stream_by_its_request_id(
        chat_model: LoadedModel, tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered) as web:
        body = {"model": MODEL, "max_tokens": 200, "ignore_eos": True,
                "messages": [{"role": "user", "content": "Count to fifty."}]}
        async with streaming(web, "/chat/completions", body) as (response, finishes):
            request_id = response.headers["x-request-id"]
            await trio.to_thread.run_sync(entered.wait, 60)
            stop = f"/chat/completions/{request_id}/stop"
            refused = await api(web, "POST", stop, key=other_key(web))
            assert refused.status_code == 404, refused.text
            stopped = await api(web, "POST", stop)
            assert stopped.status_code == 200, stopped.text
            assert stopped.json()["id"] == request_id
            gate.set()
            assert await finishes() == ["abort"]
        kinds = [(e.kind, e.detail.get("by")) for e in web.chat.system.recorder.events]
        assert ("request_aborted", "owner") in kinds
        assert (await api(web, "POST", stop)).status_code == 409
        unknown = await api(web, "POST", "/chat/completions/chatcmpl-nobody/stop")
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "request_id"


async def test_stopping_a_finished_reply_or_a_missing_message_changes_nothing(
        web: Web) -> None:
    cid = (await api(web, "POST", "/conversations", json={"title": "t"})).json()["id"]
    done = await api(web, "POST", f"/conversations/{cid}/messages",
                     json={"content": "Hi", "max_tokens": 2})
    assert done.status_code == 200, done.text
    reply = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"][1]
    refused = await api(web, "POST", f"/conversations/{cid}/messages/{reply['id']}/stop")
    assert refused.status_code == 409, refused.text
    missing = await api(web, "POST", f"/conversations/{cid}/messages/nobody/stop")
    assert missing.status_code == 404
    after = (await api(web, "GET", f"/conversations/{cid}/messages")).json()["data"][1]
    assert after == reply
