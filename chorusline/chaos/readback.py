"""What the system holds after a scenario, read back through its public API only.

The checker never looks inside the server (its database, its actors' memory): a user
pointing the suite at their own deployment has only the API, and what the API returns is
what their users would see. Admin routes give the engine's figures and the actor tree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

#: How long the readback waits for in-flight work (aborted streams) to drain.
SETTLE_SECONDS = 30.0


@dataclass
class Readback:
    #: Every message of every conversation the scenario wrote, all branches.
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: ``GET /v1/admin/engine``'s ``engine`` figures (None: the worker did not answer).
    engine: dict[str, Any] | None = None
    #: ``GET /v1/admin/actors``'s tree.
    tree: dict[str, Any] = field(default_factory=dict)
    ready: int = 0
    #: Wall time the scenario began: supervisor history before it is not its doing.
    since_wall: float = 0.0

    def nodes(self) -> Iterator[dict[str, Any]]:
        stack = [self.tree] if self.tree else []
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.get("children", ()))


def _idle(engine: dict[str, Any] | None) -> bool:
    return engine is not None and not (engine["num_running"] or engine["num_waiting"]
                                       or engine["kv_blocks_used"])


async def read_back(http: httpx.AsyncClient, admin: httpx.AsyncClient,
                    conversations: list[str], since_wall: float,
                    settle: float = SETTLE_SECONDS) -> Readback:
    """Wait (up to ``settle`` seconds) for the engine to go idle, then read everything.

    ``http`` is the workload's client (its key owns the conversations), ``admin`` one
    with an admin key; both have the API's ``/v1/`` as base URL.
    """
    readback = Readback(since_wall=since_wall)
    deadline = time.monotonic() + settle
    while True:
        readback.engine = await engine_figures(admin)
        if _idle(readback.engine) or time.monotonic() > deadline:
            break
        await trio.sleep(0.2)
    for conversation in conversations:
        response = await http.get(f"conversations/{conversation}/messages",
                                  params={"tree": "true"})
        response.raise_for_status()
        readback.conversations[conversation] = response.json()["data"]
    actors = await admin.get("admin/actors")
    actors.raise_for_status()
    readback.tree = actors.json()["tree"]
    readback.ready = await ready_status(http)
    return readback


async def engine_figures(admin: httpx.AsyncClient) -> dict[str, Any] | None:
    try:
        response = await admin.get("admin/engine")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    engine: dict[str, Any] | None = response.json().get("engine")
    return engine


async def ready_status(http: httpx.AsyncClient) -> int:
    """``/ready``'s status (0: no answer); it lives beside ``/v1``, not under it."""
    try:
        return (await http.get(str(http.base_url.join("/ready")))).status_code
    except httpx.HTTPError:
        return 0
