"""The scenarios: each a workload, a fault schedule and what the faults excuse.

Every scenario is checked against every invariant (``checker.INVARIANTS``); ``Expect``
says only what its faults legitimately change (an escalation that is the point of the
test, extra rate-limit buckets while Redis is down). To add one, write its schedule as
an async function of ``Faults`` and append a ``Scenario`` to ``SCENARIOS``
(docs/faults.md walks through it).
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from chorusline.chaos.checker import Expect
from chorusline.chaos.schedule import Faults
from chorusline.chaos.targets import ACTOR, POSTGRES, PROCESS, REDIS
from chorusline.chaos.workload import Workload

Schedule = Callable[[Faults], Awaitable[None]]
CONVERSATIONS, SESSIONS, BUCKETS = "/chat/conversations", "/chat/sessions", "/chat/buckets"
#: Restarts of a model's engine supervisor's children allowed in its period (chat.tree).
ENGINE_INTENSITY = 5


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    schedule: Schedule
    needs: frozenset[str] = frozenset({ACTOR})
    workload: Workload = field(default_factory=Workload)
    #: Drive the load with the tight-tier key, so the limiter is exercised.
    limited: bool = False
    #: Server processes it runs on (a spawned target is restarted to fit).
    workers: int = 1
    expect: Expect = field(default_factory=Expect)
    #: Its faults put Redis out of reach: each process may fall back to its own bucket.
    redis_fault: bool = False


async def gpu_worker_killed(faults: Faults) -> None:
    for when in (0.2, 0.45, 0.7):
        await faults.at(when)
        await faults.inject_live(await faults.engine(), "kill", "gpu-worker")


async def scheduler_crash(faults: Faults) -> None:
    for when in (0.25, 0.6):
        await faults.at(when)
        await faults.inject_live(await faults.engine(), "crash", "driver", on_message=1)


async def conversation_crash(faults: Faults) -> None:
    for when in (0.2, 0.4, 0.6):
        await faults.at(when)
        # Its second message from now: the next turn's, after the first is under way.
        await faults.inject_live(CONVERSATIONS, "crash", on_message=2)


async def session_crash(faults: Faults) -> None:
    for when in (0.25, 0.6):
        await faults.at(when)
        await faults.inject_live(SESSIONS, "crash", on_message=1)


async def bucket_delay_drop(faults: Faults) -> None:
    await faults.at(0.15)
    path = await faults.live_actor(BUCKETS)
    await faults.inject(path, "delay", seconds=0.5)
    await faults.at(0.45)
    await faults.clear()
    await faults.inject(path, "drop", fraction=0.5, seed=faults.rng.randrange(1 << 30))
    await faults.at(0.75)
    await faults.clear()


async def escalation(faults: Faults) -> None:
    """One more GPU-worker death than the model's engine supervisor tolerates in its
    period: it gives up, ``/chat/engines`` restarts that model's whole subtree, and
    service must resume."""
    await faults.at(0.15)
    for _ in range(ENGINE_INTENSITY + 1):
        await faults.inject_live(await faults.engine(), "kill", "gpu-worker")


def outage(which: str, mode: str) -> Schedule:
    async def schedule(faults: Faults) -> None:
        await faults.at(0.25)
        faults.network(which, mode, seconds=0.2)
        await faults.at(0.6)
        faults.network(which, "heal")

    return schedule


async def overload(faults: Faults) -> None:
    """No injected fault: the burst itself (twice what the queue admits) is the fault."""
    faults.history.fault("burst", "engine queue")


async def no_fault(faults: Faults) -> None:
    faults.history.fault("load", "clients")


async def sigkill(faults: Faults) -> None:
    for when in (0.3, 0.7):
        await faults.at(when)
        await faults.signal_server(signal.SIGKILL)


async def sigterm(faults: Faults) -> None:
    await faults.at(0.4)
    await faults.signal_server(signal.SIGTERM)


async def kill_worker(faults: Faults) -> None:
    await faults.at(0.4)
    await faults.signal_server(signal.SIGKILL, worker=True)


BASE = Workload()
SPAWNED = frozenset({ACTOR, PROCESS})
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("gpu-worker-kill", "the GPU worker thread killed mid-stream, three times",
             gpu_worker_killed),
    Scenario("scheduler-crash", "the engine driver (scheduler) crashes, twice",
             scheduler_crash),
    Scenario("conversation-crash", "conversation actors crash mid-turn, three times",
             conversation_crash),
    Scenario("session-crash", "the key's session actor crashes, twice", session_crash),
    Scenario("bucket-delay-drop", "the rate-limit bucket delays every message 0.5 s, then "
             "drops half of them", bucket_delay_drop, limited=True),
    Scenario("escalation", "the GPU worker dies more often than its supervisor allows: "
             "escalation to /chat and recovery", escalation, expect=Expect(escalation=True)),
    Scenario("storage-outage", "PostgreSQL unreachable (connections cut) for a third of "
             "the run", outage("postgres", "cut"), needs=frozenset({POSTGRES})),
    Scenario("storage-half-open", "PostgreSQL half-open: connections accepted, nothing "
             "answered, for a third of the run", outage("postgres", "blackhole"),
             needs=frozenset({POSTGRES})),
    Scenario("storage-latency", "200 ms added to every PostgreSQL packet for a third of "
             "the run", outage("postgres", "latency"), needs=frozenset({POSTGRES})),
    Scenario("redis-outage", "Redis unreachable during rate-limited load",
             outage("redis", "cut"), needs=frozenset({REDIS}), limited=True,
             redis_fault=True),
    Scenario("redis-half-open", "Redis half-open during rate-limited load",
             outage("redis", "blackhole"), needs=frozenset({REDIS}), limited=True,
             redis_fault=True),
    Scenario("overload-burst", "a burst of clients twice what the engine queue admits",
             overload, workload=replace(BASE, clients=24, conversations_per_client=1)),
    Scenario("disconnect-storm", "clients hang up half their streams at a random chunk "
             "and retry", no_fault, workload=replace(BASE, cut_fraction=0.5)),
    Scenario("slow-readers", "clients read each line of their stream 0.1 s late",
             no_fault, workload=replace(BASE, read_delay=0.1)),
    Scenario("sigkill-restart", "the whole server SIGKILLed mid-stream and restarted, "
             "twice", sigkill, needs=SPAWNED),
    Scenario("sigterm-drain", "SIGTERM with streams in flight: drain, exit, restart",
             sigterm, needs=SPAWNED),
    Scenario("workers-kill", "two API processes on one port sharing PostgreSQL and Redis; "
             "one is SIGKILLed", kill_worker, needs=SPAWNED | {POSTGRES, REDIS}, workers=2,
             limited=True),
)


def select_scenarios(names: list[str]) -> list[Scenario]:
    """The scenarios called ``names`` (all when empty), in the order asked."""
    by_name = {scenario.name: scenario for scenario in SCENARIOS}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"unknown scenario {unknown[0]!r}; 'chorusline chaos list' "
                         "shows them")
    return [by_name[name] for name in names] if names else list(SCENARIOS)
