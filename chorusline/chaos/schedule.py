"""What a scenario's fault schedule can do, each act written into the history.

A schedule is an async function of one ``Faults``: it waits for points in the run
(``at(0.5)`` = halfway) and injects. Actor faults go through the admin API, exactly the
calls the console's fault buttons make, so the same schedule runs against a deployment
the suite does not own; process and network faults need a spawned target. Every act is
recorded with its time, so the checker can measure recovery from each.
"""

from __future__ import annotations

import random
import signal
from typing import Any

import httpx
import trio

from chorusline.chaos.history import History
from chorusline.chaos.targets import Target


class Faults:
    def __init__(self, target: Target, admin: httpx.AsyncClient, history: History,
                 duration: float, rng: random.Random) -> None:
        self.target = target
        self.admin = admin
        self.history = history
        self.duration = duration
        self.rng = rng
        self.started = trio.current_time()
        self._engine: str | None = None

    async def at(self, fraction: float) -> None:
        """Sleep until ``fraction`` of the load phase has passed."""
        await trio.sleep_until(self.started + fraction * self.duration)

    # -- actor faults, through the admin API ---------------------------------------------
    async def engine(self) -> str:
        """The default model's engine subtree (``/chat/engines/<model>``), as the target
        names its default model."""
        if self._engine is None:
            response = await self.admin.get("admin/engine")
            response.raise_for_status()
            self._engine = f"/chat/engines/{response.json()['model']}"
        return self._engine

    async def actor(self, parent: str, name: str | None = None) -> str | None:
        """The path of a live child of ``parent`` (named ``name``, or any), else None."""
        try:
            response = await self.admin.get("admin/actors/children",
                                            params={"path": parent, "limit": "100"})
        except httpx.HTTPError:  # the server is restarting: there is nothing to find yet
            return None
        if response.status_code != 200:
            return None
        # Running ones only: a fault during a start tests the start, not the actor.
        live = [child for child in response.json()["children"]
                if child.get("state") == "running" and (name is None or child["name"] == name)]
        return str(self.rng.choice(live)["path"]) if live else None

    async def live_actor(self, parent: str, name: str | None = None,
                         timeout: float = 30.0) -> str:
        """``actor``, waiting for one to exist (a worker that is restarting, a dynamic
        supervisor whose children the load has not started yet)."""
        with trio.fail_after(timeout):
            # The admin API pushes no "actor started" event: ask until one is there.
            while (path := await self.actor(parent, name)) is None:  # noqa: ASYNC110
                await trio.sleep(0.05)
        return path

    async def inject(self, path: str, action: str, **fields: Any) -> bool:
        """One fault at ``path``; False if the actor went between finding and injecting
        (a 404: it passivated or restarted), which a schedule simply tries again."""
        response = await self.admin.post("admin/faults",
                                         json={"path": path, "action": action, **fields})
        if response.status_code == 404:
            return False
        response.raise_for_status()
        self.history.fault(action, path, **fields)
        return True

    async def inject_live(self, parent: str, action: str, name: str | None = None,
                          **fields: Any) -> str:
        """Inject into a live child of ``parent``, retrying until one takes it."""
        while True:
            path = await self.live_actor(parent, name)
            if await self.inject(path, action, **fields):
                return path

    async def clear(self) -> None:
        response = await self.admin.delete("admin/faults")
        response.raise_for_status()
        if response.json().get("cleared"):
            self.history.fault("heal", "actors", cleared=response.json()["cleared"])

    # -- process faults (a spawned target) -----------------------------------------------
    async def signal_server(self, sig: int, *, worker: bool = False) -> None:
        """Signal the server (or one of its workers) and wait until it serves again."""
        name = signal.Signals(sig).name
        self.history.fault(name, "worker" if worker else "server")
        await self.target.kill(sig, worker=worker)
        await self.target.wait_serving()

    # -- network faults (a spawned target's proxies) -------------------------------------
    def network(self, which: str, mode: str, seconds: float = 0.0) -> None:
        proxy = self.target.storage if which == "postgres" else self.target.redis
        if proxy is None:
            raise RuntimeError(f"no fault proxy in front of {which}")
        if mode == "cut":
            proxy.cut()
        elif mode == "blackhole":
            proxy.blackhole()
        elif mode == "latency":
            proxy.set_latency(seconds)
        else:
            proxy.heal()
        self.history.fault(mode, which, seconds=seconds)

    def heal_network(self) -> None:
        for which, proxy in (("postgres", self.target.storage), ("redis", self.target.redis)):
            if proxy is not None and (proxy.mode != "pass" or proxy.latency):
                self.network(which, "heal")
