"""``chorusline`` command line: ``serve`` (the HTTP API), ``keys``, ``users``, ``top`` and
``demo``.

Every ``serve`` flag has a ``CHORUSLINE_*`` environment variable (the flag wins), and
``--help`` shows each one's default and variable. The defaults run with no services at
all: SQLite in the user's data directory, in-process rate limits, the bundled model, CPU.
On first start the server creates an admin API key and prints it once. ``--workers N``
runs N server processes on one port, each with its own engine (see chorusline.workers).

``keys create|list|revoke`` manages API keys straight in the database (the same
``--database-url`` as ``serve``; a running server sees the change on its next request).
It loads no model: the web layer, the runtime and torch are imported only by ``serve``
and ``demo``, so a key command takes a fraction of a second rather than the seconds
the model stack takes to import.

``top`` (``chorusline.top``) watches a running server's supervisor console feed in the
terminal; it is an HTTP client, so it imports httpx and rich but none of the model stack.

``demo`` (``chorusline.demo``) streams one turn through the whole supervised tree and
kills the GPU worker halfway to show the stream carrying on.

Errors are one line on stderr: exit status 2 for bad usage, 1 for a failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from chorusline import chaos_cli, model_flags, users_cli
from chorusline.chat import (
    Accounts,
    AdmissionLimits,
    ChatSettings,
    default_database_url,
    open_accounts,
)
from chorusline.protocols import ChoruslineError

if TYPE_CHECKING:
    from chorusline.chat import ChatService

TIERS = ("free", "plus", "enterprise")
DTYPES = ("fp32", "bf16")
#: ``top``'s server when neither ``--url`` nor ``CHORUSLINE_URL`` says (``serve``'s default).
TOP_URL = "http://127.0.0.1:8000"
TOP_INTERVALS = (0.25, 10.0)  # what the feed accepts (docs/console.md)
#: ``serve`` flags a ``--workers`` parent hands on to each worker when they are set.
FORWARDED = ("redis_url", "device", "dtype", "tiers_file", "public_url", "max_body_bytes",
             "max_waiting_requests")


def serve_settings(args: argparse.Namespace) -> ChatSettings:
    import torch

    from chorusline.ratelimit import Tiers
    from chorusline.runtime import EngineConfig

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(args.dtype or "")
    engine = EngineConfig(device=args.device, cpu_threads=args.cpu_threads, dtype=dtype)
    if (mib := model_flags.shared_kv_cache_mb(args)) is not None:
        engine = replace(engine, kv_cache_bytes=mib * 1024 * 1024)
    return ChatSettings(
        database_url=args.database_url,
        models=model_flags.model_settings(args),
        redis_url=args.redis_url,
        engine=engine,
        tiers=Tiers.load(args.tiers_file) if args.tiers_file else Tiers.defaults(),
        limits=AdmissionLimits(max_waiting_requests=args.max_waiting_requests),
        # A worker must not close drafts its siblings are streaming into: the
        # ``--workers`` parent closes the dead process's ones before they start.
        sweep_open_drafts=not args.as_worker,
    )


async def ensure_admin_key(accounts: Accounts) -> None:
    """On the first start (no admin key yet), create one and print it, once."""
    issued = await accounts.ensure_admin_key()
    if issued is not None:
        print(f"created the admin API key (shown only now): {issued.plaintext}", flush=True)
        print("the same 'admin' account can sign in to the page once it has a password: "
              "chorusline users set-password admin", file=sys.stderr, flush=True)


def shown_url(url: str) -> str:
    """A database URL fit to print: a PostgreSQL password is masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def serving_line(args: argparse.Namespace, port: int, models: Sequence[str],
                 workers: int) -> str:
    processes = f", {workers} workers" if workers > 1 else ""
    names = ", ".join(repr(name) for name in models)
    return (f"chorusline is serving http://{args.host}:{port}/v1 (models {names}"
            f"{processes}); authenticate with 'Authorization: Bearer <api key>'")


async def serve_forever(args: argparse.Namespace) -> None:
    """One server process: the whole server, or (``--as-worker``) one of a
    ``--workers`` parent's, which then made the admin key and watches this one."""
    from chorusline.chat import open_chat_service
    from chorusline.web import serve
    from chorusline.workers import wait_for_stop

    settings = serve_settings(args)
    print("loading the model and starting the actor tree...", file=sys.stderr)
    chat: ChatService
    async with open_chat_service(settings) as chat:
        if not args.as_worker:
            await ensure_admin_key(chat.accounts)
        shutdown = trio.Event()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                port = await nursery.start(
                    partial(serve, chat, host=args.host, port=args.port, shutdown=shutdown,
                            reuse_port=args.as_worker, public_url=args.public_url,
                            max_body_bytes=args.max_body_bytes)
                )
                if args.as_worker:  # the parent reads this first line as "ready"
                    print(f"worker {os.getpid()} ready on port {port}", flush=True)
                else:
                    print(serving_line(args, port, [m.name for m in chat.models], 1),
                          flush=True)
                await wait_for_stop(signals, parent_pipe=args.as_worker)
                print("draining...", file=sys.stderr)
                shutdown.set()


async def ensure_admin_key_in(database_url: str) -> None:
    """What the ``--workers`` parent does to the store before any worker starts."""
    async with open_accounts(database_url) as accounts:
        await ensure_admin_key(accounts)
        await accounts.close_orphaned_drafts()


def serve_workers(args: argparse.Namespace) -> int:
    """``serve --workers N``: the admin key first, then N ``--as-worker`` processes on
    one port (see chorusline.workers), each with an even share of the CPU threads."""
    from chorusline.workers import supervise

    trio.run(ensure_admin_key_in, args.database_url)
    threads = args.cpu_threads or max(1, (os.cpu_count() or 1) // args.workers)

    def command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "chorusline.cli", "serve", "--as-worker",
                "--workers", "1", "--host", args.host, "--port", str(port),
                "--database-url", args.database_url, "--cpu-threads", str(threads)]
        for flag in FORWARDED:
            if (value := getattr(args, flag)) is not None:
                argv += [f"--{flag.replace('_', '-')}", str(value)]
        return argv + model_flags.forwarded(args)

    names = [m.name for m in model_flags.model_settings(args)]
    return trio.run(supervise, args.workers, args.host, args.port, command,
                    lambda port: print(serving_line(args, port, names, args.workers),
                                       flush=True))


async def keys(args: argparse.Namespace) -> None:
    """``chorusline keys ...``; raises ChoruslineError / ValueError for the caller to
    print as one line."""
    async with open_accounts(args.database_url) as accounts:
        if args.keys_command == "create":
            user = await accounts.user_named(args.owner, create=True)
            assert user is not None  # create=True always gives one
            issued = await accounts.create_api_key(user.id, tier=args.tier,
                                                   is_admin=args.admin)
            print(f"created API key {issued.key.id} for {user.name!r} "
                  f"(tier {issued.key.tier}{', admin' if issued.key.is_admin else ''}); "
                  "it is shown only now:", file=sys.stderr)
            print(issued.plaintext)
        elif args.keys_command == "list":
            rows = [("ID", "OWNER", "PREFIX", "TIER", "ADMIN", "REVOKED")]
            for user, key in await accounts.keys_by_owner(args.owner):
                revoked = (key.revoked_at.isoformat(timespec="seconds") if key.revoked_at
                           else "no")
                rows.append((key.id, user.name, key.prefix, key.tier,
                             "yes" if key.is_admin else "no", revoked))
            print_table(rows)
        else:
            user, key = await accounts.revoke_key(args.key_id)
            print(f"revoked API key {key.id} ({key.prefix}) of {user.name!r} "
                  f"at {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}")


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def one_of(*choices: str) -> Callable[[str], str]:
    """A type that checks choices: argparse checks ``choices`` only on the command line,
    never on a default (here: an environment variable's value)."""
    def check(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from "
                                             f"{', '.join(choices)})")
        return text

    check.__name__ = "choice"
    return check


def public_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s)://host[:port][/path] "
                                         "URL")
    return text.rstrip("/")


def option(parser: argparse.ArgumentParser, name: str, help: str, *, shown: str,
           default: str | None = None, **kwargs: Any) -> None:
    """``--name`` with its ``CHORUSLINE_NAME`` variable; the help says both and the
    default. A variable's value is a string default, which argparse converts (and checks)
    with ``type`` like a typed flag, so a bad one is a usage error, not a traceback."""
    variable = "CHORUSLINE_" + name.upper().replace("-", "_")
    value = os.environ.get(variable) or default
    parser.add_argument(f"--{name}", default=value, help=f"{help} (default: {shown}; "
                        f"env {variable})", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; environment variables are read now, as defaults."""
    parser = argparse.ArgumentParser(prog="chorusline")
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="stream one chat turn through the actor tree")
    run_demo.add_argument("question", nargs="?", default="What is the capital of France?")
    run_demo.add_argument("--max-tokens", type=int, default=48,
                          help="reply budget (default: 48)")
    run_demo.add_argument("--no-fault", action="store_true", help="do not kill the GPU worker")
    database = default_database_url(create=False)
    run_serve = commands.add_parser("serve", help="serve the OpenAI-compatible HTTP API")
    option(run_serve, "host", "address to listen on", shown="127.0.0.1", default="127.0.0.1")
    option(run_serve, "port", "port to listen on; 0: any free one (printed)", shown="8000",
           default="8000", type=int)
    option(run_serve, "database-url", "sqlite:///PATH or postgresql://...", shown=database)
    option(run_serve, "public-url", "base URL clients reach this server at, for share "
           "links", shown="the bound address, http://HOST:PORT", type=public_url)
    option(run_serve, "redis-url", "redis://... to share rate limits between workers and "
           "hosts", shown="none: in-process limits")
    model_flags.repeatable(run_serve, "model", "a model to serve: NAME (bundled) or "
                           "NAME=PATH (a GGUF file or safetensors directory); the first is "
                           "the default", shown="smollm2-135m-instruct and gemma-3-270m, "
                           "both bundled", metavar="NAME[=PATH]")
    model_flags.repeatable(run_serve, "fallback", "NAME=OTHER: when NAME's engine is "
                           "down or overloaded, OTHER answers (in the order given)",
                           shown="the bundled models fall back to each other",
                           metavar="NAME=OTHER")
    model_flags.repeatable(run_serve, "alias", "NAME=ALIAS: another name clients may use",
                           shown="'default' and 'fast' for smollm2-135m-instruct",
                           metavar="NAME=ALIAS")
    option(run_serve, "device", "cpu, cuda or cuda:N", shown="cuda when available, else cpu")
    option(run_serve, "dtype", "model precision; bf16 is faster on CPUs with AMX or "
           "AVX512-BF16 but changes greedy answers", shown="fp32 on CPU, bf16 on CUDA",
           type=one_of(*DTYPES), metavar="{fp32,bf16}")
    option(run_serve, "tiers-file", "rate-limit tiers, .toml or .json", shown="the built-in "
           "free, plus and enterprise tiers")
    option(run_serve, "workers", "server processes sharing the port, each with its own "
           "engine (Linux: SO_REUSEPORT)", shown="1", default="1", type=int)
    model_flags.repeatable(run_serve, "kv-cache-mb", "KV-cache budget in MiB: N for every "
                           "model's engine, NAME=N for one", shown="512",
                           metavar="[NAME=]MIB")
    option(run_serve, "cpu-threads", "torch CPU threads per engine", shown="all cores, "
           "shared evenly between workers", type=int)
    option(run_serve, "max-body-bytes", "largest request body accepted (413 beyond it)",
           shown=str(1024 * 1024), default=str(1024 * 1024), type=int)
    option(run_serve, "max-waiting-requests", "requests the engine queue holds before "
           "it answers 503 overloaded", shown="256", default="256", type=int)
    run_serve.add_argument("--as-worker", action="store_true", help=argparse.SUPPRESS)
    run_keys = commands.add_parser("keys", help="create, list or revoke API keys")
    option(run_keys, "database-url", "sqlite:///PATH or postgresql://... (as for serve)",
           shown=database)
    key_commands = run_keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="issue a key (printed once)")
    create.add_argument("--owner", required=True, help="user name (created if missing)")
    create.add_argument("--tier", choices=TIERS, default="free", help="default: free")
    create.add_argument("--admin", action="store_true", help="an admin key")
    listing = key_commands.add_parser("list", help="list keys (never the secrets)")
    listing.add_argument("--owner", default=None, help="only this user's keys")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    for sub in (create, listing, revoke):  # also accepted after the subcommand
        sub.add_argument("--database-url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    run_users = users_cli.add_parser(commands)
    option(run_users, "database-url", "sqlite:///PATH or postgresql://... (as for serve)",
           shown=database)
    run_top = commands.add_parser("top", help="watch a server's actors, engine and requests")
    option(run_top, "url", "the server (its API URL's trailing /v1 may stay)", shown=TOP_URL,
           default=TOP_URL)
    option(run_top, "key", "an admin API key (the variable keeps it out of ps)",
           shown="none")
    run_top.add_argument("--interval", type=float, default=1.0, help="seconds between "
                         "snapshots, 0.25 to 10 (default: 1)")
    run_top.add_argument("--once", action="store_true", help="print one view and exit")
    run_top.add_argument("--json", action="store_true", help="with --once: print the "
                         "feed's hello and first snapshot as one JSON object")
    chaos_cli.add_parser(commands)
    return parser


def top(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``chorusline top``: usage checked here (status 2), the rest in chorusline.top."""
    from chorusline.top import base_url, run_top

    key = (args.key or "").strip()
    if not key:
        parser.error("no API key: pass --key or set CHORUSLINE_KEY (an admin key)")
    if not (key.isascii() and key.isprintable()) or " " in key:
        parser.error("the API key holds characters no API key has")
    if args.json and not args.once:
        parser.error("--json needs --once (the live view is for a terminal)")
    low, high = TOP_INTERVALS
    if not low <= args.interval <= high:
        parser.error(f"--interval must be between {low:g} and {high:g} seconds")
    try:
        url = base_url(args.url)
    except ValueError as error:
        parser.error(f"--url: {error}")
    try:
        return one_line(lambda: trio.run(partial(
            run_top, url, key, args.interval, once=args.once, as_json=args.json)),
            drivers=False)
    except KeyboardInterrupt:  # before the command took SIGINT over: nothing to undo
        return 130 if args.once else 0


def one_line(run: Callable[[], int], *, drivers: bool) -> int:
    """``run``'s status, or 1 with the failure as one line (no traceback); ``drivers``:
    also a database driver's own exception (a bad path, an unreachable server)."""
    try:
        return run()
    except (ChoruslineError, ValueError, OSError) as error:
        print(f"chorusline: {error}", file=sys.stderr)
    except Exception as error:
        if not drivers:
            raise
        print(f"chorusline: {type(error).__name__}: {error}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.max_tokens < 1:
            parser.error("--max-tokens must be at least 1")
        from chorusline.demo import demo

        trio.run(demo, args.question, args.max_tokens, not args.no_fault)
        return 0
    if args.command == "top":
        return top(parser, args)
    if args.command == "chaos":
        return chaos_cli.main(parser, args)
    if args.command == "users":
        args.database_url = args.database_url or default_database_url()
        return one_line(lambda: trio.run(users_cli.users, args) or 0, drivers=True)
    if args.command == "keys":
        if args.keys_command == "create" and not args.owner.strip():
            parser.error("--owner must not be empty")
        args.database_url = args.database_url or default_database_url()
        return one_line(lambda: trio.run(keys, args) or 0, drivers=True)
    for flag in ("workers", "cpu_threads", "max_waiting_requests"):
        if (value := getattr(args, flag)) is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    try:
        model_flags.model_settings(args)
        model_flags.shared_kv_cache_mb(args)
    except ValueError as error:
        parser.error(str(error))
    args.database_url = args.database_url or default_database_url()
    print(f"database: {shown_url(args.database_url)}", file=sys.stderr)
    if args.workers > 1:
        return one_line(lambda: serve_workers(args), drivers=False)
    return one_line(lambda: trio.run(serve_forever, args) or 0, drivers=False)


if __name__ == "__main__":
    raise SystemExit(main())
