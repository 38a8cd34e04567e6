"""``chorusline`` command line: ``serve`` (the HTTP API) and ``demo``.

Every ``serve`` flag has a ``CHORUSLINE_*`` environment variable; the defaults run with no
services at all (SQLite file, in-process rate limits, the bundled model, CPU). On first
start the server creates an admin API key and prints it once. ``--workers N`` runs N
server processes on one port, each with its own engine (see chorusline.workers).

``demo`` starts the whole supervised chat tree on embedded defaults (SQLite in a
temporary folder, in-process rate limits, the bundled SmolLM2 model, CPU), streams a
reply to one question through a stored conversation, kills the GPU worker halfway to show
the stream carrying on, and prints the actor tree.

``keys create|list|revoke`` manages API keys straight in the database (the same
``--database-url`` as ``serve``; no model is loaded, and a running server sees the change
on its next request).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

import trio

from chorusline.chat import (
    WORKER_KEY,
    ChatRequest,
    ChatSettings,
    SqliteStore,
    Store,
    Tiers,
    open_chat_service,
    open_store,
)
from chorusline.protocols import ChoruslineError, NotFound
from chorusline.runtime import EngineConfig, SamplingParams
from chorusline.web import serve
from chorusline.workers import supervise, wait_for_stop

TIERS = ("free", "plus", "enterprise")


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


def serve_settings(args: argparse.Namespace) -> ChatSettings:
    engine = EngineConfig(device=args.device, cpu_threads=args.cpu_threads)
    if args.kv_cache_mb is not None:
        engine = replace(engine, kv_cache_bytes=args.kv_cache_mb * 1024 * 1024)
    return ChatSettings(
        database_url=args.database_url,
        model_path=args.model_path,
        redis_url=args.redis_url,
        engine=engine,
        tiers=Tiers.load(args.tiers_file) if args.tiers_file else Tiers.defaults(),
    )


def ensure_admin_key(store: Store) -> None:
    """On the first start (no admin key yet), create one and print it, once."""
    if not store.has_admin_key():
        admin = store.create_user("admin")
        issued = store.create_api_key(admin.id, tier="enterprise", is_admin=True)
        print(f"created the admin API key (shown only now): {issued.plaintext}", flush=True)


def serving_line(args: argparse.Namespace, port: int, model_name: str, workers: int) -> str:
    processes = f", {workers} workers" if workers > 1 else ""
    return (f"chorusline is serving http://{args.host}:{port}/v1 (model {model_name!r}"
            f"{processes}); authenticate with 'Authorization: Bearer <api key>'")


async def serve_forever(args: argparse.Namespace) -> None:
    """One server process: the whole server, or (``--as-worker``) one of a
    ``--workers`` parent's, which then made the admin key and watches this one."""
    settings = serve_settings(args)
    print("loading the model and starting the actor tree...", file=sys.stderr)
    async with open_chat_service(settings) as chat:
        if not args.as_worker:
            await chat.db(ensure_admin_key, chat.store)
        shutdown = trio.Event()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(
                    partial(serve, chat, host=args.host, port=args.port,
                            model_name=settings.model_name, shutdown=shutdown,
                            reuse_port=args.as_worker)
                )
                if args.as_worker:  # the parent reads this first line as "ready"
                    print(f"worker {os.getpid()} ready on port {port}", flush=True)
                else:
                    print(serving_line(args, port, settings.model_name, 1), flush=True)
                await wait_for_stop(signals, parent_pipe=args.as_worker)
                print("draining...", file=sys.stderr)
                shutdown.set()


def serve_workers(args: argparse.Namespace) -> int:
    """``serve --workers N``: the admin key first, then N ``--as-worker`` processes on
    one port (see chorusline.workers), each with an even share of the CPU threads."""
    store = open_store(args.database_url)
    try:
        ensure_admin_key(store)
    finally:
        store.close()
    threads = args.cpu_threads or max(1, (os.cpu_count() or 1) // args.workers)

    def command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "chorusline.cli", "serve", "--as-worker",
                "--workers", "1", "--host", args.host, "--port", str(port),
                "--database-url", args.database_url, "--cpu-threads", str(threads)]
        for flag in ("redis_url", "model_path", "device", "tiers_file", "kv_cache_mb"):
            if (value := getattr(args, flag)) is not None:
                argv += [f"--{flag.replace('_', '-')}", str(value)]
        return argv

    model_name = ChatSettings().model_name
    return trio.run(supervise, args.workers, args.host, args.port, command,
                    lambda port: print(serving_line(args, port, model_name, args.workers),
                                       flush=True))


def keys(args: argparse.Namespace) -> None:
    """``chorusline keys ...``; raises ChoruslineError / ValueError for the caller to
    print as one line."""
    store = open_store(args.database_url)
    try:
        if args.keys_command == "create":
            owners = [u for u in store.list_users() if u.name == args.owner]
            user = owners[0] if owners else store.create_user(args.owner)
            issued = store.create_api_key(user.id, tier=args.tier, is_admin=args.admin)
            print(f"created API key {issued.key.id} for {user.name!r} "
                  f"(tier {issued.key.tier}{', admin' if issued.key.is_admin else ''}); "
                  "it is shown only now:", file=sys.stderr)
            print(issued.plaintext)
        elif args.keys_command == "list":
            print_keys(store, args.owner)
        else:
            for user in store.list_users():
                if any(k.id == args.key_id for k in store.list_api_keys(user.id)):
                    key = store.revoke_api_key(user.id, args.key_id)
                    print(f"revoked API key {key.id} ({key.prefix}) of {user.name!r} "
                          f"at {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}")
                    return
            raise NotFound(f"API key {args.key_id!r} not found", param="key_id")
    finally:
        store.close()


def print_keys(store: Store, owner: str | None) -> None:
    rows = [("ID", "OWNER", "PREFIX", "TIER", "ADMIN", "REVOKED")]
    for user in store.list_users():
        if owner is not None and user.name != owner:
            continue
        for key in store.list_api_keys(user.id):
            revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "no"
            rows.append((key.id, user.name, key.prefix, key.tier,
                         "yes" if key.is_admin else "no", revoked))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"CHORUSLINE_{name}", default)


def optional_int(name: str) -> int | None:
    value = env(name, None)
    return None if value is None or not value.strip() else int(value)


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
    run_serve = commands.add_parser("serve", help="serve the OpenAI-compatible HTTP API")
    run_serve.add_argument("--host", default=env("HOST", "127.0.0.1"))
    run_serve.add_argument("--port", type=int, default=int(env("PORT", "8000") or 8000))
    database_url = env("DATABASE_URL", "sqlite:///chorusline.db")
    run_serve.add_argument("--database-url", default=database_url)
    run_serve.add_argument("--redis-url", default=env("REDIS_URL", None))
    run_serve.add_argument("--model-path", default=env("MODEL_PATH", None))
    run_serve.add_argument("--device", default=env("DEVICE", None))
    run_serve.add_argument("--tiers-file", default=env("TIERS_FILE", None))
    run_serve.add_argument("--workers", type=int, default=int(env("WORKERS", "1") or 1),
                           help="server processes sharing the port, each with its own "
                                "engine (Linux: SO_REUSEPORT)")
    run_serve.add_argument("--kv-cache-mb", type=int, default=optional_int("KV_CACHE_MB"),
                           help="KV-cache budget per engine in MiB (default 512)")
    run_serve.add_argument("--cpu-threads", type=int, default=optional_int("CPU_THREADS"),
                           help="torch CPU threads per engine (default: all cores, "
                                "shared evenly between workers)")
    run_serve.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)
    run_keys = commands.add_parser("keys", help="create, list or revoke API keys")
    run_keys.add_argument("--database-url", default=database_url)
    key_commands = run_keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="issue a key (printed once)")
    create.add_argument("--database-url", default=argparse.SUPPRESS)
    create.add_argument("--owner", required=True, help="user name (created if missing)")
    create.add_argument("--tier", choices=TIERS, default="free")
    create.add_argument("--admin", action="store_true", help="an admin key")
    listing = key_commands.add_parser("list", help="list keys (never the secrets)")
    listing.add_argument("--database-url", default=argparse.SUPPRESS)
    listing.add_argument("--owner", default=None, help="only this user's keys")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("--database-url", default=argparse.SUPPRESS)
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)
    if args.command == "keys":
        if args.keys_command == "create" and not args.owner.strip():
            create.error("--owner must not be empty")
        try:
            keys(args)
        except (ChoruslineError, ValueError, OSError) as error:
            print(f"chorusline: {error}", file=sys.stderr)
            return 1
        except Exception as error:  # a driver error (bad path, unreachable server)
            print(f"chorusline: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
        return 0
    if args.command == "serve":
        for flag in ("workers", "kv_cache_mb", "cpu_threads"):
            if (value := getattr(args, flag)) is not None and value < 1:
                run_serve.error(f"--{flag.replace('_', '-')} must be at least 1")
        try:
            if args.workers > 1:
                return serve_workers(args)
            trio.run(serve_forever, args)
        except (ChoruslineError, ValueError, OSError) as error:
            print(f"chorusline: {error}", file=sys.stderr)
            return 1
        return 0
    if args.max_tokens < 1:
        parser.error("--max-tokens must be at least 1")
    trio.run(demo, args.question, args.max_tokens, not args.no_fault)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
