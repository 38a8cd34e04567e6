"""Actor kernel micro-benchmarks against pykka and raw trio channels, in one run.

    .venv/bin/python benchmarks/actors.py [--quick] [--json PATH]

Every figure is taken in the same process on the same machine, so the ratios against
the targets compare like with like even when the absolute numbers move with load (the
project's machines are shared: quote ``uptime`` next to any figure). Throughputs are the
best of a few repeats, because on a shared machine the noise only ever slows a run down;
latencies (spawn+stop, restart) are percentiles over every sample.

What is measured, and why this way:

* tell: one task tells N messages to a counting actor, checkpointing every ``CHUNK``
  messages as a real producer would, into a mailbox large enough never to refuse one;
  the clock stops when an ask confirms the actor has counted all N, so queued-but-unread
  messages are not counted as delivered.
* ask: sequential asks (one in flight) to a ``SyncActor`` (answered directly in the
  asker's task while the actor is idle) and to an async ``Actor`` (mailbox, two scheduler
  passes); then 16 concurrent askers.
* spawn+stop: ``system.spawn`` then ``system.stop`` of a trivial actor, per actor.
* restart: a one_for_one ``Supervisor`` whose child crashes on a message; the clock runs
  from the crashing tell until the registry hands out the new incarnation (bound once its
  ``on_start`` is done) and it answers an ask.
  ``Backoff(initial=0.0)`` keeps every restart immediate and a huge ``Intensity`` keeps
  the supervisor from escalating, so this is restart latency, not deliberate backoff.
* baselines: pykka 4 ``ThreadingActor`` (tell, blocking ask) and a raw trio memory
  channel (one-way ``await send``; request/response over two channels).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pykka
import trio

if __package__ in (None, ""):
    # Run as a script: make the repository importable without installing it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Row, percentile
from chorusline.actors import (
    Actor,
    ActorRef,
    ActorSpec,
    ActorSystem,
    MailboxConfig,
    SyncActor,
    open_actor_system,
)
from chorusline.supervisors import Backoff, ChildSpec, GetChild, Intensity, supervisor_spec

CHUNK = 1_000
CONCURRENT_ASKERS = 16
ONE_WAY_BUFFER = 10_000  # the kernel's default mailbox capacity, for a like-for-like queue


@dataclass(frozen=True)
class Sizes:
    """Operations per repeat, chosen so that no repeat takes much over a second on a
    loaded two-core machine: the slow paths (mailbox asks, raw trio) get fewer."""

    tell: int
    ask_direct: int
    ask_mailbox: int
    spawn: int
    restarts: int
    pykka_tell: int
    pykka_ask: int
    trio_one_way: int
    trio_req_resp: int
    repeats: int


FULL = Sizes(
    tell=300_000,
    ask_direct=200_000,
    ask_mailbox=30_000,
    spawn=2_000,
    restarts=1_000,
    pykka_tell=50_000,
    pykka_ask=5_000,
    trio_one_way=50_000,
    trio_req_resp=30_000,
    repeats=5,
)
QUICK = Sizes(
    tell=50_000,
    ask_direct=20_000,
    ask_mailbox=5_000,
    spawn=300,
    restarts=200,
    pykka_tell=10_000,
    pykka_ask=1_000,
    trio_one_way=10_000,
    trio_req_resp=5_000,
    repeats=1,
)


# -- actors under test ----------------------------------------------------------------------
class SyncCounter(SyncActor):
    """Counts tells; an ask for ``"count"`` reports the total, anything else echoes."""

    def __init__(self) -> None:
        self.count = 0

    def handle(self, message: Any) -> Any:
        if message == "count":
            return self.count
        self.count += 1
        return message


class AsyncCounter(Actor):
    """The same as ``SyncCounter`` behind an async ``receive``: no direct-ask fast path."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if message == "count":
            return self.count
        self.count += 1
        return message


class Fragile(Actor):
    """Crashes on ``"boom"``: the child whose restarts are timed."""

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("injected by the benchmark")
        return message


class PykkaCounter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "count":
            return self.count
        self.count += 1
        return message


# -- helpers ----------------------------------------------------------------------------------
async def best_rate(repeats: int, count: int, once: Callable[[], Awaitable[float]]) -> float:
    """Operations per second of the fastest of ``repeats`` runs (``once`` returns seconds)."""
    return max([count / await once() for _ in range(repeats)])


def big_mailbox(count: int) -> MailboxConfig:
    return MailboxConfig(capacity=count + CHUNK)


# -- chorusline -------------------------------------------------------------------------------
async def tell_rate(system: ActorSystem, actor: type[Actor], n: int, repeats: int) -> float:
    async def once() -> float:
        ref = await system.spawn(ActorSpec(actor, mailbox=big_mailbox(n)))
        start = time.perf_counter()
        for i in range(n):
            ref.tell(i)
            if i % CHUNK == 0:
                await trio.lowlevel.checkpoint()
        counted = await ref.ask("count", timeout=60)
        elapsed = time.perf_counter() - start
        assert counted == n, (counted, n)
        await system.stop(ref)
        return elapsed

    return await best_rate(repeats, n, once)


async def ask_rate(
    system: ActorSystem, actor: type[Actor], n: int, askers: int, repeats: int
) -> float:
    async def once() -> float:
        ref = await system.spawn(ActorSpec(actor))
        per_task = n // askers

        async def asker() -> None:
            for i in range(per_task):
                await ref.ask(i)

        start = time.perf_counter()
        if askers == 1:
            await asker()
        else:
            async with trio.open_nursery() as nursery:
                for _ in range(askers):
                    nursery.start_soon(asker)
        elapsed = time.perf_counter() - start
        await system.stop(ref)
        return elapsed

    return await best_rate(repeats, (n // askers) * askers, once)


async def spawn_stop_us(system: ActorSystem, n: int) -> list[float]:
    samples: list[float] = []
    spec = ActorSpec(SyncCounter)
    for _ in range(n):
        start = time.perf_counter()
        ref = await system.spawn(spec)
        await system.stop(ref)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


async def restart_us(system: ActorSystem, n: int) -> list[float]:
    sup = await system.spawn(
        supervisor_spec(
            "bench-sup",
            [ChildSpec(Fragile, name="child", register_as="bench-child")],
            intensity=Intensity(max_restarts=10**9, period=3600.0),
            backoff=Backoff(initial=0.0, jitter=0.0),
        )
    )
    samples: list[float] = []
    current: ActorRef | None = await sup.ask(GetChild("child"))
    assert current is not None
    for _ in range(n):
        old = current
        start = time.perf_counter()
        old.tell("boom")
        # The registry binds the key to the new incarnation once its on_start is done:
        # the way a client finds a restarted actor, with no extra ask on the supervisor.
        current = await system.registry.wait_for("bench-child")
        while current is old:
            await old.join()
            current = await system.registry.wait_for("bench-child")
        assert await current.ask("ping") == "ping"
        samples.append((time.perf_counter() - start) * 1e6)
    assert current.statistics().restarts == n
    await system.stop(sup)
    return samples


# -- raw trio -----------------------------------------------------------------------------------
async def trio_one_way(n: int, repeats: int) -> float:
    async def once() -> float:
        send, receive = trio.open_memory_channel[int](ONE_WAY_BUFFER)
        done = trio.Event()

        async def consumer() -> None:
            count = 0
            async for _ in receive:
                count += 1
                if count == n:
                    done.set()
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            start = time.perf_counter()
            for i in range(n):
                await send.send(i)
            await done.wait()
            elapsed = time.perf_counter() - start
        return elapsed

    return await best_rate(repeats, n, once)


async def trio_request_response(n: int, repeats: int) -> float:
    async def once() -> float:
        req_send, req_receive = trio.open_memory_channel[int](0)
        resp_send, resp_receive = trio.open_memory_channel[int](0)

        async def server() -> None:
            async with resp_send:
                async for message in req_receive:
                    await resp_send.send(message)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            start = time.perf_counter()
            async with req_send:
                for i in range(n):
                    await req_send.send(i)
                    await resp_receive.receive()
            elapsed = time.perf_counter() - start
        return elapsed

    return await best_rate(repeats, n, once)


# -- pykka (plain threads, outside trio) --------------------------------------------------------
def pykka_rates(sizes: Sizes) -> tuple[float, float]:
    tell_best = ask_best = 0.0
    for _ in range(sizes.repeats):
        ref = PykkaCounter.start()
        try:
            start = time.perf_counter()
            for i in range(sizes.pykka_tell):
                ref.tell(i)
            counted = ref.ask("count")
            tell_best = max(tell_best, sizes.pykka_tell / (time.perf_counter() - start))
            assert counted == sizes.pykka_tell
            for i in range(100):  # warm the handoff between the two threads
                ref.ask(i)
            start = time.perf_counter()
            for i in range(sizes.pykka_ask):
                ref.ask(i)
            ask_best = max(ask_best, sizes.pykka_ask / (time.perf_counter() - start))
        finally:
            ref.stop()
    return tell_best, ask_best


# -- driver -------------------------------------------------------------------------------------
async def measure_trio_side(sizes: Sizes) -> list[Row]:
    r = sizes.repeats
    c = CONCURRENT_ASKERS
    rows: list[Row] = []

    def add(key: str, label: str, value: float, unit: str, note: str) -> None:
        rows.append(Row(key, label, value, unit, note))

    async with open_actor_system("bench") as system:
        n = sizes.tell
        add("tell_sync", "chorusline tell -> SyncActor",
            await tell_rate(system, SyncCounter, n, r), "msg/s", f"N={n}")
        add("tell_async", "chorusline tell -> Actor",
            await tell_rate(system, AsyncCounter, n, r), "msg/s", f"N={n}")
        n = sizes.ask_direct
        add("ask_sync", "chorusline ask SyncActor (direct), c=1",
            await ask_rate(system, SyncCounter, n, 1, r), "rt/s",
            f"N={n}, answered in the asker's task")
        add("ask_sync_c16", f"chorusline ask SyncActor, c={c}",
            await ask_rate(system, SyncCounter, n, c, r), "rt/s", f"N={n}, total")
        n = sizes.ask_mailbox
        add("ask_async", "chorusline ask Actor (mailbox), c=1",
            await ask_rate(system, AsyncCounter, n, 1, r), "rt/s",
            f"N={n}, mailbox + 2 scheduler passes")
        add("ask_async_c16", f"chorusline ask Actor, c={c}",
            await ask_rate(system, AsyncCounter, 2 * n, c, r), "rt/s", f"N={2 * n}, total")
        spawn = await spawn_stop_us(system, sizes.spawn)
        note = f"n={sizes.spawn}"
        add("spawn_p50", "chorusline spawn+stop p50", percentile(spawn, 50), "us", note)
        add("spawn_p99", "chorusline spawn+stop p99", percentile(spawn, 99), "us", note)
        restart = await restart_us(system, sizes.restarts)
        note = f"n={sizes.restarts}, one_for_one, Backoff(initial=0)"
        add("restart_p50", "chorusline restart p50", percentile(restart, 50), "us", note)
        add("restart_p99", "chorusline restart p99", percentile(restart, 99), "us", note)
    n = sizes.trio_one_way
    add("trio_one_way", "raw trio channel one-way (await send)",
        await trio_one_way(n, r), "msg/s", f"N={n}, buffer {ONE_WAY_BUFFER}")
    n = sizes.trio_req_resp
    add("trio_req_resp", "raw trio request/response, c=1",
        await trio_request_response(n, r), "rt/s", f"N={n}, two channels, buffer 0")
    return rows


@dataclass
class Target:
    label: str
    ratio: float
    goal: float
    higher_is_better: bool = True

    @property
    def passed(self) -> bool:
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal


def targets(v: dict[str, float]) -> list[Target]:
    one_way = v["trio_one_way"]
    req = v["trio_req_resp"]
    pk = v["pykka_ask"]
    return [
        Target("tell SyncActor / trio one-way  (>= 5x)", v["tell_sync"] / one_way, 5.0),
        Target("tell Actor / trio one-way      (>= 5x)", v["tell_async"] / one_way, 5.0),
        Target("ask direct (SyncActor) / trio req-resp (>= 1.5x)", v["ask_sync"] / req, 1.5),
        Target("ask mailbox (Actor) / trio req-resp    (>= 1.5x)", v["ask_async"] / req, 1.5),
        Target("ask direct (SyncActor) / pykka ask     (>= 4x)", v["ask_sync"] / pk, 4.0),
        Target("ask mailbox (Actor) / pykka ask        (>= 4x)", v["ask_async"] / pk, 4.0),
        Target("restart p99 (<= 1000 us)", v["restart_p99"], 1000.0, higher_is_better=False),
    ]


def fmt(value: float, unit: str) -> str:
    if unit == "us":
        return f"{value:,.1f} {unit}"
    return f"{value:,.0f} {unit}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (< 15 s)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    began = time.perf_counter()

    rows = trio.run(measure_trio_side, sizes)
    pk_tell, pk_ask = pykka_rates(sizes)
    rows.insert(-2, Row("pykka_tell", "pykka ThreadingActor tell", pk_tell, "msg/s",
                        f"N={sizes.pykka_tell}"))
    rows.insert(-2, Row("pykka_ask", "pykka ThreadingActor ask (blocking), c=1", pk_ask,
                        "rt/s", f"N={sizes.pykka_ask}"))
    values = {row.key: row.value for row in rows}

    load = os.getloadavg()
    print(f"# chorusline actor kernel benchmark ({'quick' if args.quick else 'full'}); "
          f"python {platform.python_version()}, trio {trio.__version__}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"throughputs best of {sizes.repeats}")
    width = max(len(row.label) for row in rows)
    print(f"{'measurement':<{width}}  {'value':>20}  note")
    for row in rows:
        print(f"{row.label:<{width}}  {fmt(row.value, row.unit):>20}  {row.note}")
    print()
    print("# targets")
    checks = targets(values)
    for check in checks:
        shown = f"{check.ratio:,.1f} us" if not check.higher_is_better else f"{check.ratio:.2f}x"
        print(f"{'PASS' if check.passed else 'MISS'}  {check.label:<50} {shown}")
    ask_ok = [name for name, key in (("direct SyncActor", "ask_sync"), ("mailbox Actor",
              "ask_async")) if values[key] / values["trio_req_resp"] >= 1.5
              and values[key] / values["pykka_ask"] >= 4.0]
    print(f"ask targets met by: {', '.join(ask_ok) if ask_ok else 'neither'}")
    elapsed = time.perf_counter() - began
    print(f"# total {elapsed:.1f} s")

    if args.json is not None:
        args.json.write_text(json.dumps({
            "mode": "quick" if args.quick else "full",
            "load_average": load,
            "rows": [asdict(row) for row in rows],
            "targets": [{**asdict(c), "passed": c.passed} for c in checks],
            "seconds": elapsed,
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
