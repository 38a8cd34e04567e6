"""What a chaos run drives: a deployment it was pointed at, or servers it spawned.

``Target`` is the one interface the scenarios see; what it can do is in ``abilities``,
so a scenario that needs what a target lacks is skipped with the reason rather than run
half-way. A deployment named by ``--target`` can only be reached through its admin API
(actor faults). A spawned one is owned outright: the suite is its process manager (it
restarts a server that exits, as systemd would, and counts each restart as an epoch), and
it puts a ``FaultProxy`` between the server and PostgreSQL and Redis, so network faults
land on the real connections.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio

from chorusline.chaos.proxy import FaultProxy, open_fault_proxy
from chorusline.chaos.readback import ready_status

ACTOR, PROCESS, POSTGRES, REDIS = "actor", "process", "postgres", "redis"
#: How long a spawned server may take to load its model and serve.
START_TIMEOUT = 180.0
#: The engine queue of a spawned server (requests waiting beyond the running batch).
MAX_WAITING = 8
#: The tiers of a spawned server: a generous one for the admin key that drives most
#: load, a tight one for the key of the rate-limited scenarios.
TIERS = """default = "free"
[tiers.free]
requests_per_minute = 20
tokens_per_minute = 6000
max_concurrent_streams = 8
priority = 2
[tiers.plus]
requests_per_minute = 600
tokens_per_minute = 200000
max_concurrent_streams = 16
priority = 1
[tiers.enterprise]
requests_per_minute = 100000
tokens_per_minute = 100000000
max_concurrent_streams = 512
priority = 0
"""


class Target:
    """A deployment reached at ``url`` (ending in ``/v1/``) with an admin key."""

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url.rstrip("/") + "/"
        self.admin_key = admin_key
        #: A key on a tight tier for rate-limited workloads (the admin key otherwise).
        self.limited_key = admin_key
        self.abilities = {ACTOR}
        self.epoch = 0
        self.storage: FaultProxy | None = None
        self.redis: FaultProxy | None = None
        #: Server processes sharing the port (each has its own in-process limiter).
        self.processes = 1

    def client(self, key: str | None = None, *, timeout: float = 60.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))

    def describe(self) -> str:
        return self.url

    async def kill(self, sig: int = signal.SIGKILL, *, worker: bool = False) -> None:
        raise NotImplementedError("this target is not a process the suite owns")

    async def reconfigure(self, *, workers: int) -> None:
        """Run as ``workers`` processes: a deployment the suite does not own stays as it
        is (scenarios that need otherwise need ``--spawn`` and are skipped)."""
        if workers != self.processes:
            raise NotImplementedError("this target is not a process the suite owns")

    async def wait_serving(self) -> None:
        """Return once the server answers ``/ready`` (a restart may be under way)."""
        async with self.client(timeout=5.0) as http:
            with trio.fail_after(START_TIMEOUT):
                # A remote server pushes no "ready" event: ask until it says so.
                while await ready_status(http) != 200:  # noqa: ASYNC110
                    await trio.sleep(0.25)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def through(url: str, proxy: FaultProxy) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{proxy.address}" if credentials else proxy.address
    return parts._replace(netloc=netloc).geturl()


def upstream(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


class Spawned(Target):
    """``chorusline serve`` processes the suite starts, signals and restarts."""

    def __init__(self, workdir: Path, store_url: str, redis_url: str | None) -> None:
        super().__init__("http://127.0.0.1:0/v1", "")
        self.workdir = workdir
        self.store_url = store_url
        self.redis_url = redis_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/"
        self.abilities = {ACTOR, PROCESS}
        self.process: trio.Process | None = None
        self._stopping = False
        self._exited = trio.Event()
        (workdir / "tiers.toml").write_text(TIERS)

    def describe(self) -> str:
        backing = "PostgreSQL" if self.store_url.startswith("postgres") else "SQLite"
        return (f"spawned {self.url} ({self.processes} process(es), {backing}, "
                f"{'Redis' if self.redis_url else 'in-process limits'})")

    def command(self) -> list[str]:
        served_store = through(self.store_url, self.storage) if self.storage else self.store_url
        argv = [sys.executable, "-m", "chorusline.cli", "serve", "--port", str(self.port),
                "--database-url", served_store, "--tiers-file",
                str(self.workdir / "tiers.toml"), "--workers", str(self.processes),
                # A short queue, so an overload burst meets the 503 it is meant to.
                "--max-waiting-requests", str(MAX_WAITING)]
        if self.redis_url:
            argv += ["--redis-url", through(self.redis_url, self.redis) if self.redis
                     else self.redis_url]
        return argv

    async def start(self) -> None:
        """Start the server and return once it serves; the first start makes its keys.

        Its stdout goes to a file (read for the serving line), never to a pipe nobody
        drains, which would block the server once the pipe filled."""
        out = self.workdir / "server.out"
        # Local files, opened once per start: not worth a thread.
        with open(out, "wb") as stdout, open(self.workdir / "server.log", "ab") as log:  # noqa: ASYNC230
            process = await trio.lowlevel.open_process(
                self.command(), stdout=stdout, stderr=log, stdin=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.process, self._exited = process, trio.Event()
        with trio.fail_after(START_TIMEOUT):
            while "chorusline is serving" not in (seen := out.read_text()):
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited while starting; see "
                                       f"{self.workdir / 'server.log'}")
                await trio.sleep(0.1)
        for line in seen.splitlines():
            if "admin API key" in line:
                self.admin_key = line.rsplit(" ", 1)[1].strip()
        if self.limited_key == "":
            self.limited_key = await self.create_key("free")

    async def create_key(self, tier: str) -> str:
        result = await trio.run_process(
            [sys.executable, "-m", "chorusline.cli", "keys", "create", "--owner", "chaos",
             "--tier", tier, "--database-url", self.store_url], capture_stdout=True,
            capture_stderr=True)
        return result.stdout.decode().strip().splitlines()[-1]

    async def supervise(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                        ) -> None:
        """Be the process manager: start the server, and start it again whenever it
        exits, each time a new epoch, until ``stop``."""
        self.limited_key = ""
        await self.start()
        task_status.started()
        while True:
            assert self.process is not None
            await self.process.wait()
            self._exited.set()
            if self._stopping:
                return
            self.epoch += 1
            await self.start()

    async def kill(self, sig: int = signal.SIGKILL, *, worker: bool = False) -> None:
        """Send ``sig`` to the server (``worker``: to one of its worker processes) and
        wait for the exit; ``supervise`` then starts it again."""
        assert self.process is not None
        exited = self._exited
        pid = self.process.pid
        if worker:
            pid = children(pid)[0]
        os.kill(pid, sig)
        await exited.wait()

    async def reconfigure(self, *, workers: int) -> None:
        """Restart the server as ``workers`` processes (a drained, clean restart)."""
        if workers != self.processes:
            self.processes = workers
            await self.kill(signal.SIGTERM)
            await self.wait_serving()

    async def stop(self) -> None:
        self._stopping = True
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(120):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()


def children(pid: int) -> list[int]:
    """``pid``'s child processes (Linux): every thread's, since trio starts processes
    from a worker thread."""
    found = [child for task in Path(f"/proc/{pid}/task").iterdir()
             for child in (task / "children").read_text().split()]
    if not found:
        raise RuntimeError(f"process {pid} has no worker processes")
    return [int(child) for child in found]


@asynccontextmanager
async def open_spawned(workdir: Path, store_url: str | None = None,
                       redis_url: str | None = None) -> AsyncIterator[Spawned]:
    """A spawned server on ``store_url`` (default: SQLite in ``workdir``), with fault
    proxies in front of PostgreSQL and Redis, stopped (drained) on exit."""
    store_url = store_url or f"sqlite:///{workdir / 'chaos.db'}"
    target = Spawned(workdir, store_url, redis_url)
    # The proxies' nurseries nest inside this one, so they close first.
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        if store_url.startswith("postgres"):
            target.storage = await stack.enter_async_context(
                open_fault_proxy(upstream(store_url, 5432)))
            target.abilities.add(POSTGRES)
        if redis_url:
            target.redis = await stack.enter_async_context(
                open_fault_proxy(upstream(redis_url, 6379)))
            target.abilities.add(REDIS)
        await nursery.start(target.supervise)
        try:
            yield target
        finally:
            await target.stop()
            nursery.cancel_scope.cancel()
