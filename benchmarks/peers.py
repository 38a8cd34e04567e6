"""Starting the servers ``versus.py`` compares: each a child process on a loopback port.

Readiness is polled (a child's port has no event to wait on); memory is the process
tree's resident set, read from /proc (Linux).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from benchmarks.common import stop_process

START_TIMEOUT_S = 300.0
TIERS = """default = "bench"
[tiers.bench]
requests_per_minute = 1000000
tokens_per_minute = 1000000000
max_concurrent_streams = 4096
priority = 0
"""


@dataclass
class Server:
    name: str
    command: list[str]
    #: The API key once the server answers, else None.
    ready: Callable[[], str | None]
    port: int
    env: dict[str, str] = field(default_factory=dict)


@contextmanager
def started(server: Server, log: Path) -> Iterator[tuple[int, str]]:
    """Run the server until it is ready; yields (pid, API key)."""
    with log.open("wb") as out:
        process = subprocess.Popen(server.command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **server.env})
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while (key := server.ready()) is None:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise SystemExit(f"{server.name} did not start:\n{tail}")
                time.sleep(0.5)  # polling a child's port: there is no event to wait on
            yield process.pid, key
        finally:
            stop_process(process)


def answering(port: int) -> Callable[[], str | None]:
    """Readiness of a server that needs no key: its ``/v1/models`` answers 200."""
    def ready() -> str | None:
        try:
            response = httpx2.get(f"http://127.0.0.1:{port}/v1/models", timeout=2.0)
        except httpx2.HTTPError:
            return None
        return "none" if response.status_code == 200 else None
    return ready


def chorusline(tmp: Path, port: int) -> tuple[list[str], Callable[[], str | None]]:
    (tmp / "tiers.toml").write_text(TIERS)
    command = [sys.executable, "-m", "chorusline.cli", "serve", "--port", str(port),
               "--database-url", f"sqlite:///{tmp / 'bench.db'}", "--tiers-file",
               str(tmp / "tiers.toml"), "--model", "smollm2-135m-instruct"]

    def ready() -> str | None:
        log = tmp / "chorusline.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        if "chorusline is serving" not in text:
            return None
        keys = [line.rsplit(" ", 1)[1] for line in text.splitlines() if "admin API key" in line]
        return keys[0].strip() if keys else None
    return command, ready


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


