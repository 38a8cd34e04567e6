"""What an open supervisor console costs: waves of c streaming requests with a console
feed reader connected, against the same waves with nobody watching.

    flock /tmp/bench.lock .venv/bin/python benchmarks/http_load.py --console \\
        [--quick] [--console-interval S] [--json PATH] [--threads N]

``http_load.py --console`` runs this: the same in-process server, separate client process
and client as the other HTTP benchmarks (``max_tokens=N``, ``temperature=0``,
``ignore_eos``). In a "console" wave the client process also reads
``GET /v1/admin/events`` at ``--console-interval`` seconds (default 1, what the page asks
for; 0.25 is the fastest the feed allows) and parses every message, as the page does: the
server then builds a snapshot per interval (tree, engine figures and block map from the
GPU worker, in-flight traces) and sends every event and finished trace. The kinds
alternate (none, console, console, none, ...) so drift on a shared machine hits both
alike; the ratio is the median "console" wave's output tok/s over the median "none"
wave's (target >= 98 %, the issue's "<= 2 % loss").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import trio

from benchmarks.common import Row, percentile, print_table, user_texts, write_report
from benchmarks.http_load import (
    client_process,
    discover_model,
    fmt,
    open_client,
    serve_to,
    stream_turn,
)
from benchmarks.http_structured import Plan, Wave, run_wave

RATIO_TARGET = 0.98
FULL = Plan(concurrency=32, new_tokens=32, rounds=4)
QUICK = Plan(concurrency=8, new_tokens=8, rounds=1)
#: Prompts tagged apart from the other benchmarks', so no wave reuses another's prompt.
TAG = 1232


@dataclass
class Watched:
    """What the console reader received during one wave."""

    messages: int = 0
    snapshots: int = 0
    bytes: int = 0


async def read_console(client: httpx2.AsyncClient, interval: float, seen: Watched,
                       connected: trio.Event) -> None:
    """Read and parse the feed until cancelled (a page's work, minus the drawing)."""
    async with client.stream("GET", f"/admin/events?interval={interval}",
                             timeout=httpx2.Timeout(None, connect=30.0)) as response:
        response.raise_for_status()
        connected.set()
        async for line in response.aiter_lines():
            seen.bytes += len(line) + 1
            if line.startswith("data: "):
                seen.messages += 1
                if json.loads(line[6:]).get("object") == "admin.snapshot":
                    seen.snapshots += 1


async def console_client(url: str, key: str, plan: Plan, interval: float,
                         model: str | None) -> tuple[str, list[Wave], list[Watched]]:
    c = plan.concurrency
    async with open_client(url, key, c) as client:
        model = model or await discover_model(client)
        warm = await stream_turn(client, model, "Hi.", 4)  # spawns the session actor etc.
        if warm.error is not None:
            raise SystemExit(f"warm-up request failed: {warm.error}")
        texts = user_texts(TAG, 2 * plan.rounds * c)
        waves, watched = [], []
        for r in range(plan.rounds):
            for kind in ("none", "console") if r % 2 == 0 else ("console", "none"):
                batch, texts = texts[:c], texts[c:]
                if kind == "none":
                    waves.append(await run_wave(client, model, batch, plan.new_tokens, kind))
                    continue
                seen, connected = Watched(), trio.Event()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read_console, client, interval, seen, connected)
                    await connected.wait()
                    wave = await run_wave(client, model, batch, plan.new_tokens, "none")
                    nursery.cancel_scope.cancel()
                wave.kind = kind
                waves.append(wave)
                watched.append(seen)
    return model, waves, watched


async def serve_console(quick: bool, interval: float, threads: int, tmp: Path
                        ) -> tuple[str, dict[str, Any]]:
    from chorusline.runtime import load_model

    model = await trio.to_thread.run_sync(partial(load_model, progress=False))
    flags = ["--console", f"--console-interval={interval}", *(["--quick"] if quick else [])]
    return await serve_to(
        lambda url, key: client_process(url, key, tmp / "raw.json", *flags),
        model, threads, tmp, admin=True)


def rows_and_checks(plan: Plan, waves: list[Wave], watched: list[Watched], interval: float
                    ) -> tuple[list[Row], list[dict[str, Any]]]:
    c = plan.concurrency
    by_kind = {kind: [w for w in waves if w.kind == kind] for kind in ("none", "console")}
    rate = {kind: statistics.median(w.tok_s for w in ws) for kind, ws in by_kind.items()}
    ratio = rate["console"] / rate["none"]
    failures = sum(w.failures for w in waves)

    def spread(kind: str) -> str:
        return (f"median of {len(by_kind[kind])} waves: "
                + ", ".join(f"{w.tok_s:.1f}" for w in by_kind[kind]))

    def ttft(kind: str) -> list[float]:
        return [x for w in by_kind[kind] for x in w.ttft]

    seconds = sum(w.seconds for w in by_kind["console"])
    rows = [
        Row(f"c{c}_none_tok_s", f"c={c} nobody watching output", rate["none"], "tok/s",
            spread("none")),
        Row(f"c{c}_console_tok_s", f"c={c} console open output", rate["console"], "tok/s",
            spread("console")),
        Row(f"c{c}_console_over_none", f"c={c} console open / nobody watching", ratio * 100,
            "%", f"feed interval {interval:g} s; target >= {RATIO_TARGET:.0%}"),
        Row(f"c{c}_none_ttft_p50", f"c={c} nobody watching TTFT p50",
            percentile(ttft("none"), 50) * 1e3, "ms", f"n={len(ttft('none'))}"),
        Row(f"c{c}_console_ttft_p50", f"c={c} console open TTFT p50",
            percentile(ttft("console"), 50) * 1e3, "ms", f"n={len(ttft('console'))}"),
        Row(f"c{c}_feed_snapshots", f"c={c} feed snapshots read",
            float(sum(w.snapshots for w in watched)), "",
            f"{sum(w.messages for w in watched)} messages, "
            f"{sum(w.bytes for w in watched) / max(seconds, 1e-9) / 1024:,.1f} KiB/s"),
        Row(f"c{c}_failures", f"c={c} failures", float(failures), "",
            f"{sum(w.short for w in waves)} short turns (< N tokens)"),
    ]
    checks = [
        {"label": f"an open console keeps >= {RATIO_TARGET:.0%} of the output at c={c}",
         "value": ratio, "passed": ratio >= RATIO_TARGET, "shown": f"{ratio * 100:.1f} %"},
        {"label": "no failed requests", "value": float(failures), "passed": failures == 0,
         "shown": f"{failures} failed"},
    ]
    return rows, checks


def console_main(args: argparse.Namespace) -> int:
    """``http_load.py --console``: ``args`` are that script's parsed arguments."""
    plan, interval = (QUICK if args.quick else FULL), args.console_interval
    if args.raw is not None:  # the client process
        model, waves, watched = trio.run(console_client, args.url, args.key, plan,
                                         interval, args.model)
        args.raw.write_text(json.dumps({"model": model, "waves": [asdict(w) for w in waves],
                                        "watched": [asdict(w) for w in watched]}))
        return 0
    began, load_before = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model, raw = trio.run(serve_console, args.quick, interval, args.threads, Path(tmp))
    load_after = os.getloadavg()
    waves = [Wave(**wave) for wave in raw["waves"]]
    watched = [Watched(**seen) for seen in raw["watched"]]
    rows, checks = rows_and_checks(plan, waves, watched, interval)
    mode = "quick" if args.quick else "full"
    print(f"# chorusline console-cost HTTP benchmark ({mode}); model {model}; python "
          f"{platform.python_version()}; load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f}")
    print(f"# c={plan.concurrency}, N={plan.new_tokens} max_tokens, temperature 0, "
          f"ignore_eos; {plan.rounds} waves of each kind, alternating; 'console': a feed "
          f"reader at {interval:g} s connected for the whole wave")
    print_table(rows, checks, fmt)
    elapsed = time.perf_counter() - began
    print(f"# total {elapsed:.1f} s")
    write_report(args.json, mode=f"console {mode}", target="chorusline in process",
                 model=model, load_average={"before": load_before, "after": load_after},
                 new_tokens=plan.new_tokens, interval=interval,
                 rows=[asdict(row) for row in rows], waves=[asdict(w) for w in waves],
                 watched=[asdict(w) for w in watched], targets=checks, seconds=elapsed)
    return 0
