"""What the supervisor console reads: snapshots for its feed, pages of children, traces.

The console's feed is the flight recorder's subscription (events, finished traces, as
they happen) interleaved with snapshots that only exist while somebody watches: nothing
here runs, and nothing is collected, until a client opens the feed. A snapshot is built
from what the actors already keep (the tree's counters, the engine's ``EngineStats``,
the recorder's live traces), so its cost is the walk that builds it, once per interval
per watcher, and never a message to a conversation or a session.

Rates (tokens per second, steps per second) are differences between this watcher's
successive engine figures, so two consoles at different intervals each see their own
smooth rates and neither resets the other's.

Each served model has its own engine: a snapshot's ``engines`` holds one entry per model
(by name), and ``engine`` repeats the default model's, which is what a single-model
console (and ``chorusline top``) reads.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from chorusline.actors import ActorDead, ActorSystem, AskTimeout, Subscription
from chorusline.chat.gpu_worker import GetBlockMap, GetStats
from chorusline.chat.served import ServedModel
from chorusline.protocols import EngineStats

#: A parent with more children than this shows only its busiest in a snapshot.
CHILDREN_SHOWN = 50
#: The window of finished turns the TTFT percentiles cover.
TTFT_WINDOW_S = 60.0
#: How long a snapshot waits for the GPU worker (it answers between engine steps).
WORKER_TIMEOUT_S = 2.0


async def ask_worker(system: ActorSystem, model: ServedModel, message: object,
                     timeout: float) -> Any:
    """``model``'s GPU worker's answer, or None while it restarts or does not answer in
    time: an operator needs the rest of the picture most exactly then."""
    worker = system.registry.lookup(model.worker_key)
    if worker is None:
        return None
    try:
        return await worker.ask(message, timeout=timeout)
    except (ActorDead, AskTimeout):
        return None


def engine_figures(stats: EngineStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    figures = asdict(stats)
    figures["kv_blocks_free"] = stats.kv_blocks_total - stats.kv_blocks_used
    return figures


def find_node(node: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The node at ``path`` in a snapshot tree, without its children."""
    if node.get("path") == path:
        return {k: v for k, v in node.items() if k != "children"}
    for child in node.get("children", []):
        if path == child.get("path") or path.startswith(f"{child.get('path')}/"):
            return find_node(child, path)
    return None


def with_restarting(node: dict[str, Any]) -> dict[str, Any]:
    """Show a static supervisor's children that are between incarnations (they have no
    cell, so the kernel's tree alone would lose them while they back off)."""
    base = node["path"].rstrip("/")
    for name in node.get("restarting", ()):
        node["children"].append({
            "path": f"{base}/{name}", "name": name, "kind": None, "actor_class": None,
            "state": "restarting", "mailbox_depth": None, "mailbox_capacity": None,
            "processed": None, "failed": None, "restarts": None, "last_failure": None,
            "exit_reason": None, "children": [],
        })
    for child in node["children"]:
        with_restarting(child)
    return node


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (a value that occurred, not an interpolation)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class ConsoleFeed:
    """One watcher of the console: its bounded subscription and its previous figures."""

    def __init__(self, system: ActorSystem, models: Sequence[ServedModel],
                 capacity: int) -> None:
        self._system = system
        #: The served models, the default first.
        self._models = list(models)
        self.subscription: Subscription = system.recorder.subscribe(capacity)
        self._previous: dict[str, tuple[float, EngineStats]] = {}

    def close(self) -> None:
        self.subscription.close()

    def hello(self, model: str, interval: float) -> dict[str, Any]:
        """The recorder's backlog: what happened before this watcher came."""
        recorder = self._system.recorder
        return {
            "object": "admin.hello", "worker_pid": os.getpid(), "system": self._system.name,
            "model": model, "interval": interval,
            "events": [event.to_json() for event in recorder.events],
            "traces": [trace.to_json() for trace in recorder.traces],
        }

    async def snapshot(self) -> dict[str, Any]:
        system = self._system
        snap = system.snapshot(max_children=CHILDREN_SHOWN)
        now = time.time()
        engines = {model.name: await self._engine(model, snap["tree"], now)
                   for model in self._models}
        recorder = system.recorder
        return {
            "object": "admin.snapshot", "time": now, "worker_pid": os.getpid(),
            "tree": with_restarting(snap["tree"]), "dead_letters": snap["dead_letters"],
            "faults": snap["faults"],
            "engine": engines[self._models[0].name], "engines": engines,
            "requests": [trace.to_json(spans=False) for trace in recorder.live.values()],
        }

    async def _engine(self, model: ServedModel, tree: dict[str, Any],
                      now: float) -> dict[str, Any]:
        system = self._system
        stats: EngineStats | None = await ask_worker(system, model, GetStats(),
                                                     WORKER_TIMEOUT_S)
        blocks = None
        if stats is not None:
            blocks = await ask_worker(system, model, GetBlockMap(), WORKER_TIMEOUT_S)
        driver = system.registry.lookup(model.driver_key)
        return {
            "model": model.name,
            "driver": None if driver is None else find_node(tree, driver.path),
            "engine": engine_figures(stats), "rates": self._rates(model.name, stats),
            "ttft_ms": self._ttft(now, model.name), "block_map": blocks,
        }

    def _rates(self, model: str, stats: EngineStats | None) -> dict[str, float] | None:
        """Per-second differences since this watcher's previous figures (None for the
        first snapshot, and across a worker restart, whose counters start again)."""
        now = time.monotonic()
        previous = self._previous.pop(model, None)
        if stats is not None:
            self._previous[model] = (now, stats)
        if stats is None or previous is None or stats.steps < previous[1].steps:
            return None
        elapsed = max(now - previous[0], 1e-6)
        before = previous[1]
        return {
            "output_tps": (stats.generated_tokens - before.generated_tokens) / elapsed,
            "prompt_tps": (stats.prompt_tokens - before.prompt_tokens) / elapsed,
            "steps_per_s": (stats.steps - before.steps) / elapsed,
        }

    def _ttft(self, now: float, model: str) -> dict[str, Any]:
        horizon = now - TTFT_WINDOW_S
        values = [
            trace.ttft_ms for trace in self._system.recorder.traces
            if trace.ttft_ms is not None and (trace.ended_wall() or 0.0) >= horizon
            and trace.attrs.get("model") == model
        ]
        return {"p50": percentile(values, 50), "p95": percentile(values, 95),
                "count": len(values)}
