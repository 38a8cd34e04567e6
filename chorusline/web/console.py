"""The supervisor console: its page, the page's files, and the feed it reads.

The page and its files hold no data and are served to anyone, like a login page: what
they show comes from the admin routes, which need an admin key. They are files shipped in
the package (``console/static``), listed once at start, so a request can only ever name
one of them (no path is joined from the URL). Every page response carries a strict
Content-Security-Policy: the page runs no inline script and loads nothing from another
origin, so even text that escaped the page's own escaping could not run.

The feed (``GET /v1/admin/events``) is server-sent events: the flight recorder's backlog
once, then the recorder's events and finished traces as they happen, and a snapshot every
``interval`` seconds. It is built per watcher and only while one is connected; a watcher
that reads slowly loses its oldest queued items (a ``gap`` message says how many) and
never slows an actor down, because the recorder offers to a bounded buffer and the body
waits on the socket, not the other way round.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from chorusline.chat import ChatService
from chorusline.protocols import InvalidRequest
from chorusline.web.admin import require_admin
from chorusline.web.http import current_drain
from chorusline.web.pages import page_response, serve_files
from chorusline.web.streaming import sse_response

#: Items a watcher may fall behind by before the oldest are dropped.
FEED_CAPACITY = 1000
#: Bounds of ``interval``: faster is no use to a person, slower looks dead.
MIN_INTERVAL, MAX_INTERVAL, DEFAULT_INTERVAL = 0.25, 10.0, 1.0


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def feed_interval() -> float:
    text = request.args.get("interval")
    if text is None:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:  # NaN fails both comparisons
        raise InvalidRequest(f"interval must be a number of seconds within "
                             f"[{MIN_INTERVAL:g}, {MAX_INTERVAL:g}]", param="interval")
    return value


class FeedBody:
    """The feed's body. ``aclose`` (Quart calls it when the client goes or the server
    drains) closes the subscription, after which nothing is collected for it."""

    def __init__(self, chat: ChatService, model: str, interval: float) -> None:
        self._feed = chat.admin.watch(FEED_CAPACITY)
        self._model, self._interval = model, interval
        self._events = self._messages()

    def __aiter__(self) -> FeedBody:
        return self

    async def __anext__(self) -> bytes:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        try:
            await self._events.aclose()
        finally:
            self._feed.close()

    async def _messages(self) -> AsyncGenerator[bytes, None]:
        feed, drain = self._feed, current_drain()
        yield sse("hello", feed.hello(self._model, self._interval))
        due = trio.current_time()
        while not drain.expired:
            if trio.current_time() >= due:
                yield sse("snapshot", await feed.snapshot())
                due = trio.current_time() + self._interval
            with drain.guard(), trio.move_on_at(due):
                await feed.subscription.wait()
            skipped, items = feed.subscription.take()
            out = [sse("gap", {"skipped": skipped})] if skipped else []
            out += [sse(kind, item.to_json()) for kind, item in items]
            if out:
                yield b"".join(out)


def register(app: QuartTrio, chat: ChatService) -> None:
    """Add ``/console``, its files and the feed to ``app``."""
    assets = serve_files(app, "console", "/console/static")

    @app.get("/console")
    async def console_page() -> Response:
        return page_response(assets["index.html"].read_bytes(), "text/html")

    @app.get("/v1/admin/events")
    async def admin_events() -> Response:
        await require_admin(chat)
        return sse_response(FeedBody(chat, chat.model_name, feed_interval()))
