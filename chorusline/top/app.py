"""``chorusline top``: the console feed in a terminal, live or once.

``run_top`` is the whole command. Live, it keeps a ``Screen`` up to date from the feed
(``follow``) while a ``Painter`` draws it, full screen; a lost feed shows in the header
and is reconnected with backoff, because the server restarting or draining is ordinary
and the view should come back by itself. A refusal is never retried: a wrong key stays
wrong, and hammering the server with it helps no one. Whatever stops the command before
the view is up (a refused key, nobody listening, not a console feed) is one line on
stderr and exit status 1, like every other ``chorusline`` failure.

Ctrl-C is the ordinary way out of the live view, so it is a signal this command catches
(trio's signal receiver) rather than a ``KeyboardInterrupt`` that could land anywhere:
the feed is cancelled, the terminal restored, and the status is 0.
"""

from __future__ import annotations

import json
import math
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NoReturn

import trio
from rich.console import Console
from rich.live import Live

from chorusline.top.feed import FeedError, FeedLost, base_url, open_feed
from chorusline.top.screen import Screen
from chorusline.top.view import layout, render

#: How often the live view is drawn at most (a burst of events is one frame), and at
#: least (a countdown, a resized terminal).
FRAME_S = 0.1
IDLE_FRAME_S = 1.0
INTERRUPTED = 130  # ``--once`` cut short: not a success a script should trust


def backoff_delay(attempt: int) -> float:
    """Seconds before reconnect ``attempt`` (0 first): 0.5, 1, 2, 4, 8, then 10."""
    return min(10.0, 0.5 * (1 << min(attempt, 5)))


async def run_top(url: str, key: str, interval: float = 1.0, *, once: bool = False,
                  as_json: bool = False, console: Console | None = None) -> int:
    """The ``top`` command; its exit status. ``once``: print one view (``as_json``: the
    ``hello`` and the first ``snapshot`` as one JSON object) instead of the live one.

    Runs in the main thread only (it takes SIGINT over while it runs); ValueError if
    ``url`` is not a server URL (see ``base_url``)."""
    screen = Screen(server=base_url(url))
    out = console or Console()
    if once:
        work = partial(_print_once, url, key, interval, screen, out, as_json=as_json)
    else:
        work = partial(_live, url, key, interval, screen, out)
    status = await _until_interrupted(partial(_one_line, work))
    if status is None:
        return INTERRUPTED if once else 0
    return status


async def _until_interrupted(work: Callable[[], Awaitable[int]]) -> int | None:
    """``work``'s result, or None if SIGINT came first (``work`` is then cancelled)."""
    result: list[int] = []
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            async def run() -> None:
                result.append(await work())
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    return result[0] if result else None


async def _one_line(work: Callable[[], Awaitable[None]]) -> int:
    """0, or 1 with the failure as one line on stderr (after the live view is gone)."""
    try:
        await work()
    except FeedError as error:
        print(f"chorusline: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


async def _print_once(url: str, key: str, interval: float, screen: Screen, out: Console,
                      *, as_json: bool) -> None:
    """Wait for the ``hello`` and the first snapshot (events on the way count), print."""
    async with open_feed(url, key, interval) as feed:
        screen.connection = "live"
        async for name, payload in feed:
            screen.apply(name, payload)
            if screen.hello is not None and screen.snapshot is not None:
                break
        else:
            raise FeedLost(f"{screen.server} ended the feed before its first snapshot")
    if as_json:
        # ``json`` escapes every non-ASCII and control character: nothing the server
        # sent can reach the terminal as an escape sequence.
        sys.stdout.write(json.dumps({"hello": screen.hello, "snapshot": screen.snapshot})
                         + "\n")
        sys.stdout.flush()
    else:
        out.print(render(screen))


async def _live(url: str, key: str, interval: float, screen: Screen, out: Console) -> None:
    painter = Painter(screen, out)
    error: FeedError | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(painter.run)
            try:
                await follow(url, key, interval, screen, painter.request)
            except FeedError as fatal:  # caught here, not wrapped in the nursery's group
                error = fatal
            nursery.cancel_scope.cancel()
    finally:
        painter.stop()
    if error is not None:
        raise error


async def follow(url: str, key: str, interval: float, screen: Screen,
                 changed: Callable[[], None], *,
                 backoff: Callable[[int], float] = backoff_delay) -> NoReturn:
    """Keep ``screen`` up to date from the feed, calling ``changed`` after each change.

    The first connection's failure is raised (the command cannot start); after that a
    ``FeedLost`` (or the server ending the feed) is shown in ``screen.connection`` and
    retried after ``backoff(attempt)`` seconds, counted from the last ``hello``. Raises
    only a refusal or a server that is not a console feed, both of which retrying
    cannot mend.
    """
    attempt = 0
    connected = False
    while True:
        try:
            async with open_feed(url, key, interval) as feed:
                connected = True
                screen.connection = "live"
                changed()
                async for name, payload in feed:
                    if name == "hello":
                        attempt = 0
                    if screen.apply(name, payload):
                        changed()
            raise FeedLost(f"{screen.server} ended the feed")
        except FeedLost as lost:
            if not connected:
                raise
            await _wait(screen, changed, str(lost), backoff(attempt))
            attempt += 1
        screen.connection = "connecting"
        changed()


async def _wait(screen: Screen, changed: Callable[[], None], why: str,
                seconds: float) -> None:
    """Sleep ``seconds``, showing why and a countdown in the header (the reason shows
    even when there is no wait at all)."""
    deadline = trio.current_time() + seconds
    left = seconds
    while True:
        screen.connection = f"lost: {why}; retrying in {math.ceil(left)} s"
        changed()
        if left <= 0:
            return
        await trio.sleep(min(left, 1.0))
        left = deadline - trio.current_time()


class Painter:
    """Draws the screen into a ``rich.live.Live`` display on the trio thread.

    Rich's own refresh thread would read the ``Screen`` while the feed task changes it,
    so refreshing is explicit: ``request`` marks the view stale, ``run`` draws it at most
    every FRAME_S and at least every IDLE_FRAME_S. The display starts with the first
    frame, which ``follow`` asks for only once connected: a command that fails to start
    never flashes a blank screen. On a terminal it takes the whole (alternate) screen
    and gives it back on ``stop``; piped, it prints the last frame at the end.
    """

    def __init__(self, screen: Screen, console: Console) -> None:
        self.screen = screen
        self.live = Live(console=console, screen=console.is_terminal, auto_refresh=False)
        self._stale = trio.Event()

    def request(self) -> None:
        self._stale.set()

    async def run(self) -> NoReturn:
        await self._stale.wait()
        self.live.start()
        while True:
            self._stale = trio.Event()
            self.live.update(layout(self.screen), refresh=True)
            await trio.sleep(FRAME_S)
            with trio.move_on_after(IDLE_FRAME_S - FRAME_S):
                await self._stale.wait()

    def stop(self) -> None:
        if self.live.is_started:
            self.live.stop()
