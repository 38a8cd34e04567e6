"""``serve``: connections end when they should (``Connection: close``, the keep-alive
timeout), and a graceful shutdown answers what it cannot finish (a 503 with
Retry-After, an SSE error event) instead of cutting it off, over raw sockets."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import trio

from chorusline.chat import AdmissionLimits
from chorusline.runtime import LoadedModel
from tests.web.conftest import MODEL, Web, gated_server

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


async def open_request(web: Web, body: dict[str, Any], *, close: bool = False
                       ) -> trio.SocketStream:
    """A chat-completions request sent on a fresh connection, the response unread."""
    data = json.dumps(body).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {web.key}\r\nContent-Type: application/json\r\n"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    stream = await trio.open_tcp_stream("127.0.0.1", web.port)
    await stream.send_all(head + data)
    return stream


async def read_until(stream: trio.SocketStream, marker: bytes, received: bytes = b""
                     ) -> bytes:
    while marker not in received:
        data = await stream.receive_some()
        assert data, f"the connection closed before {marker!r}: {received!r}"
        received += data
    return received


async def read_to_eof(stream: trio.SocketStream, received: bytes = b"") -> bytes:
    """Everything until the server closes the connection (hangs, for the caller's
    ``fail_after`` to catch, if it never does)."""
    while data := await stream.receive_some():
        received += data
    return received


def sse_events(raw: bytes) -> list[str]:
    """The SSE events of a chunked HTTP/1.1 response (chunk framing removed)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    payload = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        payload, body = payload + rest[:size], rest[size + 2:]
    return [event for event in payload.decode().split("\n\n") if event]


async def test_connections_close_when_the_client_asked_or_went_idle(web: Web) -> None:
    """With ``Connection: close`` the socket stayed open after ``data: [DONE]`` (90 s and
    more, until the client left), and an idle keep-alive connection was never closed:
    Hypercorn's close, and its keep-alive timer, ran inside a task quart-trio had just
    cancelled. (Concurrent connections, one server: starting it is what takes the time.)
    """
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 3}
    results: dict[str, bytes] = {}

    async def run(name: str, connection: trio.SocketStream) -> None:
        with trio.fail_after(60):  # generous: generating on a loaded CPU; EOF is the point
            results[name] = await read_to_eof(connection)
        await connection.aclose()

    async with trio.open_nursery() as nursery:
        for name, stream, close in [("stream", True, True), ("whole", False, True),
                                    ("idle", False, False)]:
            connection = await open_request(web, {**body, "stream": stream}, close=close)
            nursery.start_soon(run, name, connection)
    for raw in results.values():
        assert raw.startswith(b"HTTP/1.1 200")
    for name in ("stream", "whole"):
        assert b"connection: close" in results[name].partition(b"\r\n\r\n")[0].lower()
    assert sse_events(results["stream"])[-1] == "data: [DONE]"
    whole = json.loads(results["whole"].partition(b"\r\n\r\n")[2])
    assert whole["usage"]["completion_tokens"] == 3
    # Kept alive, then closed by the server after its keep-alive timeout (5 s).
    assert b"connection: close" not in results["idle"].partition(b"\r\n\r\n")[0].lower()
    assert results["idle"].endswith(b"}")


async def test_a_drain_answers_what_it_cannot_finish(chat_model: LoadedModel,
                                                     tmp_path: Path) -> None:
    """At the drain deadline a stream still open ends with an SSE error event and no
    [DONE], and a request still being handled gets a 503 with Retry-After. Both were
    cut off (no event, no status line) when Hypercorn's graceful timeout ran out."""
    gate, entered = threading.Event(), threading.Event()  # no token is ever generated
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered,
                            graceful_timeout=0.5) as web:
        body = {"model": MODEL, "messages": QUESTION, "max_tokens": 4}
        streaming = await open_request(web, {**body, "stream": True})
        whole = await open_request(web, body)
        with trio.fail_after(60):
            head = await read_until(streaming, b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            await web.wait_for_turns(2)  # both admitted, both waiting for the engine
        web.shutdown.set()
        with trio.fail_after(60):
            streamed = await read_to_eof(streaming, head)
            answered = await read_to_eof(whole)
        *_, last = sse_events(streamed)
        assert "data: [DONE]" not in sse_events(streamed)
        assert json.loads(last.removeprefix("data: ")) == {"error": {
            "message": json.loads(last[6:])["error"]["message"], "type": "server_error",
            "param": None, "code": "server_shutting_down"}}
        status, _, rest = answered.partition(b"\r\n")
        headers, _, content = rest.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 503")
        assert b"retry-after: 1" in headers.lower()
        assert json.loads(content)["error"]["code"] == "server_shutting_down"
        for connection in (streaming, whole):
            await connection.aclose()


async def test_a_drain_lets_responses_finish_within_the_grace_period(
    chat_model: LoadedModel, tmp_path: Path
) -> None:
    gate, entered = threading.Event(), threading.Event()
    async with gated_server(chat_model, tmp_path, AdmissionLimits(), gate, entered,
                            graceful_timeout=60.0) as web:
        streaming = await open_request(web, {"model": MODEL, "messages": QUESTION,
                                             "max_tokens": 2, "stream": True})
        with trio.fail_after(60):
            await web.wait_for_turns(1)
        web.shutdown.set()
        gate.set()  # the engine runs on: the stream can finish well within 60 s
        with trio.fail_after(60):
            streamed = await read_to_eof(streaming)
        await streaming.aclose()
        assert sse_events(streamed)[-1] == "data: [DONE]"
