"""``chorusline chaos list|run``: the fault-injection suite from the command line.

The exit status is the verdict: 0 only when every invariant of every scenario that ran
held (a skipped scenario says why, and does not fail the run), 1 when any was violated
or the run itself failed, 2 for bad usage, so CI can gate a deployment on it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

#: How long ``--target`` may take to answer ``/ready`` before the run gives up.
REACH_TIMEOUT = 15.0

if TYPE_CHECKING:
    from chorusline.chaos import RunOptions, Scenario


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chaos = commands.add_parser("chaos", help="fault-injection scenarios with a history "
                                "checker (docs/faults.md)")
    sub = chaos.add_subparsers(dest="chaos_command", required=True)
    sub.add_parser("list", help="the scenarios, one line each")
    run = sub.add_parser("run", help="run scenarios and check every invariant")
    run.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                     help="which to run (default: all)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--target", metavar="URL", help="a running deployment (actor faults "
                       "only, through its admin API)")
    where.add_argument("--spawn", action="store_true", help="start and own the server "
                       "processes (the default)")
    run.add_argument("--admin-key", default=os.environ.get("CHORUSLINE_KEY"),
                     help="with --target: an admin API key (default: env CHORUSLINE_KEY)")
    run.add_argument("--store", default="sqlite", metavar="sqlite|postgresql://...",
                     help="with --spawn: the database (default: SQLite in the work dir)")
    run.add_argument("--redis", metavar="URL", help="with --spawn: share rate limits "
                     "through this Redis (behind a fault proxy)")
    run.add_argument("--duration", type=float, default=60.0,
                     help="seconds of load per scenario (default: 60)")
    run.add_argument("--clients", type=int, default=None,
                     help="concurrent clients (default: each scenario's own, 4 mostly)")
    run.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    run.add_argument("--report", type=Path, metavar="FILE.json",
                     help="write every history and verdict here")
    run.add_argument("--workdir", type=Path, help="with --spawn: where the server's "
                     "database and logs go (default: a temporary directory)")


def main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    # Imported here: the rest of the command line should not pay for an HTTP client.
    from chorusline.chaos import SCENARIOS, RunOptions, select_scenarios

    if args.chaos_command == "list":
        width = max(len(s.name) for s in SCENARIOS)
        for scenario in SCENARIOS:
            needs = sorted(scenario.needs - {"actor"})
            print(f"{scenario.name:<{width}}  {scenario.summary}"
                  + (f"  [needs: {', '.join(needs)}]" if needs else ""))
        return 0
    try:
        scenarios = select_scenarios(args.scenarios)
    except ValueError as error:
        parser.error(str(error))
    if args.duration <= 0 or (args.clients is not None and args.clients < 1):
        parser.error("--duration must be positive and --clients at least 1")
    if args.target and not args.admin_key:
        parser.error("--target needs --admin-key (or env CHORUSLINE_KEY): an admin key")
    if args.target and (args.redis or args.store != "sqlite" or args.workdir):
        parser.error("--store, --redis and --workdir apply to --spawn only")
    if args.store != "sqlite" and not args.store.startswith(("postgresql://", "postgres://")):
        parser.error("--store takes 'sqlite' or a postgresql:// URL")
    options = RunOptions(duration=args.duration, clients=args.clients, seed=args.seed)
    try:
        return trio.run(partial(run, args, scenarios, options))
    except KeyboardInterrupt:
        return 130
    except (OSError, RuntimeError, trio.TooSlowError) as error:
        print(f"chorusline chaos: {error}", file=sys.stderr)
        return 1


async def run(args: argparse.Namespace, scenarios: list[Scenario], options: RunOptions) -> int:
    from chorusline.chaos import (
        Target,
        open_spawned,
        report_json,
        run_all,
        verdict_table,
        violation_lines,
        write_report,
    )

    if args.target:
        target = Target(args.target if "/v1" in args.target
                        else args.target.rstrip("/") + "/v1", args.admin_key)
        try:
            with trio.fail_after(REACH_TIMEOUT):
                await target.wait_serving()
        except trio.TooSlowError:
            raise RuntimeError(f"{target.url} did not answer /ready with 200 within "
                               f"{REACH_TIMEOUT:g}s") from None
        outcomes = await run_all(scenarios, target, options)
        described = target.describe()
    else:
        with tempfile.TemporaryDirectory(prefix="chorusline-chaos-") as scratch:
            workdir = args.workdir or Path(scratch)
            workdir.mkdir(parents=True, exist_ok=True)
            store = None if args.store == "sqlite" else args.store
            async with open_spawned(workdir, store, args.redis) as spawned:
                outcomes = await run_all(scenarios, spawned, options)
                described = spawned.describe()
    print(verdict_table(outcomes))
    if broken := violation_lines(outcomes):
        print(broken)
    data = report_json(outcomes, described, options)
    if args.report:
        write_report(args.report, data)
        print(f"report: {args.report}")
    return 0 if data["ok"] else 1
