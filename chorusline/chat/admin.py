"""``Admin``: what operators may see and do to the running actor system.

The admin API, the CLI demo and the metrics collector read the tree and drive the fault
injector through this and nothing else, so no code outside ``chat`` holds the actor
system: what an operator can do is exactly the methods below, each checked (a path must
name a live actor, a plan must fit the actor's kind) before anything changes.
"""

from __future__ import annotations

from typing import Any

from chorusline.actors import ActorSystem
from chorusline.chat.console import ConsoleFeed, ask_worker, engine_figures, find_node
from chorusline.chat.gpu_worker import GetStats
from chorusline.chat.served import ServedModel, ServedModels
from chorusline.chat.stopping import stop_turn
from chorusline.protocols import InvalidRequest, ModelNotFound, NotFound


class Admin:
    def __init__(self, system: ActorSystem, models: ServedModels) -> None:
        self._system = system
        self._models = models

    def _model(self, name: str | None) -> ServedModel:
        if name is None:
            return self._models.default
        model = self._models.lookup(name)
        if model is None:
            raise ModelNotFound(f"The model `{name}` does not exist", param="model")
        return model

    def snapshot(self) -> dict[str, Any]:
        """The actor system's own snapshot: the live tree with each actor's statistics,
        dead letters, fault plans (plain JSON-serialisable data)."""
        return self._system.snapshot()

    async def engine_stats(self, model: str | None = None,
                           timeout: float = 10.0) -> dict[str, Any]:
        """``model``'s (default: the default model's) engine driver counters plus fresh
        engine figures asked of its GPU worker.

        The worker answers between engine steps, so the figures are exact rather than a
        step old. ``engine`` is None while the worker restarts (or does not answer in
        ``timeout``): operators need the driver's view most exactly then.
        """
        served = self._model(model)
        driver = self._system.registry.lookup(served.driver_key)
        node = None if driver is None else find_node(self.snapshot()["tree"], driver.path)
        stats = await ask_worker(self._system, served, GetStats(), timeout)
        return {"model": served.name, "driver": node, "engine": engine_figures(stats)}

    def model_names(self) -> list[str]:
        """Every served model's name, the default first."""
        return [m.name for m in self._models.ordered()]

    # -- the console ----------------------------------------------------------------------
    def watch(self, capacity: int = 1000) -> ConsoleFeed:
        """A console feed: the recorder queues events for it (at most ``capacity``) until
        it is closed, so close it when its reader goes."""
        return ConsoleFeed(self._system, self._models.ordered(), capacity)

    def children(self, path: str, query: str = "", offset: int = 0,
                 limit: int = 50) -> dict[str, Any]:
        """A page of the children of the actor at ``path`` whose name contains ``query``:
        how the console lists a dynamic supervisor's 100,000 conversations."""
        nodes = self._system.children(path)
        if nodes is None:
            raise NotFound(f"no live actor at {path!r}", param="path")
        needle = query.casefold()
        matched = [node for node in nodes if needle in str(node["name"]).casefold()]
        return {"path": path, "total": len(nodes), "matched": len(matched),
                "offset": offset, "children": matched[offset:offset + limit]}

    def detail(self, path: str) -> dict[str, Any]:
        """One actor's statistics, current message, watchers, and its restart history
        (kept by its supervisor, which outlives every incarnation)."""
        detail = self._system.inspect(path)
        if detail is None:
            raise NotFound(f"no live actor at {path!r}", param="path")
        parent_path, _, name = path.rpartition("/")
        parent = self._system.inspect(parent_path or "/")
        intensity = (parent or {}).get("node", {}).get("intensity") or {}
        detail["restart_history"] = [
            entry for entry in intensity.get("history", []) if entry.get("child") == name
        ]
        return detail

    def traces(self) -> dict[str, Any]:
        """The in-flight traces and the recently finished ones (oldest first)."""
        recorder = self._system.recorder
        return {"live": [trace.to_json() for trace in recorder.live.values()],
                "finished": [trace.to_json() for trace in recorder.traces]}

    def trace(self, request_id: str) -> dict[str, Any]:
        found = self._system.recorder.find(request_id)
        if found is None:
            raise NotFound(f"no recent request {request_id!r}", param="request_id")
        return found.to_json()

    async def abort(self, request_id: str) -> dict[str, Any]:
        """End any in-flight request's generation now (``stopping.stop_turn``)."""
        await stop_turn(self._system, [m.driver_key for m in self._models], request_id)
        return {"request_id": request_id, "aborted": True}

    def inject_fault(self, path: str, action: str, *, on_message: int = 1,
                     seconds: float = 0.0, fraction: float = 0.0,
                     seed: int | None = None) -> None:
        """Crash, delay, drop or kill the live actor at ``path``.

        Only live actors can be named, so a typo is a NotFound rather than a plan that
        silently waits for an actor that never comes. Thread actors (the GPU worker) run
        no trio message loop for a plan to hook into: only ``kill`` applies to them.
        """
        ref = self._system.lookup(path)
        if ref is None:
            raise NotFound(f"no live actor at {path!r}", param="path")
        faults = self._system.faults
        if action == "kill":
            if not faults.kill(path):  # it stopped since the lookup
                raise NotFound(f"no live actor at {path!r}", param="path")
            return
        if ref.statistics().kind == "thread":
            raise InvalidRequest(f"{path} is a thread actor: only 'kill' applies to it",
                                 param="action")
        try:
            if action == "crash":
                faults.crash(path, on_message=on_message)
            elif action == "delay":
                faults.delay(path, seconds)
            elif action == "drop":
                faults.drop(path, fraction, seed=seed)
            else:
                raise InvalidRequest(f"unknown fault action {action!r}", param="action")
        except ValueError as error:  # an out-of-range number, as the injector checks it
            raise InvalidRequest(str(error)) from None

    def clear_faults(self, path: str | None = None) -> list[str]:
        """Remove the fault plans (all, or ``path``'s); returns the paths that had one."""
        active = self._system.faults.active()
        if path is None:
            self._system.faults.clear()
            return sorted(active)
        if path not in active and self._system.lookup(path) is None:
            raise NotFound(f"no live actor and no fault plan at {path!r}", param="path")
        self._system.faults.clear(path)
        return [path] if path in active else []

    def active_faults(self) -> dict[str, dict[str, Any]]:
        """Fault plans in force, by actor path (a consumed one-shot crash is gone)."""
        return self._system.faults.active()

    def gpu_worker_path(self, model: str | None = None) -> str | None:
        """Where ``model``'s (default: the default model's) GPU worker lives now; None
        while it restarts."""
        worker = self._system.registry.lookup(self._model(model).worker_key)
        return None if worker is None else worker.path

    def kill_gpu_worker(self, model: str | None = None) -> bool:
        """Kill a GPU worker now (its supervisor restarts it and the driver resumes
        the streams it was serving): the demo's fault. False while it is restarting."""
        path = self.gpu_worker_path(model)
        return path is not None and self._system.faults.kill(path)

