"""``chorusline`` command line. Today: ``demo``; the web issue adds ``serve`` and ``keys``.

``demo`` starts the whole supervised chat tree on embedded defaults (SQLite in a
temporary folder, in-process rate limits, the bundled SmolLM2 model, CPU), streams a
reply to one question through a stored conversation, kills the GPU worker halfway to show
the stream carrying on, and prints the actor tree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import trio

from chorusline.chat import WORKER_KEY, ChatRequest, ChatSettings, SqliteStore, open_chat_service
from chorusline.runtime import EngineConfig, SamplingParams


async def demo(question: str, max_tokens: int, kill_worker: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "demo.db")
        settings = ChatSettings(engine=EngineConfig(kv_cache_bytes=128 * 1024 * 1024))
        print("loading the model and starting the actor tree...", file=sys.stderr)
        async with open_chat_service(settings, store=store) as chat:
            user = store.create_user("demo")
            issued = store.create_api_key(user.id, tier="plus")
            principal = await chat.authenticate(issued.plaintext)
            conversation = store.create_conversation(user.id, title="demo")
            params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
            handle = await chat.chat(principal, ChatRequest(params, conversation.id, question))
            print(f"you> {question}\nbot> ", end="", flush=True)
            tokens = 0
            async for chunks in handle.stream:
                for chunk in chunks:
                    print(chunk.text, end="", flush=True)
                    tokens += len(chunk.token_ids)
                    worker = chat.system.registry.lookup(WORKER_KEY)
                    if kill_worker and tokens >= 4 and worker is not None:
                        kill_worker = False
                        chat.system.faults.kill(worker.path)
                        print(" [gpu worker killed] ", end="", flush=True)
            await handle.persisted.wait()
            print()
            stored = store.get_active_branch(user.id, conversation.id)[-1]
            print(f"stored reply: status={stored.status.value}, "
                  f"{stored.completion_tokens} completion tokens", file=sys.stderr)
            print_tree(chat.snapshot()["tree"])


def print_tree(node: dict[str, object], depth: int = 0) -> None:
    label = f"{node.get('path') or '/'} [{node.get('kind')}, {node.get('state')}"
    label += f", restarts={node.get('restarts')}]"
    print("  " * depth + label, file=sys.stderr)
    children = node.get("children")
    if isinstance(children, list):
        for child in children:
            print_tree(child, depth + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorusline")
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="stream one chat turn through the actor tree")
    run_demo.add_argument("question", nargs="?", default="What is the capital of France?")
    run_demo.add_argument("--max-tokens", type=int, default=48)
    run_demo.add_argument("--no-fault", action="store_true", help="do not kill the GPU worker")
    args = parser.parse_args(argv)
    if args.max_tokens < 1:
        parser.error("--max-tokens must be at least 1")
    trio.run(demo, args.question, args.max_tokens, not args.no_fault)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
