"""A scripted console feed on 127.0.0.1 for the ``chorusline top`` tests.

Real HTTP/1.1 over a real socket, written by hand so a test decides every byte: the
status (401 for an unknown key, 403 for a key without the admin flag, as the server's
admin routes answer), the content type, and what the event stream carries and when
(chunked, as Hypercorn sends it). A script can also end the stream cleanly or drop the
connection halfway through a message, which no well-behaved framework would do on
request. Each connection is one request; the server records them all.
"""

from __future__ import annotations

import json
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import trio

ADMIN_KEY = "sk-admin-top-test"
USER_KEY = "sk-user-top-test"  # a valid key without the admin flag


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names in lower case

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


class Dropped(Exception):
    """Raised by ``Stream.drop``: the handler closes the socket without ending the body."""


class Stream:
    """The body of one feed response, in HTTP chunks; ``index`` counts feed connections."""

    def __init__(self, socket: trio.SocketStream, index: int, request: Request) -> None:
        self.socket = socket
        self.index = index
        self.request = request

    async def raw(self, data: bytes) -> None:
        """``data`` as one HTTP chunk (TCP may still merge or split it)."""
        await self.socket.send_all(b"%x\r\n%s\r\n" % (len(data), data))

    async def send(self, event: str, data: Any) -> None:
        await self.raw(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

    async def drop(self) -> NoReturn:
        raise Dropped

    async def wait_closed(self) -> None:
        """Until the client disconnects (its end of the socket reads as EOF)."""
        while await self.socket.receive_some(4096):
            pass


Script = Callable[[Stream], Awaitable[None]]


@dataclass
class FeedServer:
    """Serves ``script`` to each admin connection; ``url`` once started."""

    script: Script
    content_type: str = "text/event-stream; charset=utf-8"
    #: From this feed connection on (0 first), the admin key is refused too: "revoked".
    revoke_from: int | None = None
    status: int | None = None  # answer every request with this status instead
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    closed: int = 0  # connections whose handler has finished
    _feeds: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def handle(self, socket: trio.SocketStream) -> None:
        try:
            request = await read_request(socket)
            if request is not None:
                self.requests.append(request)
                self._notify()
                if await self._answer(socket, request):
                    await socket.send_all(b"0\r\n\r\n")  # the body's clean end
        except (Dropped, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await socket.aclose()
            self.closed += 1
            self._notify()

    async def _answer(self, socket: trio.SocketStream, request: Request) -> bool:
        """True after a whole event stream, False after an error response."""
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        status = self.status or (200 if key == ADMIN_KEY else 403 if key == USER_KEY
                                 else 401)
        if status == 200 and request.path != "/v1/admin/events":
            status = 404
        index = self._feeds
        if status == 200:
            self._feeds += 1
            if self.revoke_from is not None and index >= self.revoke_from:
                status = 401
        if status != 200:
            message = {401: "invalid API key", 403: "this key is not an admin key",
                       }.get(status, "no such route")
            await send_head(socket, status, "application/json", json.dumps(
                {"error": {"message": message, "type": "invalid_request_error"}}).encode())
            return False
        await send_head(socket, 200, self.content_type, None)
        await self.script(Stream(socket, index, request))
        return True


async def read_request(socket: trio.SocketStream) -> Request | None:
    """The request line and headers (a GET has no body); None if the client hung up."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await socket.receive_some(4096)
        if not chunk:
            return None
        data += chunk
        assert len(data) < 65536, "request head too large"
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, target, _ = head[0].split(" ", 2)
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers)


async def send_head(socket: trio.SocketStream, status: int, content_type: str,
                    body: bytes | None) -> None:
    """The status line and headers, then ``body`` whole (or, if None, a chunked body to
    follow). The connection closes after each response."""
    reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
              503: "Service Unavailable"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {content_type}",
             "cache-control: no-cache", "connection: close"]
    lines.append(f"content-length: {len(body)}" if body is not None
                 else "transfer-encoding: chunked")
    await socket.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))


async def start(nursery: trio.Nursery, server: FeedServer) -> FeedServer:
    """``server`` listening on an ephemeral 127.0.0.1 port in ``nursery``."""
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0,
                                            host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    return server


def free_port() -> int:
    """A port nobody listens on (bound, then released): "connection refused"."""
    with stdlib_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- payloads ----------------------------------------------------------------------------

def node(path: str, kind: str = "actor", state: str = "running", *,
         children: list[Any] | None = None, **stats: Any) -> dict[str, Any]:
    return {"path": path, "name": path.rsplit("/", 1)[-1] or "/", "kind": kind,
            "actor_class": "Actor", "state": state, "mailbox_depth": 0,
            "mailbox_capacity": 64, "processed": 0, "failed": 0, "restarts": 0,
            "last_failure": None, "exit_reason": None, "children": children or [], **stats}


def hello(*, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"object": "admin.hello", "worker_pid": 4242, "system": "chorusline",
            "model": "smollm2-135m-instruct", "interval": 1.0, "events": events or [],
            "traces": []}


WORKER = "/chat/engines/smollm2-135m-instruct/gpu-worker"


def event(seq: int, kind: str = "restart", path: str = WORKER,
          **detail: Any) -> dict[str, Any]:
    return {"seq": seq, "time": 1764754321.25 + seq, "kind": kind, "path": path,
            "detail": detail or {"reason": "crashed", "delay": 0.5}}


def snapshot(*, tree: dict[str, Any] | None = None,
             requests: list[Any] | None = None) -> dict[str, Any]:
    return {
        "object": "admin.snapshot", "time": 1764754330.0, "worker_pid": 4242,
        "tree": tree or node("/", "supervisor", children=[
            node("/chat", "supervisor", children=[
                node("/chat/conversations", "supervisor", mailbox_depth=3,
                     children_total=2),
                node(WORKER, "thread", restarts=1, processed=120),
            ]),
        ]),
        "dead_letters": {"count": 0, "by_reason": {}, "recent": []},
        "faults": {},
        "engine": {
            "driver": {"queue_depth": 2, "inflight": 3, "last_batch_size": 3,
                       "mean_batch_size": 2.5, "max_batch_size": 8},
            "engine": {"num_running": 3, "num_waiting": 2, "kv_blocks_total": 128,
                       "kv_blocks_used": 96, "kv_blocks_free": 32, "kv_usage": 0.75,
                       "steps": 900, "generated_tokens": 4000, "prompt_tokens": 9000,
                       "preemptions": 1, "last_step_ms": 12.5,
                       "max_sequence_tokens": 2048},
            "rates": {"output_tps": 41.5, "prompt_tps": 310.0, "steps_per_s": 14.0},
            "ttft_ms": {"p50": 240.0, "p95": 610.0, "count": 17},
            "block_map": None,
        },
        "requests": requests if requests is not None else [{
            "request_id": "chatcmpl-0123456789abcdef0123", "tenant": "user-ada",
            "tier": "free", "model": "smollm2-135m-instruct", "conversation_id": None,
            "state": "decode", "started": 1764754329.0, "age_ms": 1412.0,
            "prompt_tokens": 41, "generated_tokens": 12, "ttft_ms": 240.1,
            "status": None, "finish_reason": None}],
    }
