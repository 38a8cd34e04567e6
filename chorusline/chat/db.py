"""The one way chat code reaches the store: each call on a worker thread, typed.

The store is synchronous (sqlite3, psycopg's pool), so every call runs on a trio worker
thread under one capacity limiter: the event loop never waits on a disk or a socket, and
a burst of turns cannot open more connections than the pool holds. ``Db`` is typed with
a ``ParamSpec``, so mypy checks every store call made through it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import ParamSpec, TypeVar

import trio

T = TypeVar("T")
P = ParamSpec("P")


class Db:
    def __init__(self, threads: int = 8) -> None:
        self.threads = threads
        self._limiter: trio.CapacityLimiter | None = None

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._limiter is None:  # made on first use: it needs a running trio loop
            self._limiter = trio.CapacityLimiter(self.threads)
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs),
                                             limiter=self._limiter)
