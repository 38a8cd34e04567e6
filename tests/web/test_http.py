"""Raw HTTP: SSE framing, error bodies for malformed input, probes, a client that
hangs up mid-stream (which must abort the generation in the engine), and admission
control refusing a request the engine queue has no room for (503 + Retry-After)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio

from chorusline.chat import AdmissionLimits
from chorusline.chat.gpu_worker import GetStats
from chorusline.runtime import LoadedModel
from tests.web.conftest import MODEL, Web, gated_server

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


async def post(web: Web, body: bytes | dict[str, Any], key: str | None = None
               ) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key or web.key}",
               "Content-Type": "application/json"}
    return await trio.to_thread.run_sync(lambda: httpx2.post(
        f"{web.base_url}/chat/completions", content=content, headers=headers, timeout=120))


async def get(web: Web, path: str) -> httpx2.Response:
    url = f"http://127.0.0.1:{web.port}{path}"
    return await trio.to_thread.run_sync(lambda: httpx2.get(url, timeout=30))


async def test_health_and_ready(web: Web) -> None:
    health, ready = await get(web, "/health"), await get(web, "/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_sse_framing(web: Web) -> None:
    response = await post(web, {"model": MODEL, "messages": QUESTION, "stream": True,
                                "temperature": 0, "max_tokens": 6,
                                "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.text
    assert raw.endswith("\n\ndata: [DONE]\n\n")
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = []
    for event in events[:-2]:
        lines = event.split("\n")
        assert len(lines) == 1 and lines[0].startswith("data: "), event
        payloads.append(json.loads(lines[0].removeprefix("data: ")))
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert payloads[-2]["choices"][0]["finish_reason"] == "length"
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["completion_tokens"] == 6


@pytest.mark.parametrize(("body", "param"), [
    (b"{not json", None),
    (b"[1, 2]", None),
    ({"model": MODEL}, "messages"),
    ({"model": MODEL, "messages": "hi"}, "messages"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": MODEL, "messages": QUESTION, "temperature": "hot"}, "temperature"),
    ({"model": MODEL, "messages": QUESTION, "max_tokens": 1.5}, "max_tokens"),
    ({"model": MODEL, "messages": QUESTION, "stop": 5}, "stop"),
    ({"model": MODEL, "messages": QUESTION, "stop": ["ok", 3]}, "stop"),
    ({"model": MODEL, "messages": QUESTION, "logit_bias": {"abc": 1}}, "logit_bias"),
    ({"model": MODEL, "messages": QUESTION, "logit_bias": {"10": 500}}, "logit_bias"),
    ({"model": MODEL, "messages": QUESTION, "stream": "yes"}, "stream"),
    ({"model": MODEL, "messages": QUESTION, "seed": True}, "seed"),
    ({"model": 7, "messages": QUESTION}, "model"),
])
async def test_malformed_input_is_a_400_in_openai_format(
    web: Web, body: bytes | dict[str, Any], param: str | None
) -> None:
    response = await post(web, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param


#: Bodies from the reliability probe (and their neighbours): each was, or could have been,
#: a 500. Checked in one test, since starting a server is what takes the time.
FUZZ: list[tuple[bytes | dict[str, Any], str | None]] = [
    (b"", None),
    (b"\xff\xfe{}", None),
    (b'"just a string"', None),
    (b"NaN", None),
    ({"model": MODEL, "messages": QUESTION, "temperature": float("nan")}, "temperature"),
    (b"[" * 100_000, None),
    ({"model": MODEL, "messages": [{"role": "user", "content": "\ud800"}]},
     "messages[0].content"),
    ({"model": MODEL, "messages": QUESTION, "temperature": 10**400}, "temperature"),
    ({"model": MODEL, "messages": QUESTION, "max_tokens": 2**63}, "max_tokens"),
    ({"model": MODEL, "messages": QUESTION, "top_k": 10**30}, "top_k"),
    ({"model": MODEL, "messages": QUESTION, "logit_bias": {"4_2": 1}}, "logit_bias"),
    ({"model": MODEL, "messages": QUESTION, "logit_bias": {"\u0664\u0662": 1}}, "logit_bias"),
    ({"model": MODEL, "messages": QUESTION, "logit_bias": {"1": 10**400}}, "logit_bias"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages[0].content[0].text"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [[]]}]},
     "messages[0].content[0]"),
    ({"model": MODEL, "messages": QUESTION, "stream_options": {"include_usage": 1}},
     "stream_options.include_usage"),
]


async def test_fuzzed_bodies_are_400s_in_openai_format_never_500s(web: Web) -> None:
    for body, param in FUZZ:
        response = await post(web, body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error" and error["param"] == param, body


@pytest.mark.parametrize("stream", [False, True])
async def test_a_token_id_outside_the_vocabulary_is_a_400_even_when_streaming(
    web: Web, stream: bool
) -> None:
    """Refused before the status line: a streaming request must not get a 200 whose
    stream then carries the error (found by the schemathesis run)."""
    response = await post(web, {"model": MODEL, "messages": QUESTION, "stream": stream,
                                "logit_bias": {"66493628": 1}})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_token_id"


async def test_a_missing_key_and_an_unknown_route(web: Web) -> None:
    response = await trio.to_thread.run_sync(lambda: httpx2.post(
        f"{web.base_url}/chat/completions", json={"model": MODEL, "messages": QUESTION}))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    missing = await get(web, "/v1/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()


@pytest.mark.parametrize("path", [
    "/v1/nothing-here", "/v1/completions/abc", "/v1/embeddings/0", "/v1/moderations/x",
    "/v1/models/", "/v1/moderation", "/v1/embedding",
])
async def test_an_unknown_route_is_an_openai_shaped_404(web: Web, path: str) -> None:
    response = await trio.to_thread.run_sync(lambda: httpx2.post(
        f"http://127.0.0.1:{web.port}{path}", json={"model": MODEL, "input": "x"},
        headers={"Authorization": f"Bearer {web.key}"}, timeout=30))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error", None, None)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/v1/chat/completions", {"POST", "OPTIONS"}),
    ("PUT", "/v1/models", {"GET", "HEAD", "OPTIONS"}),
    ("GET", "/v1/completions", {"POST", "OPTIONS"}),
    ("PUT", "/v1/embeddings", {"POST", "OPTIONS"}),
    ("GET", "/v1/moderations", {"POST", "OPTIONS"}),
    ("POST", "/v1/models/gpt-9", {"GET", "HEAD", "OPTIONS"}),
    ("DELETE", f"/v1/models/{MODEL}", {"GET", "HEAD", "OPTIONS"}),
])
async def test_a_wrong_method_is_a_405_with_allow(web: Web, method: str, path: str,
                                                  allowed: set[str]) -> None:
    response = await trio.to_thread.run_sync(lambda: httpx2.request(
        method, f"http://127.0.0.1:{web.port}{path}",
        headers={"Authorization": f"Bearer {web.key}"}, timeout=30))
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == "invalid_request_error" and error["code"] is None


def driver_node(tree: dict[str, Any]) -> dict[str, Any] | None:
    if "inflight" in tree and "queue_depth" in tree:
        return tree
    for child in tree.get("children", []):
        if (found := driver_node(child)) is not None:
            return found
    return None


async def test_the_request_id_is_the_servers_and_the_bodys_whatever_the_client_sends(
    web: Web,
) -> None:
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 4, "temperature": 0}
    headers = {"Authorization": f"Bearer {web.key}", "X-Request-Id": "mine",
               "Idempotency-Key": "mine"}
    replies = [await trio.to_thread.run_sync(lambda: httpx2.post(
        f"{web.base_url}/chat/completions", json=body, headers=headers, timeout=120))
        for _ in range(2)]
    ids = [reply.headers["X-Request-Id"] for reply in replies]
    assert [reply.json()["id"] for reply in replies] == ids
    assert all(i.startswith("chatcmpl-") for i in ids) and len(set(ids)) == 2


async def test_a_client_disconnect_aborts_the_generation(web: Web) -> None:
    # A long reply, within what the fixture's 64 MiB KV cache holds (1,456 tokens).
    body = json.dumps({"model": MODEL, "messages": QUESTION, "stream": True,
                       "max_tokens": 1000, "ignore_eos": True}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {web.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    stream = await trio.open_tcp_stream("127.0.0.1", web.port)
    await stream.send_all(head + body)
    received = b""
    with trio.fail_after(60):
        while received.count(b'"content"') < 3:  # the role chunk and two content chunks
            data = await stream.receive_some()
            assert data, "the server closed the stream early"
            received += data
    assert received.startswith(b"HTTP/1.1 200")
    await stream.aclose()
    [handle] = web.handles
    closed = trio.Event()
    handle.stream.add_done_callback(lambda _: closed.set())
    with trio.fail_after(30):
        await closed.wait()
        while True:  # the abort reaches the engine at its next step
            node = driver_node(web.chat.admin.snapshot()["tree"])
            assert node is not None
            if node["inflight"] == 0 and node["running"] == 0:
                break
            # An ask to the worker is answered between engine steps: wait one step.
            key = web.chat.deps.models.default.worker_key
            worker = await web.chat.system.registry.wait_for(key)
            await worker.ask(GetStats())
    assert handle.stream.completion_tokens < 1000


async def test_overload_is_a_503_with_retry_after(chat_model: LoadedModel,
                                                  tmp_path: Path) -> None:
    gate, entered = threading.Event(), threading.Event()
    limits = AdmissionLimits(max_waiting_requests=1)
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 4, "temperature": 0}
    first: list[httpx2.Response] = []
    async with gated_server(chat_model, tmp_path, limits, gate, entered) as web:
        async with trio.open_nursery() as nursery:

            async def send_first() -> None:
                first.append(await post(web, body))

            nursery.start_soon(send_first)
            # The first request is admitted and its first engine step is held at the
            # gate, so it still waits for an engine slot while the others arrive.
            assert await trio.to_thread.run_sync(entered.wait, 60)
            for stream in (False, True):
                refused = await post(web, {**body, "stream": stream})
                assert refused.status_code == 503, refused.text
                assert refused.headers["content-type"].startswith("application/json")
                error = refused.json()["error"]
                assert error == {"message": error["message"], "type": "server_error",
                                 "param": None, "code": "overloaded"}
                assert int(refused.headers["Retry-After"]) >= 1
            gate.set()
        [served] = first
        assert served.status_code == 200, served.text
        assert served.json()["usage"]["completion_tokens"] == 4
        metrics = await get(web, "/metrics")
        assert ('chorusline_admission_refusals_total{model="smollm2-135m-instruct"} 2.0'
                in metrics.text)
