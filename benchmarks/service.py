"""Chat service throughput and the actor layer's overhead against the bare engine.

    .venv/bin/python benchmarks/service.py [--quick] [--json PATH] [--threads N]

Everything is measured in one process, in one run, so the overhead ratios compare
figures taken under the same machine load (the project's machines are shared: quote
``uptime`` next to any figure).

1. Real model (bundled SmolLM2-135M, fp32, greedy, ``ignore_eos`` so every turn
   generates exactly ``N`` tokens). At each concurrency ``c`` the same prompts (a ~20
   token user message rendered through the chat template, as the stateless path does)
   run in waves of ``c`` turns started together:

   * *engine-direct*: ``chorusline.runtime.Engine`` on a worker thread, the wave's ``c``
     requests added at once, then ``step()`` until all have finished;
   * *service*: ``ChatService.chat`` (session actor, bucket actor, engine driver, GPU
     worker thread, token streams) with stateless ``ChatRequest``\\ s, ``c`` readers
     consuming their ``TokenStream`` concurrently. No HTTP.

   Both use the same ``EngineConfig``. Output tok/s counts the ``N`` tokens of every turn
   over the wall time of all waves (prefill included); TTFT runs from submitting a turn
   to the first chunk (or engine output) carrying a token. Overhead at ``c`` is
   ``1 - service tok/s / engine-direct tok/s``; the target is <= 10 % at c=32.

2. Fan-out ceiling: the chat tree over a fake engine that produces one token for every
   running request per step, instantly, so the only cost left is the actors': the GPU
   worker's thread hop per step, the scheduler's fan-out to the streams, and the readers.
   256 concurrent streams, read through ``ChatService`` and straight from the scheduler
   actor, plus the fake engine alone for reference. A GPU serving ~25,000 output tok/s
   (the H100 target) needs the fan-out to clear that with room to spare.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

if __package__ in (None, ""):
    # Run as a script: make the repository importable without installing it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import Row, percentile, print_checks, user_texts, write_report
from chorusline.chat import (
    AdmissionLimits,
    ChatRequest,
    ChatService,
    ChatSettings,
    Principal,
    TokenStream,
    open_chat_service,
)
from chorusline.protocols import EngineStats, GenerationRequest, RequestOutput, SamplingParams
from chorusline.ratelimit import Tiers
from chorusline.runtime import Engine, EngineConfig, LoadedModel, load_model
from chorusline.store import SqliteStore

GPU_TARGET_TOK_S = 25_000.0  # what an H100 serving the target load would emit
OVERHEAD_TARGET = 0.10
CONTEXT_WINDOW = 2048
# Limits so high that rate limiting never interferes with what is measured.
BENCH_TIERS = Tiers.from_mapping({
    "default": "bench",
    "tiers": {"bench": {"requests_per_minute": 10**9, "tokens_per_minute": 10**12,
                        "max_concurrent_streams": 100_000, "priority": 0}},
}, source="benchmark")
BENCH_LIMITS = AdmissionLimits(max_waiting_requests=100_000, max_waiting_tokens=10**9)


@dataclass(frozen=True)
class Sizes:
    new_tokens: int
    #: concurrency -> number of waves of that many turns
    levels: dict[int, int]
    fanout_streams: int
    fanout_tokens: int


FULL = Sizes(new_tokens=32, levels={1: 4, 8: 2, 32: 2}, fanout_streams=256,
             fanout_tokens=200)
QUICK = Sizes(new_tokens=8, levels={1: 2, 8: 1}, fanout_streams=256, fanout_tokens=100)


@dataclass
class Run:
    """One side (engine-direct or service) at one concurrency."""

    turns: int
    tokens: int
    seconds: float
    ttft: list[float] = field(default_factory=list)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def turns_s(self) -> float:
        return self.turns / self.seconds


def engine_config(threads: int, prefix_caching: bool = False) -> EngineConfig:
    # Prefix caching off by default: every turn prefills its whole prompt on both sides.
    return EngineConfig(device="cpu", kv_cache_bytes=256 * 1024 * 1024, max_num_seqs=64,
                        max_model_len=CONTEXT_WINDOW, enable_prefix_caching=prefix_caching,
                        cpu_threads=threads)


def prompt_ids(model: LoadedModel, text: str, new_tokens: int) -> tuple[int, ...]:
    """The prompt as the stateless session path assembles one user message: the model's
    chat template, tokenised with its special tokens."""
    rendered = model.chat_template.render([{"role": "user", "content": text}])
    ids = tuple(model.tokenizer.encode(rendered, allow_special=True))
    assert len(ids) + new_tokens <= min(CONTEXT_WINDOW, model.config.max_position_embeddings)
    return ids


def greedy(new_tokens: int) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)


# -- 1. engine-direct ------------------------------------------------------------------------
def engine_direct(engine: Engine, prompts: list[tuple[int, ...]], concurrency: int,
                  new_tokens: int) -> Run:
    params = greedy(new_tokens)
    ttft: list[float] = []
    tokens = 0
    start = time.perf_counter()
    for w in range(0, len(prompts), concurrency):
        wave = prompts[w:w + concurrency]
        submitted = time.perf_counter()
        counts: dict[str, int] = {}
        for i, ids in enumerate(wave):
            rid = f"direct-{concurrency}-{w + i}"
            engine.add_request(GenerationRequest(rid, tuple(ids), params))
            counts[rid] = 0
        while engine.has_unfinished():
            outputs = engine.step()
            now = time.perf_counter()
            for out in outputs:
                if out.new_token_ids and counts[out.request_id] == 0:
                    ttft.append(now - submitted)
                counts[out.request_id] += len(out.new_token_ids)
        assert all(n == new_tokens for n in counts.values()), counts
        tokens += sum(counts.values())
    return Run(len(prompts), tokens, time.perf_counter() - start, ttft)


# -- 1. through ChatService --------------------------------------------------------------------
async def service_turn(chat: ChatService, principal: Principal, text: str, new_tokens: int,
                       ttft: list[float]) -> int:
    submitted = time.perf_counter()
    handle = await chat.chat(principal, ChatRequest(greedy(new_tokens),
                                                    messages=(("user", text),)))
    got = 0
    async for chunks in handle.stream:
        for chunk in chunks:
            if chunk.token_ids and got == 0:
                ttft.append(time.perf_counter() - submitted)
            got += len(chunk.token_ids)
    return got


async def service_run(chat: ChatService, principal: Principal, texts: list[str],
                      concurrency: int, new_tokens: int) -> Run:
    ttft: list[float] = []
    counts: list[int] = []

    async def one(text: str) -> None:
        counts.append(await service_turn(chat, principal, text, new_tokens, ttft))

    start = time.perf_counter()
    for w in range(0, len(texts), concurrency):
        async with trio.open_nursery() as nursery:
            for text in texts[w:w + concurrency]:
                nursery.start_soon(one, text)
    elapsed = time.perf_counter() - start
    assert all(n == new_tokens for n in counts), counts
    return Run(len(texts), sum(counts), elapsed, ttft)


async def principal_for(chat: ChatService, store: SqliteStore) -> Principal:
    user = await chat.accounts.create_user("bench")
    issued = await chat.accounts.create_api_key(user.id, tier="bench")
    return await chat.authenticate(issued.plaintext)


async def model_part(model: LoadedModel, sizes: Sizes, threads: int, tmp: Path
                     ) -> dict[int, tuple[Run, Run]]:
    config = engine_config(threads)
    direct = Engine(model, config)
    await trio.to_thread.run_sync(engine_direct, direct, [prompt_ids(model, "Hi.", 4)], 1, 4)
    store = SqliteStore(tmp / "service.db")
    settings = ChatSettings(engine=config, limits=BENCH_LIMITS, tiers=BENCH_TIERS,
                            context_window=CONTEXT_WINDOW)
    results: dict[int, tuple[Run, Run]] = {}
    async with open_chat_service(settings, model=model, store=store) as chat:
        principal = await principal_for(chat, store)
        await service_turn(chat, principal, "Hi.", 4, [])  # warm: spawns session + bucket
        for concurrency, waves in sizes.levels.items():
            texts = user_texts(concurrency, concurrency * waves)
            prompts = [prompt_ids(model, t, sizes.new_tokens) for t in texts]
            engine_run = await trio.to_thread.run_sync(
                engine_direct, direct, prompts, concurrency, sizes.new_tokens)
            service = await service_run(chat, principal, texts, concurrency, sizes.new_tokens)
            results[concurrency] = (engine_run, service)
    return results


# -- 2. fan-out ceiling ------------------------------------------------------------------------
class InstantEngine:
    """``EngineLike``: every step emits one token for every running request, at once."""

    def __init__(self) -> None:
        self.running: dict[str, list[int]] = {}  # id -> [prompt, done, budget]
        self.steps = 0
        self.generated = 0

    def add_request(self, request: GenerationRequest) -> None:
        budget = request.params.max_tokens or 16
        self.running[request.request_id] = [len(request.prompt_token_ids), 0, budget]

    def abort(self, request_id: str) -> bool:
        return self.running.pop(request_id, None) is not None

    def has_unfinished(self) -> bool:
        return bool(self.running)

    def step(self) -> list[RequestOutput]:
        self.steps += 1
        outputs = []
        for request_id, state in list(self.running.items()):
            state[1] += 1
            finish = "length" if state[1] >= state[2] else None
            outputs.append(RequestOutput(request_id, 0, [state[1] % 1000], "x", finish,
                                         state[0], state[1]))
            if finish is not None:
                del self.running[request_id]
        self.generated += len(outputs)
        return outputs

    def stats(self) -> EngineStats:
        n = len(self.running)
        return EngineStats(n, 0, 1000, n, n / 1000, self.steps, self.generated)


@dataclass
class FanOut:
    tokens: int
    seconds: float
    steps: int
    chunks: int
    #: tok/s once every stream had its first token (admission ramp excluded)
    steady_tok_s: float = 0.0
    #: seconds from the start until the last stream was admitted (its submit returned)
    admitted_after: float = 0.0

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds


class Tally:
    """Tokens as readers receive them, with a timestamp per received batch."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.chunks = 0
        self.marks: list[tuple[float, int]] = []
        self.first: list[float] = []
        self.admitted: list[float] = []

    def result(self, steps: int) -> FanOut:
        end = time.perf_counter()
        tokens = sum(n for _, n in self.marks)
        all_streaming = max(self.first)
        late = sum(n for t, n in self.marks if t > all_streaming)
        steady = late / (end - all_streaming) if end > all_streaming else 0.0
        return FanOut(tokens, end - self.start, steps, self.chunks, steady,
                      max(self.admitted) - self.start)


def instant_engine_alone(streams: int, new_tokens: int) -> FanOut:
    engine = InstantEngine()
    params = greedy(new_tokens)
    start = time.perf_counter()
    for i in range(streams):
        engine.add_request(GenerationRequest(f"r{i}", (1, 2, 3), params))
    tokens = 0
    while engine.has_unfinished():
        tokens += sum(len(o.new_token_ids) for o in engine.step())
    return FanOut(tokens, time.perf_counter() - start, engine.steps, 0)


async def read_all(stream: TokenStream, tally: Tally) -> int:
    tally.admitted.append(time.perf_counter())
    got = 0
    async for batch in stream:
        now = time.perf_counter()
        n = 0
        for chunk in batch:
            n += len(chunk.token_ids)
            tally.chunks += 1
        if got == 0:
            tally.first.append(now)
        tally.marks.append((now, n))
        got += n
    return got


async def fanout_part(model: LoadedModel, sizes: Sizes, tmp: Path
                      ) -> tuple[FanOut, FanOut, FanOut]:
    engines: list[InstantEngine] = []

    def make() -> InstantEngine:
        engine = InstantEngine()
        engines.append(engine)
        return engine

    n, tokens_each = sizes.fanout_streams, sizes.fanout_tokens
    params = greedy(tokens_each)
    store = SqliteStore(tmp / "fanout.db")
    settings = ChatSettings(limits=BENCH_LIMITS, tiers=BENCH_TIERS,
                            context_window=CONTEXT_WINDOW)
    async with open_chat_service(settings, model=model, store=store, make_engine=make) as chat:
        principal = await principal_for(chat, store)
        await service_turn(chat, principal, "Hi.", 4, [])

        # Through ChatService: session actor, bucket, assembly, scheduler, streams.
        counts: list[int] = []

        async def service_reader(i: int, tally: Tally) -> None:
            handle = await chat.chat(principal, ChatRequest(
                params, messages=(("user", f"Stream {i}: say anything."),)))
            counts.append(await read_all(handle.stream, tally))

        steps0 = engines[-1].steps
        tally = Tally()
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(service_reader, i, tally)
        via_service = tally.result(engines[-1].steps - steps0)
        assert counts == [tokens_each] * n, counts

        # Straight to the engine actors (``ChatService.generate``), then read the stream.
        counts = []
        ids = prompt_ids(model, "Say anything.", tokens_each)

        async def scheduler_reader(tally: Tally) -> None:
            stream = await chat.generate(
                GenerationRequest(f"bench-{uuid.uuid4().hex}", tuple(ids), params))
            counts.append(await read_all(stream, tally))

        steps0 = engines[-1].steps
        tally = Tally()
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(scheduler_reader, tally)
        via_scheduler = tally.result(engines[-1].steps - steps0)
        assert counts == [tokens_each] * n, counts
    alone = instant_engine_alone(n, tokens_each)
    return via_service, via_scheduler, alone


# -- report ------------------------------------------------------------------------------------
def level_rows(concurrency: int, side: str, run: Run, note: str) -> list[Row]:
    prefix = f"c={concurrency} {side}"
    key = f"c{concurrency}_{side.replace('-', '_')}"
    return [
        Row(f"{key}_tok_s", f"{prefix} output", run.tok_s, "tok/s", note),
        Row(f"{key}_turns_s", f"{prefix} turns", run.turns_s, "turns/s",
            f"{run.turns} turns in {run.seconds:.2f} s"),
        Row(f"{key}_ttft_p50", f"{prefix} TTFT p50", percentile(run.ttft, 50) * 1e3, "ms",
            f"n={len(run.ttft)}"),
        Row(f"{key}_ttft_p99", f"{prefix} TTFT p99", percentile(run.ttft, 99) * 1e3, "ms",
            f"n={len(run.ttft)}"),
    ]


def fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f} %"
    if unit in ("ms", "turns/s") or value < 100:
        return f"{value:,.2f} {unit}"
    return f"{value:,.0f} {unit}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="N=8, concurrency 1 and 8 only, shorter fan-out (< 60 s)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 is fastest on a shared 2-core machine)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    began = time.perf_counter()
    load_before = os.getloadavg()

    model = load_model(progress=False)

    async def measure() -> tuple[dict[int, tuple[Run, Run]], tuple[FanOut, FanOut, FanOut]]:
        with tempfile.TemporaryDirectory() as tmp:
            levels = await model_part(model, sizes, args.threads, Path(tmp))
            fan = await fanout_part(model, sizes, Path(tmp))
        return levels, fan

    levels, (via_service, via_scheduler, alone) = trio.run(measure)
    load_after = os.getloadavg()

    prompt_lens = [len(prompt_ids(model, t, sizes.new_tokens)) for t in user_texts(1, 16)]
    rows: list[Row] = []
    overheads: dict[int, float] = {}
    for concurrency, (engine_run, service) in levels.items():
        rows += level_rows(concurrency, "engine-direct", engine_run, f"N={sizes.new_tokens}")
        rows += level_rows(concurrency, "service", service, f"N={sizes.new_tokens}")
        overheads[concurrency] = 1.0 - service.tok_s / engine_run.tok_s
        rows.append(Row(f"c{concurrency}_overhead", f"c={concurrency} actor overhead",
                        overheads[concurrency] * 100, "%",
                        "1 - service tok/s / engine-direct tok/s"))
    n, t = sizes.fanout_streams, sizes.fanout_tokens
    for key, label, fan in (
        ("fanout_service", f"fan-out via ChatService, {n} streams", via_service),
        ("fanout_scheduler", f"fan-out via engine driver, {n} streams", via_scheduler),
    ):
        rows.append(Row(key, label, fan.tok_s, "tok/s",
                        f"{n}x{t} tokens in {fan.seconds:.2f} s, {fan.steps} steps, "
                        f"{fan.tokens / max(fan.chunks, 1):.1f} tok/chunk"))
        rows.append(Row(f"{key}_steady", f"{label}, all streaming", fan.steady_tok_s,
                        "tok/s", "after every stream had its first token"))
        rows.append(Row(f"{key}_admission", f"{label}, admission", n / fan.admitted_after,
                        "turns/s", f"last of {n} admitted after {fan.admitted_after:.2f} s"))
    rows.append(Row("fanout_engine_alone", f"instant fake engine alone, {n} requests",
                    alone.tok_s, "tok/s", "no actors: the fake engine's own cost"))

    mode = "quick" if args.quick else "full"
    print(f"# chorusline chat service benchmark ({mode}); python "
          f"{platform.python_version()}, trio {trio.__version__}; torch threads "
          f"{args.threads}; load average before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
          f"{load_after[2]:.2f}")
    print(f"# prompts: {statistics.mean(prompt_lens):.1f} tokens after the chat template "
          f"(~20-token user message); N={sizes.new_tokens} new tokens per turn, greedy, "
          f"ignore_eos; waves of c turns: "
          + ", ".join(f"c={c}: {w}" for c, w in sizes.levels.items()))
    width = max(len(row.label) for row in rows)
    print(f"{'measurement':<{width}}  {'value':>16}  note")
    for row in rows:
        print(f"{row.label:<{width}}  {fmt(row.value, row.unit):>16}  {row.note}")
    print()
    print("# targets")
    top = max(overheads)
    checks: list[dict[str, Any]] = [
        {"label": f"actor overhead at c={top} <= {OVERHEAD_TARGET:.0%}"
                  + ("" if top == 32 else " (quick: c=32 not run)"),
         "value": overheads[top], "passed": overheads[top] <= OVERHEAD_TARGET,
         "shown": f"{overheads[top] * 100:.1f} %"},
        {"label": f"fan-out via ChatService >= {GPU_TARGET_TOK_S:,.0f} tok/s (H100 target)",
         "value": via_service.tok_s, "passed": via_service.tok_s >= GPU_TARGET_TOK_S,
         "shown": f"{via_service.tok_s:,.0f} tok/s"},
        {"label": f"fan-out via scheduler >= {GPU_TARGET_TOK_S:,.0f} tok/s (H100 target)",
         "value": via_scheduler.tok_s, "passed": via_scheduler.tok_s >= GPU_TARGET_TOK_S,
         "shown": f"{via_scheduler.tok_s:,.0f} tok/s"},
    ]
    print_checks(checks, 62)
    elapsed = time.perf_counter() - began
    print(f"# total {elapsed:.1f} s")

    write_report(args.json, mode=mode,
                 load_average={"before": load_before, "after": load_after},
                 new_tokens=sizes.new_tokens, rows=[asdict(row) for row in rows],
                 targets=checks, seconds=elapsed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
