"""``chorusline serve --workers N``: N server processes sharing one port.

Why processes: one process runs one engine on one GIL, and the event loop that serves
HTTP shares that GIL with the engine's Python work between kernels. N processes, each
with its own model, KV cache and actor tree, scale request handling and engine steps
over cores (or GPUs) at the cost of N copies of the weights and the KV budget.

The parent does what must happen exactly once, then only supervises:

1. The caller (``cli.serve_workers``) creates the first admin key before any worker
   starts, so N workers racing on an empty database can never mint N admin keys.
2. ``supervise`` reserves the port with a bound, never-listening ``SO_REUSEPORT`` socket
   (port 0 becomes one concrete port for all), starts the workers, each of which binds
   the same port with ``SO_REUSEPORT`` and listens, so the kernel spreads connections
   over them, and announces the server once every worker has reported ready (its
   first line on stdout).
3. SIGINT or SIGTERM is forwarded as one SIGTERM to each worker, which drains like a
   single server (in-flight responses finish, the actor tree stops cleanly). A second
   signal, or a worker still running after ``DRAIN_TIMEOUT``, is met with SIGKILL.

Workers run in their own session, so a terminal's Ctrl-C reaches only the parent, which
stops them in order. Each worker's stdin is a pipe from the parent that is never
written: if the parent dies without stopping them, the pipe closes and they drain on
their own instead of serving on as orphans.

Exit status: 0 when every worker stopped cleanly after a stop signal; 1 when a worker
failed to start or died on its own. Then the others are stopped too: like a single
process whose actor system crashed, the server ends for its process manager to restart,
rather than serving on with fewer workers than it was asked for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence

import trio

from chorusline.web import reuse_port_socket

#: Seconds a worker gets to drain after SIGTERM before it is killed.
DRAIN_TIMEOUT = 120.0
_STOPPED_CLEANLY = (0, -signal.SIGTERM)  # -SIGTERM: stopped before it could install handlers

Event = tuple[str, int, int]  # (kind, worker index, exit code)


async def supervise(
    count: int,
    host: str,
    port: int,
    command: Callable[[int], Sequence[str]],
    announce: Callable[[int], None],
) -> int:
    """Run ``count`` copies of ``command(port)`` until a stop signal; the exit status."""
    with reuse_port_socket(host, port) as reserved, \
            trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        bound: int = reserved.getsockname()[1]
        processes: list[trio.Process] = []
        try:
            return await _run(count, command(bound), processes, signals,
                              lambda: announce(bound))
        finally:
            with trio.CancelScope(shield=True):
                for process in processes:
                    if process.returncode is None:
                        process.kill()  # only if the parent itself failed
                    await process.wait()
                    for pipe in (process.stdin, process.stdout):
                        if pipe is not None:
                            await pipe.aclose()


async def _run(count: int, argv: Sequence[str], processes: list[trio.Process],
               signals: AsyncIterator[int],
               announce: Callable[[], None]) -> int:
    send, receive = trio.open_memory_channel[Event](count * 2 + 4)
    ready = alive = 0
    stopping = failed = False
    async with trio.open_nursery() as nursery:

        def stop(force: bool = False) -> None:
            for process in processes:
                if process.returncode is not None:
                    continue
                if force:
                    process.kill()
                else:
                    process.send_signal(signal.SIGTERM)

        async def kill_stragglers() -> None:
            await trio.sleep(DRAIN_TIMEOUT)
            stop(force=True)

        async def forward_signals() -> None:
            async for _ in signals:
                await send.send(("signal", -1, 0))

        for index in range(count):
            process = await trio.lowlevel.open_process(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                start_new_session=True)
            processes.append(process)
            alive += 1
            nursery.start_soon(_watch, process, index, send)
        nursery.start_soon(forward_signals)
        async for kind, index, code in receive:
            if kind == "ready":
                ready += 1
                if ready == count and not stopping:
                    announce()
                continue
            if kind == "exit":
                alive -= 1
                if not stopping:
                    pid = processes[index].pid
                    print(f"chorusline: worker {pid} exited with status {code}; "
                          "stopping the others", file=sys.stderr, flush=True)
                failed = failed or not stopping or code not in _STOPPED_CLEANLY
                if alive == 0:
                    break
            elif stopping:  # a second signal: no more waiting
                stop(force=True)
                continue
            else:
                print("draining...", file=sys.stderr, flush=True)
            if not stopping:
                stopping = True
                stop()
                nursery.start_soon(kill_stragglers)
        nursery.cancel_scope.cancel()
    return 1 if failed else 0


async def _watch(process: trio.Process, index: int,
                 send: trio.MemorySendChannel[Event]) -> None:
    """Report the worker's first stdout line as "ready", then its exit."""
    assert process.stdout is not None
    seen = b""
    async for chunk in process.stdout:
        if b"\n" not in seen:
            seen += chunk
            if b"\n" in seen:
                await send.send(("ready", index, 0))
    await send.send(("exit", index, await process.wait()))


async def wait_for_stop(signals: AsyncIterator[int], *, parent_pipe: bool) -> None:
    """Return on SIGINT/SIGTERM, or (a worker) when the parent's stdin pipe closes: the
    parent died without stopping us, and an orphan must not serve on."""
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()

        async def on_parent_gone() -> None:
            stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
            async with stdin:
                while await stdin.receive_some():
                    pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(on_signal)
        if parent_pipe:
            nursery.start_soon(on_parent_gone)
