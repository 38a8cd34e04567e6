"""Serving the app with Hypercorn inside the caller's trio run.

Hypercorn binds the sockets itself and reports the bound addresses when it starts; the
port is read back from there, so a caller (a test) can ask for port 0 and learn which
ephemeral port it got. Setting ``shutdown`` stops accepting, lets in-flight responses
finish for ``graceful_timeout`` seconds, and returns.
"""

from __future__ import annotations

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from chorusline.chat import ChatService
from chorusline.web.app import create_app


def bound_port(bind: str) -> int:
    """The port of one of Hypercorn's bind strings (``http://127.0.0.1:8000``,
    ``http://[::1]:8000``)."""
    return int(bind.rsplit(":", 1)[1])


async def serve(
    chat: ChatService,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str,
    shutdown: trio.Event | None = None,
    graceful_timeout: float = 5.0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = Config()
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
