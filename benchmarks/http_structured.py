"""What structured outputs cost over HTTP: waves of c streaming requests with half of
them under ``response_format: json_schema``, against the same waves with none.

    flock /tmp/bench.lock .venv/bin/python benchmarks/http_load.py --structured \\
        [--quick] [--json PATH] [--threads N] [--url URL --key KEY]

``http_load.py --structured`` runs this: the same in-process server (bundled SmolLM2 on
the CPU, SQLite in a temporary directory, limits that never interfere, Hypercorn on an
ephemeral loopback port), the same separate client process and the same client, with
``max_tokens=N``, ``temperature=0`` and ``ignore_eos``. The two kinds of wave alternate
(none, half, half, none, ...) in one run, so drift on a shared machine hits both alike;
each wave's output tok/s is its completion tokens over its wall time, and the ratio is
the median wave of "half" over the median wave of "none" (target >= 90 %).

The schema is ``benchmarks/grammar.py``'s engine schema: a title and at least 16
entries, so no constrained reply can complete inside N tokens and both kinds make
exactly N tokens per request (a completed grammar would end its reply early, whatever
``ignore_eos`` says). Each constrained turn must start as the schema's JSON (``{`` then
the ``"title"`` key); a turn that does not, or runs short, is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import trio

from benchmarks.common import Row, percentile, print_table, user_texts, write_report
from benchmarks.grammar import ENGINE_SCHEMA
from benchmarks.http_load import (
    Turn,
    client_process,
    discover_model,
    fmt,
    open_client,
    serve_to,
    stream_turn,
)

RATIO_TARGET = 0.90
RESPONSE_FORMAT: dict[str, Any] = {"type": "json_schema", "json_schema": {
    "name": "entries", "schema": ENGINE_SCHEMA, "strict": True}}
#: Prompts tagged apart from http_load's levels, so no wave reuses another's prompt.
TAG = 1032


@dataclass(frozen=True)
class Plan:
    concurrency: int
    new_tokens: int
    #: Waves of each kind.
    rounds: int


FULL = Plan(concurrency=32, new_tokens=32, rounds=3)
QUICK = Plan(concurrency=8, new_tokens=8, rounds=1)


@dataclass
class Wave:
    kind: str  # "none" or "half"
    seconds: float
    tokens: int
    failures: int
    short: int
    ttft: list[float]
    #: TTFT of the turns under the schema.
    schema_ttft: list[float] = field(default_factory=list)
    schema_turns: int = 0
    #: Constrained turns that start as the schema's JSON and made all N tokens.
    schema_ok: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds


def looks_like_the_schema(text: str) -> bool:
    head = text.lstrip()
    return head.startswith("{") and head[1:].lstrip().startswith('"title"')


async def run_wave(client: httpx2.AsyncClient, model: str, texts: list[str],
                   new_tokens: int, kind: str) -> Wave:
    turns: list[tuple[bool, Turn]] = []

    async def one(i: int, text: str) -> None:
        constrained = kind == "half" and i % 2 == 0
        turn = await stream_turn(client, model, text, new_tokens,
                                 response_format=RESPONSE_FORMAT if constrained else None)
        turns.append((constrained, turn))

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i, text in enumerate(texts):
            nursery.start_soon(one, i, text)
    seconds = time.perf_counter() - start
    ok = [(c, t) for c, t in turns if t.error is None]
    schema = [t for c, t in ok if c]
    return Wave(
        kind=kind, seconds=seconds, tokens=sum(t.tokens for _, t in ok),
        failures=len(turns) - len(ok), short=sum(t.tokens < new_tokens for _, t in ok),
        ttft=[t.ttft for _, t in ok if t.ttft is not None],
        schema_ttft=[t.ttft for t in schema if t.ttft is not None],
        schema_turns=sum(c for c, _ in turns),
        schema_ok=sum(t.tokens == new_tokens and looks_like_the_schema(t.text)
                      for t in schema),
        errors=sorted({t.error for _, t in turns if t.error is not None})[:5])


async def structured_client(url: str, key: str, plan: Plan, model: str | None
                            ) -> tuple[str, list[Wave]]:
    c = plan.concurrency
    async with open_client(url, key, c) as client:
        model = model or await discover_model(client)
        # Spawns the session actor; builds the grammar compiler and compiles the schema.
        for response_format in (None, RESPONSE_FORMAT):
            warm = await stream_turn(client, model, "Hi.", 4,
                                     response_format=response_format)
            if warm.error is not None:
                raise SystemExit(f"warm-up request failed: {warm.error}")
        texts = user_texts(TAG, 2 * plan.rounds * c)
        waves = []
        for r in range(plan.rounds):
            for kind in ("none", "half") if r % 2 == 0 else ("half", "none"):
                batch, texts = texts[:c], texts[c:]
                waves.append(await run_wave(client, model, batch, plan.new_tokens, kind))
    return model, waves


async def serve_structured(quick: bool, threads: int, tmp: Path) -> tuple[str, list[Wave]]:
    from chorusline.runtime import load_model

    model = await trio.to_thread.run_sync(partial(load_model, progress=False))
    flags = ["--structured", *(["--quick"] if quick else [])]
    name, raw = await serve_to(
        lambda url, key: client_process(url, key, tmp / "raw.json", *flags),
        model, threads, tmp)
    return name, [Wave(**wave) for wave in raw["waves"]]


def rows_and_checks(plan: Plan, waves: list[Wave]) -> tuple[list[Row], list[dict[str, Any]]]:
    c, n = plan.concurrency, plan.new_tokens
    by_kind = {kind: [w for w in waves if w.kind == kind] for kind in ("none", "half")}
    rate = {kind: statistics.median(w.tok_s for w in ws) for kind, ws in by_kind.items()}
    best = {kind: max(w.tok_s for w in ws) for kind, ws in by_kind.items()}
    ratio = rate["half"] / rate["none"]

    def spread(kind: str) -> str:
        return (f"median of {len(by_kind[kind])} waves: "
                + ", ".join(f"{w.tok_s:.1f}" for w in by_kind[kind]) + f"; N={n}")

    def ttft(kind: str, schema: bool = False) -> list[float]:
        return [x for w in by_kind[kind] for x in (w.schema_ttft if schema else w.ttft)]

    schema_turns = sum(w.schema_turns for w in waves)
    schema_ok = sum(w.schema_ok for w in waves)
    failures = sum(w.failures for w in waves)
    errors = sorted({e for w in waves for e in w.errors})[:5]
    rows = [
        Row(f"c{c}_none_tok_s", f"c={c} no schema output", rate["none"], "tok/s",
            spread("none")),
        Row(f"c{c}_half_tok_s", f"c={c} half json_schema output", rate["half"], "tok/s",
            spread("half")),
        Row(f"c{c}_half_over_none", f"c={c} half json_schema / no schema", ratio * 100, "%",
            f"best / best {best['half'] / best['none'] * 100:.1f} %; "
            f"target >= {RATIO_TARGET:.0%}"),
        Row(f"c{c}_none_ttft_p50", f"c={c} no schema TTFT p50",
            percentile(ttft("none"), 50) * 1e3, "ms", f"n={len(ttft('none'))}"),
        Row(f"c{c}_half_ttft_p50", f"c={c} half json_schema TTFT p50",
            percentile(ttft("half"), 50) * 1e3, "ms",
            f"n={len(ttft('half'))}; the schema turns alone "
            f"{percentile(ttft('half', True), 50) * 1e3:,.0f} ms"),
        Row(f"c{c}_schema_ok", f"c={c} schema turns as the schema's JSON", float(schema_ok),
            "", f"of {schema_turns}, each N tokens"),
        Row(f"c{c}_failures", f"c={c} failures", float(failures), "",
            f"{sum(w.short for w in waves)} short turns (< N tokens)"
            + (f"; {'; '.join(errors)}" if errors else "")),
    ]
    checks = [
        {"label": f"half under json_schema keeps >= {RATIO_TARGET:.0%} of no-schema output "
                  f"at c={c}", "value": ratio, "passed": ratio >= RATIO_TARGET,
         "shown": f"{ratio * 100:.1f} %"},
        {"label": "every json_schema turn is the schema's JSON, N tokens long",
         "value": float(schema_ok), "passed": schema_ok == schema_turns > 0,
         "shown": f"{schema_ok} of {schema_turns}"},
        {"label": "no failed requests", "value": float(failures), "passed": failures == 0,
         "shown": f"{failures} failed"},
    ]
    return rows, checks


def structured_main(args: argparse.Namespace) -> int:
    """``http_load.py --structured``: ``args`` are that script's parsed arguments."""
    plan = QUICK if args.quick else FULL
    if args.raw is not None:  # the client process
        model, waves = trio.run(structured_client, args.url, args.key, plan, args.model)
        args.raw.write_text(json.dumps({"model": model,
                                        "waves": [asdict(w) for w in waves]}))
        return 0
    began, load_before = time.perf_counter(), os.getloadavg()
    if args.url is not None:
        model, waves = trio.run(structured_client, args.url, args.key, plan, args.model)
        target = args.url
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model, waves = trio.run(serve_structured, args.quick, args.threads, Path(tmp))
        target = "chorusline in process (127.0.0.1, ephemeral port)"
    load_after = os.getloadavg()
    rows, checks = rows_and_checks(plan, waves)
    mode = "quick" if args.quick else "full"
    print(f"# chorusline structured-output HTTP benchmark ({mode}); target {target}; model "
          f"{model}; python {platform.python_version()}; load average before "
          f"{load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"# c={plan.concurrency}, N={plan.new_tokens} max_tokens, temperature 0, "
          f"ignore_eos; {plan.rounds} waves of each kind, alternating; 'half': every other "
          "request under response_format json_schema")
    print_table(rows, checks, fmt)
    elapsed = time.perf_counter() - began
    print(f"# total {elapsed:.1f} s")
    write_report(args.json, mode=f"structured {mode}", target=target, model=model,
                 load_average={"before": load_before, "after": load_after},
                 new_tokens=plan.new_tokens, rows=[asdict(row) for row in rows],
                 waves=[asdict(w) for w in waves], targets=checks, seconds=elapsed)
    return 0
