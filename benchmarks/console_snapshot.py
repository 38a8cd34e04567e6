"""What one console snapshot costs the trio thread, measured directly.

    flock /tmp/bench.lock .venv/bin/python benchmarks/console_snapshot.py [--turns 32]

The HTTP benchmark's ratio (``http_load.py --console``) is a difference of two noisy
throughputs; this is the cost itself. It starts the chat service in process (bundled
SmolLM2 on the CPU, SQLite in a temporary directory), runs ``--turns`` stored turns (one
conversation each, so that many conversation actors are alive), opens as many traces as
turns in flight would hold (a dozen spans each), then times 200 snapshots plus their
JSON encoding, as the feed builds and sends them, with ``time.thread_time`` (CPU of the
trio thread, which every actor shares) and wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import trio

from chorusline.chat import ChatRequest, ChatSettings, open_chat_service
from chorusline.protocols import SamplingParams
from chorusline.runtime import load_model
from chorusline.store import SqliteStore

SNAPSHOTS = 200


async def measure(turns: int) -> None:
    model = await trio.to_thread.run_sync(lambda: load_model(progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "console.db")
        async with open_chat_service(ChatSettings(), model=model, store=store) as chat:
            user = await chat.accounts.create_user("bench")
            issued = await chat.accounts.create_api_key(user.id, tier="enterprise")
            principal = await chat.authenticate(issued.plaintext)
            for _ in range(turns):
                conversation = await chat.conversations.create(principal, title="t")
                handle = await chat.chat(principal, ChatRequest(
                    SamplingParams(max_tokens=2), conversation.id, "Hi"))
                async for _chunks in handle.stream:
                    pass
                await handle.persisted.wait()
            for n in range(turns):  # what as many turns in flight would hold
                trace = chat.system.recorder.open_trace(f"bench-{n}", tenant="t", tier="free")
                for _ in range(12):
                    trace.mark("span", "/chat/bench")
            feed = chat.admin.watch()
            try:
                body = json.dumps(await feed.snapshot())
                wall, cpu = time.perf_counter(), time.thread_time()
                for _ in range(SNAPSHOTS):
                    body = json.dumps(await feed.snapshot())
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            finally:
                feed.close()
            actors = len(chat.admin.children("/chat/conversations")["children"])
    print(f"# {actors} conversation actors, {turns} traced requests in flight; "
          f"{SNAPSHOTS} snapshots")
    print(f"snapshot + JSON: {cpu / SNAPSHOTS * 1e3:.2f} ms trio-thread CPU, "
          f"{wall / SNAPSHOTS * 1e3:.2f} ms wall, {len(body) / 1024:.1f} KiB each")
    for interval in (1.0, 0.25):
        print(f"at a {interval:g} s interval: {cpu / SNAPSHOTS / interval * 100:.2f} % "
              "of the trio thread")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=32)
    trio.run(measure, parser.parse_args().turns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
