"""Embeddings per second with all-MiniLM-L6-v2: the model alone, and ``/v1/embeddings``.

    flock /tmp/bench.lock .venv/bin/python benchmarks/embeddings.py [--seconds S] [--threads N]
        [--quick] [--json PATH]

Inputs are distinct sentences of about 40 tokens (38 word pieces plus ``[CLS]`` and
``[SEP]``). For each batch size (1, 32 and 256 inputs):

- ``model``: ``EmbeddingModel.embed`` on the tokenised batch, in this thread (no
  tokenising, no server): what the encoder forward costs.
- ``http``: one ``POST /v1/embeddings`` with that many strings, one request at a time,
  ``encoding_format=base64`` (the SDK's default), against chorusline started in this
  process (the bundled SmolLM2 for chat, SQLite in a temporary directory, a tier whose
  limits never interfere, Hypercorn on 127.0.0.1). The client runs in a worker thread of
  the same process, so it shares the GIL with the server: a conservative figure.
- ``http, 32 concurrent x 1``: 32 clients each sending single-input requests at once,
  which the embedder batches into shared forwards.

Each figure is the best of two timed runs of at least ``--seconds`` each after a warm-up,
because the machines are shared; quote ``nproc`` and the load with it. ``--quick`` times
0.2 s runs (each still at least one call): the shape of the report, not figures to quote.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path

import httpx2
import torch
import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import Row, write_report  # noqa: E402
from chorusline.chat import BUNDLED_MODELS, ChatSettings, open_chat_service  # noqa: E402
from chorusline.ratelimit import Tiers  # noqa: E402
from chorusline.runtime import EmbeddingModel, EngineConfig, shared_embedding_model  # noqa: E402
from chorusline.store import SqliteStore  # noqa: E402
from chorusline.web import serve  # noqa: E402

SIZES = (1, 32, 256)
MODEL = "all-minilm-l6-v2"
TIERS = Tiers.from_mapping({"default": "bench", "tiers": {"bench": {
    "requests_per_minute": 10**9, "tokens_per_minute": 10**12,
    "max_concurrent_streams": 100_000, "priority": 0}}}, source="benchmark")
WORDS = ["river", "mountain", "server", "request", "actor", "supervisor", "token", "vector",
         "cache", "latency", "garden", "coffee", "library", "window", "bicycle", "ocean",
         "theorem", "proof", "kernel", "thread", "paper", "salt", "wind", "owl", "tea",
         "clock", "map", "glass", "bread", "chess", "moon", "bee", "train", "sea", "volcano"]


def sentences(model: EmbeddingModel, count: int, tokens: int = 40) -> list[str]:
    """``count`` distinct texts of exactly ``tokens`` tokens each (specials included)."""
    rng = random.Random(count)
    texts = []
    for _ in range(count):
        words = rng.choices(WORDS, k=tokens)
        while len(model.tokenize([" ".join(words)])[0]) > tokens:
            words.pop()
        texts.append(" ".join(words))
    return texts


def rate(run: Callable[[], int], seconds: float) -> float:
    """Best of two runs: items per second, each run repeating ``run`` for ``seconds``."""
    run()  # warm-up
    best = 0.0
    for _ in range(2):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            done += run()
        best = max(best, done / elapsed)
    return best


def direct(model: EmbeddingModel, seconds: float) -> dict[int, float]:
    results = {}
    for size in SIZES:
        rows = model.tokenize(sentences(model, size))
        results[size] = rate(partial(lambda r: len(model.embed(r)), rows), seconds)
    return results


async def over_http(model: EmbeddingModel, seconds: float, tmp: Path) -> dict[str, float]:
    store = SqliteStore(tmp / "bench.db")
    settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=16 * 1024 * 1024),
                            tiers=TIERS, models=BUNDLED_MODELS[:1])
    results: dict[str, float] = {}
    async with open_chat_service(settings, store=store) as chat:
        user = store.create_user("bench")
        key = store.create_api_key(user.id, tier="bench").plaintext
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve, chat, host="127.0.0.1", port=0,
                                               shutdown=shutdown, graceful_timeout=1.0))
            url = f"http://127.0.0.1:{port}/v1/embeddings"
            headers = {"Authorization": f"Bearer {key}"}
            with httpx2.Client(timeout=120) as client:
                def post(texts: list[str]) -> int:
                    response = client.post(url, headers=headers, json={
                        "model": MODEL, "input": texts, "encoding_format": "base64"})
                    response.raise_for_status()
                    return len(response.json()["data"])

                for size in SIZES:
                    texts = sentences(model, size)
                    results[f"http, 1 request x {size}"] = await trio.to_thread.run_sync(
                        rate, partial(post, texts), seconds)
            results["http, 32 concurrent x 1"] = await concurrent(url, headers, model, seconds)
            shutdown.set()
    return results


async def concurrent(url: str, headers: dict[str, str], model: EmbeddingModel,
                     seconds: float) -> float:
    """32 clients, each posting one-input requests back to back for ``seconds``."""
    texts = sentences(model, 32)
    done = [0]

    async def client(text: str, deadline: float) -> None:
        with httpx2.Client(timeout=120) as http:
            while time.perf_counter() < deadline:
                response = await trio.to_thread.run_sync(lambda: http.post(
                    url, headers=headers,
                    json={"model": MODEL, "input": text, "encoding_format": "base64"}))
                response.raise_for_status()
                done[0] += 1

    best = 0.0
    for _ in range(3):  # the first is the warm-up
        done[0], start = 0, time.perf_counter()
        async with trio.open_nursery() as nursery:
            for text in texts:
                nursery.start_soon(client, text, start + seconds)
        best = max(best, done[0] / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of each timed run (default 3, 0.2 with --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="short runs: the report's shape")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    seconds = args.seconds or (0.2 if args.quick else 3.0)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = shared_embedding_model()
    load_before = os.getloadavg()
    machine = (f"{platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
               f"torch threads {torch.get_num_threads()}, device {model.encoder.device}")
    print(f"machine: {machine}, load {load_before[0]:.2f}; inputs of 40 tokens, best of 2 "
          f"runs of >= {seconds:g} s")
    figures = {f"model, batch of {size}": value
               for size, value in direct(model, seconds).items()}
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(trio.run(over_http, model, seconds, Path(tmp)))
    rows = [Row(label.replace(", ", "_").replace(" ", "_"), label, value, "embeddings/s")
            for label, value in figures.items()]
    width = max(len(row.label) for row in rows)
    for row in rows:
        print(f"{row.label:<{width}}  {row.value:9.1f} embeddings/s")
    write_report(args.json, mode="quick" if args.quick else "full", machine=machine,
                 seconds_per_run=seconds, load_average={"before": load_before,
                                                        "after": os.getloadavg()},
                 rows=[asdict(row) for row in rows])


if __name__ == "__main__":
    main()
