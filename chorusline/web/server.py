"""Serving the app with Hypercorn inside the caller's trio run.

Hypercorn binds the sockets itself and reports the bound addresses when it starts; the
port is read back from there, so a caller (a test) can ask for port 0 and learn which
ephemeral port it got.

Setting ``shutdown`` drains: Hypercorn stops accepting and closes idle connections, and
in-flight responses get ``graceful_timeout`` seconds to finish. At that deadline the app's
``Drain`` expires: a request still being handled is answered 503 ``server_shutting_down``
with ``Retry-After``, and a stream still open gets that error as an SSE event.
``FAREWELL_SECONDS`` later Hypercorn cancels whatever is left, and ``serve`` returns.

The app's final send of each response is shielded from cancellation (``_ShieldedEnd``).
quart-trio cancels a request's task group as soon as Hypercorn reports the response
complete, and Hypercorn reports that from inside that very send, before it has closed a
``Connection: close`` socket or armed the keep-alive timer: unshielded, the close (or the
timer) was cancelled half-way, so such a connection stayed open until the client left.

With ``reuse_port`` the listening socket is opened here with ``SO_REUSEPORT`` and handed
to Hypercorn as ``fd://``: several processes (``chorusline serve --workers N``) then listen
on one port and the kernel spreads new connections over them. Hypercorn sets that option
only in its own multi-process mode, which loads the app by import path and so cannot
hand each worker an app built around its own running ChatService.
"""

from __future__ import annotations

import socket

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

from chorusline.chat import ChatService
from chorusline.web.app import create_app
from chorusline.web.http import MAX_BODY_BYTES, Drain

#: Seconds between the drain deadline and Hypercorn's hard cut: time for the 503s and
#: SSE error events to go out and their connections to close.
FAREWELL_SECONDS = 1.0


def bound_port(bind: str) -> int:
    """The port of one of Hypercorn's bind strings (``http://127.0.0.1:8000``,
    ``http://[::1]:8000``)."""
    return int(bind.rsplit(":", 1)[1])


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not yet listening).

    Every socket sharing a port must set the option before binding; a bound socket that
    never listens takes no connections but keeps the port reserved, which is how the
    ``--workers`` parent turns port 0 into one concrete port for all its workers.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("several workers need SO_REUSEPORT, which this platform lacks")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _ShieldedEnd:
    """ASGI middleware: the message that ends a response is sent shielded, so that
    Hypercorn's connection bookkeeping after it (closing, or arming the keep-alive
    timer) runs to its end; it is quick and does not wait on the client."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable,
                       send: ASGISendCallable) -> None:
        async def shielded_end(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await self.app(scope, receive, shielded_end if scope["type"] == "http" else send)


async def serve(
    chat: ChatService,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    shutdown: trio.Event | None = None,
    graceful_timeout: float = 5.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    public_url: str | None = None,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` is set and the drain is over. ``max_body_bytes`` bounds
    every request body (a larger one is a 413 before it is read); share links start with
    ``public_url`` (default: the bound address)."""
    config = Config()
    if reuse_port:
        sock = reuse_port_socket(host, port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) it now
    else:
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout + FAREWELL_SECONDS
    config.accesslog = None
    drain = Drain()
    app = _ShieldedEnd(create_app(chat, public_url=public_url,
                                  max_body_bytes=max_body_bytes, drain=drain))

    async def expire_drain() -> None:
        if shutdown is not None:
            await shutdown.wait()
            await trio.sleep(graceful_timeout)
            drain.expire()

    async with trio.open_nursery() as nursery:

        async def run(task_status: trio.TaskStatus[list[str]]) -> None:
            await hypercorn_serve(
                app, config, mode="asgi",
                shutdown_trigger=None if shutdown is None else shutdown.wait,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()  # drained early: the deadline has nothing to cut

        binds: list[str] = await nursery.start(run)
        nursery.start_soon(expire_drain)
        task_status.started(bound_port(binds[0]))
