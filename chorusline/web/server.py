"""Serving the app with Hypercorn inside the caller's trio run.

Hypercorn binds the sockets itself and reports the bound addresses when it starts; the
port is read back from there, so a caller (a test) can ask for port 0 and learn which
ephemeral port it got. Setting ``shutdown`` stops accepting, lets in-flight responses
finish for ``graceful_timeout`` seconds, and returns.

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

from chorusline.chat import ChatService
from chorusline.web.app import create_app


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


async def serve(
    chat: ChatService,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str,
    shutdown: trio.Event | None = None,
    graceful_timeout: float = 5.0,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = Config()
    if reuse_port:
        sock = reuse_port_socket(host, port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns (and closes) it now
    else:
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    app = create_app(chat, model_name)

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn_serve(
            app, config,
            shutdown_trigger=None if shutdown is None else shutdown.wait,
            task_status=task_status,
        )

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        task_status.started(bound_port(binds[0]))
