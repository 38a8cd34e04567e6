"""SSE load over HTTP against chorusline (or any OpenAI-compatible server).

    .venv/bin/python benchmarks/http_load.py [--quick] [--json PATH] [--threads N]
    .venv/bin/python benchmarks/http_load.py --llama-cpp /tmp/llama/bin/python
    .venv/bin/python benchmarks/http_load.py --url http://127.0.0.1:8001/v1 --key KEY
    .venv/bin/python benchmarks/http_load.py --structured [--quick] [--json PATH]

By default the script starts chorusline in this process (the bundled SmolLM2-135M on the
CPU, SQLite in a temporary directory, a benchmark tier whose limits never interfere,
Hypercorn on an ephemeral 127.0.0.1 port) and drives it from a *separate client process*
over a real loopback socket, so the client's parsing does not share the server's event
loop or GIL. With ``--url`` and ``--key`` it only runs the client, against whatever server
is there: the client speaks nothing but the OpenAI wire format (``GET /models`` to learn the
model's id, ``POST /chat/completions`` with ``stream: true`` and
``stream_options.include_usage``). ``ignore_eos`` is an extension that chorusline (and vLLM)
honour; a server that ignores it may end turns early, which is reported as short turns.

At each concurrency ``c`` (1, 8, 32; ``--quick``: 1 and 8) the client runs waves of ``c``
streaming requests started together, ``max_tokens=N``, ``temperature=0``. Per request it
records TTFT (request sent to the first non-empty content delta), inter-token latency
(between consecutive content deltas), end-to-end (request sent to ``data: [DONE]``) and
whether it failed (transport error, non-200 status, error event, no ``[DONE]``). Output
tok/s counts completion tokens (the usage chunk's, else one per content delta) over the
wall time of all the level's waves.

In the default mode the same process then measures engine-direct throughput at the top
concurrency (``chorusline.runtime.Engine`` on a worker thread, the same prompts assembled
through the chat template, same ``EngineConfig``; ``benchmarks/service.py``'s method) and
reports HTTP / engine-direct. With ``--llama-cpp PYTHON`` it then starts llama-cpp-python's
server on the same GGUF and drives it with the same client (``benchmarks/llama_cpp.py``), so
the "x llama-cpp-python" ratio is measured in one run on one machine; without it the ratio
uses the figures recorded in ``LLAMA_CPP_TOK_S``. The machines are shared: quote
``uptime`` with any figure.

``--structured`` measures what structured outputs cost instead: c=32 waves with half the
requests under ``response_format: json_schema`` against the same waves with none, in one
run (``benchmarks/http_structured.py``). ``--console`` measures what an open supervisor
console costs: c=32 waves with a feed reader connected against waves with none
(``benchmarks/http_console.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # Run as a script: make the repository (and ``benchmarks.service``) importable.
    sys.path.insert(0, str(ROOT))

from benchmarks.common import Row, percentile, print_checks, user_texts, write_report  # noqa: E402
from benchmarks.llama_cpp import EOS_BAN, llama_cpp_server  # noqa: E402

#: llama-cpp-python's OpenAI server on the same GGUF, as measured on a 2-core machine in
#: November 2026 (c=32, 1 thread); used when ``--llama-cpp`` does not measure it here.
LLAMA_CPP_TOK_S = (53.0, 60.0)
LLAMA_CPP_TTFT_C32_S = 32.0
RATIO_TARGET = 0.90
SPEEDUP_TARGET = 5.0
TTFT_TARGET_S = 1.0
REQUEST_TIMEOUT_S = 600.0
T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    new_tokens: int
    #: concurrency -> number of waves of that many requests
    levels: dict[int, int]


FULL = Sizes(new_tokens=32, levels={1: 3, 8: 2, 32: 2})
QUICK = Sizes(new_tokens=8, levels={1: 2, 8: 1})


# -- the client: OpenAI wire format only ------------------------------------------------------
@dataclass
class Turn:
    tokens: int = 0
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    e2e: float | None = None
    error: str | None = None
    text: str = ""


@dataclass
class Level:
    concurrency: int
    requests: int
    seconds: float
    tokens: int
    failures: int
    short: int
    ttft: list[float]
    itl: list[float]
    e2e: list[float]
    errors: list[str]

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds


async def stream_turn(client: httpx2.AsyncClient, model: str, text: str,
                      new_tokens: int, ban_eos: bool = False,
                      response_format: dict[str, Any] | None = None,
                      completions: bool = False,
                      messages: list[dict[str, str]] | None = None) -> Turn:
    """One streamed turn: a chat completion, or with ``completions`` (a base model, such
    as chorusline's ``gemma-3-270m``) a legacy completion of ``text`` as the prompt.
    ``messages``: the whole conversation to send instead of ``text`` as one user turn."""
    body: dict[str, Any] = {
        "model": model,
        **({"prompt": text} if completions
           else {"messages": messages or [{"role": "user", "content": text}]}),
        "max_tokens": new_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if ban_eos:  # for servers without ignore_eos (see benchmarks/llama_cpp.py)
        body["logit_bias"] = EOS_BAN
    else:
        body["ignore_eos"] = True
    if response_format is not None:
        body["response_format"] = response_format
    turn = Turn()
    deltas = 0
    usage: int | None = None
    done = False
    sent = time.perf_counter()
    last: float | None = None
    try:
        path = "/completions" if completions else "/chat/completions"
        async with client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                detail = (await response.aread())[:200].decode(errors="replace")
                turn.error = f"HTTP {response.status_code}: {detail}"
                return turn
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ": heartbeat" comments, event: lines
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                event = json.loads(data)
                if "error" in event:
                    turn.error = f"error event: {event['error']}"
                    return turn
                now = time.perf_counter()
                for choice in event.get("choices") or []:
                    content = (choice.get("text") if completions
                               else (choice.get("delta") or {}).get("content"))
                    if content:
                        deltas += 1
                        turn.text += content
                        if last is None:
                            turn.ttft = now - sent
                        else:
                            turn.itl.append(now - last)
                        last = now
                if event.get("usage"):
                    usage = int(event["usage"].get("completion_tokens", 0))
    except (httpx2.HTTPError, ValueError, OSError) as error:
        turn.error = f"{type(error).__name__}: {error}"
        return turn
    turn.e2e = time.perf_counter() - sent
    turn.tokens = usage if usage is not None else deltas
    if not done:
        turn.error = "stream ended without data: [DONE]"
    return turn


async def run_level(client: httpx2.AsyncClient, model: str, concurrency: int, waves: int,
                    new_tokens: int, ban_eos: bool, completions: bool = False) -> Level:
    texts = user_texts(concurrency, concurrency * waves)
    turns: list[Turn] = []

    async def one(text: str) -> None:
        turns.append(await stream_turn(client, model, text, new_tokens, ban_eos,
                                       completions=completions))

    start = time.perf_counter()
    for w in range(0, len(texts), concurrency):
        async with trio.open_nursery() as nursery:
            for text in texts[w:w + concurrency]:
                nursery.start_soon(one, text)
    seconds = time.perf_counter() - start
    ok = [t for t in turns if t.error is None]
    return Level(
        concurrency=concurrency, requests=len(turns), seconds=seconds,
        tokens=sum(t.tokens for t in turns), failures=len(turns) - len(ok),
        short=sum(1 for t in ok if t.tokens < new_tokens),
        ttft=[t.ttft for t in ok if t.ttft is not None],
        itl=[x for t in ok for x in t.itl],
        e2e=[t.e2e for t in ok if t.e2e is not None],
        errors=sorted({t.error for t in turns if t.error is not None})[:5],
    )


async def discover_model(client: httpx2.AsyncClient) -> str:
    response = await client.get("/models")
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])


async def completion_only(client: httpx2.AsyncClient, model: str) -> bool:
    """Whether ``/models`` says ``model`` is a base model (capabilities without ``chat``,
    as chorusline lists them); servers that list no capabilities are taken as chat."""
    response = await client.get("/models")
    response.raise_for_status()
    for entry in response.json().get("data", []):
        if entry.get("id") == model and "capabilities" in entry:
            return "chat" not in entry["capabilities"]
    return False


def open_client(url: str, key: str, concurrency: int) -> httpx2.AsyncClient:
    """A client for ``url`` with a connection for every concurrent stream (and spare)."""
    limits = httpx2.Limits(max_connections=concurrency + 4,
                           max_keepalive_connections=concurrency + 4)
    return httpx2.AsyncClient(
        base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"},
        timeout=httpx2.Timeout(REQUEST_TIMEOUT_S, connect=30.0), limits=limits)


async def client_main(url: str, key: str, sizes: Sizes, model: str | None,
                      ban_eos: bool = False) -> tuple[str, list[Level]]:
    async with open_client(url, key, max(sizes.levels)) as client:
        model = model or await discover_model(client)
        base = await completion_only(client, model)
        warm = await stream_turn(client, model, "Hi.", 4,  # spawns the session actor etc.
                                 completions=base)
        if warm.error is not None:
            raise SystemExit(f"warm-up request failed: {warm.error}")
        levels = [await run_level(client, model, c, waves, sizes.new_tokens, ban_eos, base)
                  for c, waves in sizes.levels.items()]
    return model, levels


def client_process(url: str, key: str, raw: Path, *flags: str) -> dict[str, Any]:
    """This script as the client, in its own process (called from the server's trio run
    on a thread); returns what it wrote to ``raw``."""
    import subprocess

    command = [sys.executable, str(Path(__file__).resolve()), "--url", url, "--key", key,
               "--raw", str(raw), *flags]
    subprocess.run(command, check=True, timeout=REQUEST_TIMEOUT_S)
    result: dict[str, Any] = json.loads(raw.read_text())
    return result


def run_client_process(url: str, key: str, quick: bool, raw: Path,
                       ban_eos: bool = False) -> list[Level]:
    flags = (["--quick"] if quick else []) + (["--ban-eos"] if ban_eos else [])
    return [Level(**level) for level in client_process(url, key, raw, *flags)["levels"]]


# -- the server, in process, and engine-direct --------------------------------------------------
@dataclass
class Direct:
    concurrency: int
    tok_s: float
    ttft_p50: float


async def serve_to(client: Callable[[str, str], T], model: Any, threads: int,
                   tmp: Path, *, admin: bool = False,
                   person: tuple[str, str] | None = None) -> tuple[str, T]:
    """Serve ``model`` on an ephemeral loopback port while ``client(url, key)`` runs on a
    thread; returns the served model's name and what the client returned. ``admin``:
    the key also reaches the admin routes (the console benchmark reads its feed);
    ``person``: (name, password) of an account that signs in on the page, same tier."""
    from benchmarks.service import BENCH_LIMITS, BENCH_TIERS, CONTEXT_WINDOW, engine_config
    from chorusline.chat import ChatSettings, open_chat_service
    from chorusline.store import SqliteStore
    from chorusline.web import serve

    # Prefix caching on, as the server runs by default: the chat template's system prompt
    # is shared by every turn (each user message is distinct). Engine-direct uses the same.
    settings = ChatSettings(engine=engine_config(threads, prefix_caching=True),
                            limits=BENCH_LIMITS, tiers=BENCH_TIERS,
                            context_window=CONTEXT_WINDOW)
    store = SqliteStore(tmp / "http.db")
    async with open_chat_service(settings, model=model, store=store) as chat:
        user = await chat.accounts.create_user("bench")
        issued = await chat.accounts.create_api_key(user.id, tier="bench", is_admin=admin)
        if person is not None:
            await chat.accounts.create_person(*person, tier="bench")
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            port: int = await nursery.start(partial(
                serve, chat, host="127.0.0.1", port=0, shutdown=shutdown,
                graceful_timeout=1.0))
            result = await trio.to_thread.run_sync(
                client, f"http://127.0.0.1:{port}/v1", issued.plaintext)
            shutdown.set()
        return chat.model_name, result


async def serve_and_measure(sizes: Sizes, threads: int, tmp: Path
                            ) -> tuple[str, list[Level], Direct]:
    from benchmarks.service import engine_config, engine_direct, prompt_ids
    from chorusline.runtime import Engine, load_model

    model = await trio.to_thread.run_sync(partial(load_model, progress=False))
    config = engine_config(threads, prefix_caching=True)
    name, levels = await serve_to(
        lambda url, key: run_client_process(url, key, sizes is QUICK, tmp / "raw.json"),
        model, threads, tmp)

    # Engine-direct at the top concurrency, same prompts and config, the server now idle.
    top = max(sizes.levels)
    engine = Engine(model, config)
    await trio.to_thread.run_sync(engine_direct, engine, [prompt_ids(model, "Hi.", 4)], 1, 4)
    texts = user_texts(top, top * sizes.levels[top])
    prompts = [prompt_ids(model, t, sizes.new_tokens) for t in texts]
    run = await trio.to_thread.run_sync(engine_direct, engine, prompts, top, sizes.new_tokens)
    direct = Direct(top, run.tok_s, percentile(run.ttft, 50))
    return name, levels, direct


# -- report -----------------------------------------------------------------------------------
def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "%":
        return f"{value:.1f} %"
    if unit in ("", "x"):
        return f"{value:,.0f}" if unit == "" else f"{value:.2f}x"
    if unit == "ms" or value < 100:
        return f"{value:,.2f} {unit}"
    return f"{value:,.0f} {unit}"


def level_rows(level: Level, new_tokens: int, who: str = "") -> list[Row]:
    """The level's rows; ``who`` prefixes keys and labels (another server's figures)."""
    c = level.concurrency
    key, label = (f"{who.replace('-', '_')}_c{c}", f"{who} c={c}") if who else (f"c{c}", f"c={c}")
    ms = 1e3
    return [
        Row(f"{key}_tok_s", f"{label} output", level.tok_s, "tok/s",
            f"{level.tokens} tokens, {level.requests} requests in {level.seconds:.2f} s, "
            f"N={new_tokens}"),
        Row(f"{key}_ttft_p50", f"{label} TTFT p50", percentile(level.ttft, 50) * ms, "ms",
            f"n={len(level.ttft)}"),
        Row(f"{key}_ttft_p99", f"{label} TTFT p99", percentile(level.ttft, 99) * ms, "ms",
            f"n={len(level.ttft)}"),
        Row(f"{key}_itl_p50", f"{label} ITL p50", percentile(level.itl, 50) * ms, "ms",
            f"n={len(level.itl)}"),
        Row(f"{key}_itl_p99", f"{label} ITL p99", percentile(level.itl, 99) * ms, "ms",
            f"n={len(level.itl)}"),
        Row(f"{key}_e2e_p50", f"{label} e2e p50", percentile(level.e2e, 50) * ms, "ms",
            f"n={len(level.e2e)}"),
        Row(f"{key}_e2e_p99", f"{label} e2e p99", percentile(level.e2e, 99) * ms, "ms",
            f"n={len(level.e2e)}"),
        Row(f"{key}_failures", f"{label} failures", float(level.failures), "",
            f"{level.short} short turns (< N tokens)"
            + (f"; {'; '.join(level.errors)}" if level.errors else "")),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="N=8, concurrency 1 and 8 only (< 60 s)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--url", help="an OpenAI-compatible base URL (…/v1): only run the "
                        "client against it")
    parser.add_argument("--key", default="x", help="API key for --url")
    parser.add_argument("--model", help="model id for --url (default: the first of /models; "
                        "a base model such as gemma-3-270m is driven through /completions)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch CPU threads of the in-process server (default: all "
                        "cores; use 1 when another busy process shares a 2-core machine)")
    parser.add_argument("--llama-cpp", metavar="PYTHON",
                        help="also measure llama-cpp-python's server (installed in the "
                        "environment of this interpreter) on the bundled GGUF, after "
                        "chorusline, and compare with it instead of the recorded figure")
    parser.add_argument("--llama-cpp-threads", type=int, default=1,
                        help="llama.cpp threads (default 1: on a 2-core machine shared with "
                        "the client process its best setting, see docs/performance.md)")
    parser.add_argument("--structured", action="store_true",
                        help="c=32 (--quick: c=8) waves, half the requests under a JSON "
                        "schema against none (benchmarks/http_structured.py)")
    parser.add_argument("--console", action="store_true",
                        help="c=32 (--quick: c=8) waves with a console feed reader open "
                        "against none (benchmarks/http_console.py)")
    parser.add_argument("--console-interval", type=float, default=1.0,
                        help="with --console: the feed's snapshot interval (default: 1 s)")
    parser.add_argument("--ban-eos", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.structured:
        from benchmarks.http_structured import structured_main

        return structured_main(args)
    if args.console:
        from benchmarks.http_console import console_main

        return console_main(args)
    sizes = QUICK if args.quick else FULL
    began = time.perf_counter()
    load_before = os.getloadavg()

    if args.raw is not None:  # the client process of the default mode
        model, levels = trio.run(client_main, args.url, args.key, sizes, args.model,
                                 args.ban_eos)
        args.raw.write_text(json.dumps({"model": model,
                                        "levels": [asdict(level) for level in levels]}))
        return 0

    direct: Direct | None = None
    llama: list[Level] | None = None
    if args.url is not None:
        model, levels = trio.run(client_main, args.url, args.key, sizes, args.model)
        target = args.url
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model, levels, direct = trio.run(serve_and_measure, sizes, args.threads, Path(tmp))
            if args.llama_cpp:
                log = Path(tmp) / "llama.log"
                with llama_cpp_server(args.llama_cpp, args.llama_cpp_threads, log) as llama_url:
                    llama = run_client_process(llama_url, "x", args.quick,
                                               Path(tmp) / "llama.json", ban_eos=True)
        target = "chorusline in process (127.0.0.1, ephemeral port)"
    load_after = os.getloadavg()

    rows: list[Row] = []
    for level in levels:
        rows += level_rows(level, sizes.new_tokens)
    by_c = {level.concurrency: level for level in levels}
    top = max(by_c)
    ratio = math.nan
    if direct is not None:
        ratio = by_c[top].tok_s / direct.tok_s
        rows.append(Row(f"c{top}_engine_direct_tok_s", f"c={top} engine-direct output",
                        direct.tok_s, "tok/s",
                        f"same run, same prompts; TTFT p50 {direct.ttft_p50 * 1e3:,.0f} ms"))
        rows.append(Row(f"c{top}_http_over_engine", f"c={top} HTTP / engine-direct",
                        ratio * 100, "%", f"target >= {RATIO_TARGET:.0%}"))
    if llama is not None:
        for level in llama:
            rows += level_rows(level, sizes.new_tokens, who="llama-cpp")
        baseline = {level.concurrency: level for level in llama}[top].tok_s
        source = f"its {baseline:.1f} tok/s at c={top}, measured in this run"
    else:
        baseline = LLAMA_CPP_TOK_S[1]
        source = (f"its best {baseline:.0f} tok/s ({LLAMA_CPP_TOK_S[0]:.0f}-{baseline:.0f}, "
                  "recorded, not measured here)")
    speedup = by_c[top].tok_s / baseline
    rows.append(Row(f"c{top}_vs_llama_cpp", f"c={top} output / llama-cpp-python server",
                    speedup, "x", f"against {source}"))

    mode = "quick" if args.quick else "full"
    print(f"# chorusline HTTP load benchmark ({mode}); target {target}; model {model}; "
          f"python {platform.python_version()}, trio {trio.__version__}; load average "
          f"before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
          f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"# streaming, include_usage, N={sizes.new_tokens} max_tokens, temperature 0, "
          "ignore_eos; waves of c requests: "
          + ", ".join(f"c={c}: {w}" for c, w in sizes.levels.items()))
    width = max(len(row.label) for row in rows)
    print(f"{'measurement':<{width}}  {'value':>14}  note")
    for row in rows:
        print(f"{row.label:<{width}}  {fmt(row.value, row.unit):>14}  {row.note}")
    print()
    print("# targets")
    quick_note = "" if top == 32 else " (quick: c=32 not run)"
    ttft = percentile(by_c[top].ttft, 50)
    need = SPEEDUP_TARGET * baseline
    checks: list[dict[str, Any]] = []
    if direct is not None:
        checks.append({"label": f"HTTP keeps >= {RATIO_TARGET:.0%} of engine-direct at "
                                f"c={top}{quick_note}",
                       "value": ratio, "passed": ratio >= RATIO_TARGET,
                       "shown": f"{ratio * 100:.1f} %"})
    checks += [
        {"label": f"output at c={top} >= {SPEEDUP_TARGET:.0f}x llama-cpp-python "
                  f"(>= {need:.0f} tok/s){quick_note}",
         "value": by_c[top].tok_s, "passed": by_c[top].tok_s >= need,
         "shown": f"{by_c[top].tok_s:,.1f} tok/s"},
        {"label": f"TTFT p50 at c={top} <= {TTFT_TARGET_S:.0f} s{quick_note}",
         "value": ttft, "passed": ttft <= TTFT_TARGET_S, "shown": f"{ttft * 1e3:,.0f} ms"},
        {"label": "no failed requests", "value": float(sum(v.failures for v in levels)),
         "passed": all(v.failures == 0 for v in levels),
         "shown": f"{sum(v.failures for v in levels)} failed"},
    ]
    print_checks(checks, 70)
    elapsed = time.perf_counter() - began
    print(f"# total {elapsed:.1f} s")

    write_report(args.json, mode=mode, target=target, model=model,
                 load_average={"before": load_before, "after": load_after},
                 new_tokens=sizes.new_tokens, rows=[asdict(row) for row in rows],
                 targets=checks, seconds=elapsed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
