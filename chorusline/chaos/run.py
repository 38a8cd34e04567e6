"""Running scenarios: load, faults, recovery, read-back, verdicts.

One scenario is four phases, always in this order:

1. **load**: the clients run turns while the schedule injects its faults, for
   ``duration`` seconds;
2. **heal**: every actor fault plan is cleared and every proxy passes traffic again;
3. **recovery**: the clients go on until a turn has succeeded after every fault (the
   recovery time of each), or ``recovery_timeout`` passes (the ``recovered`` invariant
   then fails: a system that never comes back has lost everything after the fault);
4. **read-back and check**: the system's durable state, through its API, against the
   history.

Scenarios run one after another on one target, each on conversations of its own, so
one scenario's turns never muddle another's verdict.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import httpx
import trio

from chorusline.chaos.checker import Expect, Verdict, check, verdict
from chorusline.chaos.history import History
from chorusline.chaos.readback import read_back
from chorusline.chaos.scenarios import Scenario
from chorusline.chaos.schedule import Faults
from chorusline.chaos.targets import REDIS, Target
from chorusline.chaos.workload import open_clients

RECOVERY_TIMEOUT = 120.0
PROGRESS_EVERY = 2.0


@dataclass(frozen=True)
class RunOptions:
    duration: float = 60.0
    clients: int | None = None
    seed: int = 1
    recovery_timeout: float = RECOVERY_TIMEOUT


@dataclass
class Outcome:
    scenario: Scenario
    history: History | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    skipped: str | None = None
    #: The fault schedule could not carry out its faults (reported as a violation).
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.skipped is not None or all(v.ok for v in self.verdicts)

    def figure(self, invariant: str, name: str) -> Any:
        for found in self.verdicts:
            if found.name == invariant:
                return found.figures.get(name)
        return None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.scenario.name, "summary": self.scenario.summary,
                "skipped": self.skipped, "ok": self.ok, "seconds": round(self.seconds, 1),
                "counts": None if self.history is None else self.history.counts(),
                "verdicts": [v.to_json() for v in self.verdicts],
                "history": None if self.history is None else self.history.to_json()}


def missing(scenario: Scenario, target: Target) -> str | None:
    lacking = sorted(scenario.needs - target.abilities)
    if not lacking:
        return None
    return "needs " + ", ".join({"process": "--spawn", "postgres": "--store postgresql://...",
                                 "redis": "--redis URL"}.get(n, n) for n in lacking)


def expectation(scenario: Scenario, target: Target, restarts: int) -> Expect:
    """How many token buckets a key may have drawn on in this scenario."""
    processes = target.processes
    if REDIS in target.abilities:
        copies = 1 + (processes if scenario.redis_fault else 0)
    else:
        copies = processes * (1 + restarts)
    return replace(scenario.expect, limiter_copies=copies)


async def run_scenario(scenario: Scenario, target: Target, options: RunOptions,
                       out: TextIO = sys.stderr) -> Outcome:
    outcome = Outcome(scenario)
    if (reason := missing(scenario, target)) is not None:
        outcome.skipped = reason
        return outcome
    began = time.monotonic()
    await target.reconfigure(workers=scenario.workers)
    await target.wait_serving()
    workload = scenario.workload
    if options.clients is not None and workload.clients < options.clients:
        workload = replace(workload, clients=options.clients)
    history = outcome.history = History(scenario.name)
    since_wall, first_epoch = time.time(), target.epoch
    rng = random.Random(options.seed)
    key = target.limited_key if scenario.limited else target.admin_key
    async with target.client(key) as http, target.client() as admin:
        clients = await open_clients(http, history, workload, options.seed,
                                     lambda: target.epoch)
        faults = Faults(target, admin, history, options.duration, rng)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(client.run, stop)
            nursery.start_soon(progress, scenario.name, history, began, stop, out)
            with trio.move_on_after(options.duration):
                try:
                    await scenario.schedule(faults)
                except (httpx.HTTPError, trio.TooSlowError, RuntimeError) as error:
                    outcome.error = f"the fault schedule failed: {error!r}"
                await trio.sleep_forever()
            faults.heal_network()
            await target.wait_serving()  # a process fault may still be restarting it
            await faults.clear()
            with trio.move_on_after(options.recovery_timeout):
                await recovered(history)
            stop.set()
        readback = await read_back(http, admin, [c for cl in clients for c in cl.conversations],
                                   since_wall)
    outcome.verdicts = check(history, readback,
                             expectation(scenario, target, target.epoch - first_epoch))
    if outcome.error is not None:
        outcome.verdicts.append(verdict("schedule_ran", [outcome.error]))
    outcome.seconds = time.monotonic() - began
    return outcome


async def recovered(history: History) -> None:
    """Return once a turn invoked after the last fault has succeeded."""
    faults = [fault.mono for fault in history.faults if fault.name != "heal"]
    await history.ok_after(max(faults, default=0.0))


async def progress(name: str, history: History, began: float, stop: trio.Event,
                   out: TextIO) -> None:
    while not stop.is_set():
        with trio.move_on_after(PROGRESS_EVERY):
            await stop.wait()
        counts = history.counts()
        print(f"  {name:<20} {time.monotonic() - began:6.1f}s  ops {counts['operations']:>5}"
              f" (ok {counts['ok']}, info {counts['info']}, fail {counts['fail']})  faults "
              f"{counts['faults']}", file=out, flush=True)


async def run_all(scenarios: list[Scenario], target: Target, options: RunOptions,
                  out: TextIO = sys.stderr,
                  on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    outcomes = []
    for scenario in scenarios:
        print(f"{scenario.name}: {scenario.summary}", file=out, flush=True)
        outcome = await run_scenario(scenario, target, options, out)
        if outcome.skipped:
            print(f"  skipped: {outcome.skipped}", file=out, flush=True)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
