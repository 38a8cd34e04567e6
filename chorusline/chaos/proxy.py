"""A TCP fault proxy on loopback, for staging network faults between the server and its
PostgreSQL or Redis in real sockets rather than mocks.

The server under test is pointed at the proxy's port; the proxy forwards to the real
upstream, and a test flips it between three modes while connections are open. The modes
are the failures production actually sees, and each was chosen to look like it from the
client's side:

* ``cut`` is a stopped server: open connections are closed at once and new ones are
  accepted and closed, so a client fails fast instead of waiting on a timeout.
* ``blackhole`` is a partition whose TCP stack still answers: connects succeed, nothing
  ever arrives, and only the client's own timeouts can save it. Bytes are not dropped but
  held (the writer stops), so the sender sees TCP back-pressure, as it would on a link
  that never acknowledges.
* latency delays every chunk in each direction. Each direction is a reader that stamps
  chunks with their arrival time and a writer that sleeps until arrival + latency, so
  many chunks are in flight at once: throughput is not divided by the latency, the way it
  is not on a slow link.

Everything runs in one trio nursery with no threads, so mode switches are plain attribute
writes seen by every connection at its next step; each connection has its own cancel
scope, which is how ``cut`` and ``heal`` reach connections already open. Peer resets are
normal here and end only their own connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

__all__ = ["FaultProxy", "open_fault_proxy"]

_CHUNK = 65536
_PIPELINE_DEPTH = 64  # chunks in flight per direction before the reader pushes back
_PEER_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class _Connection:
    """One client's connection. ``stalled`` is set by a blackhole and never cleared: bytes
    held during a partition are lost to the protocol on both ends, so the connection can
    only be closed (by ``heal``), never resumed."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.stalled = False


class FaultProxy:
    """The handle a test steers; made by :func:`open_fault_proxy`, which owns its tasks.

    ``stats()`` counts connections accepted, open now, and turned away ("refused": closed
    at once because of ``cut`` or an unreachable upstream), and bytes handed to each side
    ("up" is towards the upstream). Bytes are counted just before they are written, so a
    client that has read an echo can already see it counted.
    """

    def __init__(self, upstream: tuple[str, int], host: str) -> None:
        self.host = host
        self.port = 0
        self._upstream = upstream
        self._mode = "pass"
        self._latency = 0.0
        self._connections: set[_Connection] = set()
        self._counts = {"accepted": 0, "bytes_up": 0, "bytes_down": 0, "refused": 0}

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def latency(self) -> float:
        return self._latency

    def cut(self) -> None:
        self._mode = "cut"
        for connection in self._connections:
            connection.scope.cancel()

    def blackhole(self) -> None:
        self._mode = "blackhole"
        for connection in self._connections:
            connection.stalled = True

    def set_latency(self, seconds: float) -> None:
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(f"latency must be >= 0 seconds, not {seconds!r}")
        self._latency = float(seconds)

    def heal(self) -> None:
        self._mode = "pass"
        self._latency = 0.0
        for connection in self._connections:
            if connection.stalled:
                connection.scope.cancel()

    def stats(self) -> dict[str, int]:
        counts = self._counts
        return {"accepted": counts["accepted"], "active": len(self._connections),
                "bytes_up": counts["bytes_up"], "bytes_down": counts["bytes_down"],
                "refused": counts["refused"]}

    async def _serve(self, client: trio.SocketStream) -> None:
        self._counts["accepted"] += 1
        if self._mode == "cut":
            self._counts["refused"] += 1
            await trio.aclose_forcefully(client)
            return
        connection = _Connection()
        self._connections.add(connection)
        upstream: trio.SocketStream | None = None
        try:
            with connection.scope:
                if self._mode == "blackhole":
                    connection.stalled = True
                    await trio.sleep_forever()
                try:
                    upstream = await trio.open_tcp_stream(*self._upstream)
                except OSError:
                    self._counts["refused"] += 1
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._direction, connection, client, upstream, "bytes_up")
                    nursery.start_soon(self._direction, connection, upstream, client, "bytes_down")
        except* _PEER_ERRORS:
            pass  # a reset or a closed peer ends this connection only
        finally:
            self._connections.discard(connection)  # before closing: "active" is exact at EOF
            await trio.aclose_forcefully(client)
            if upstream is not None:
                await trio.aclose_forcefully(upstream)

    async def _direction(
        self, connection: _Connection, source: trio.SocketStream, sink: trio.SocketStream,
        counter: str,
    ) -> None:
        send, receive = trio.open_memory_channel[tuple[float, bytes]](_PIPELINE_DEPTH)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, connection, source, send)
            nursery.start_soon(self._write, connection, receive, sink, counter)

    async def _read(
        self, connection: _Connection, source: trio.SocketStream,
        send: trio.MemorySendChannel[tuple[float, bytes]],
    ) -> None:
        async with send:
            try:
                while chunk := await source.receive_some(_CHUNK):
                    await send.send((trio.current_time(), chunk))
            except _PEER_ERRORS:
                if connection.stalled:  # nor the reset: the other side must not learn of it
                    await trio.sleep_forever()
                raise

    async def _write(
        self, connection: _Connection, receive: trio.MemoryReceiveChannel[tuple[float, bytes]],
        sink: trio.SocketStream, counter: str,
    ) -> None:
        async with receive:
            async for arrived, chunk in receive:
                await trio.sleep_until(arrived + self._latency)
                if connection.stalled:
                    await trio.sleep_forever()
                self._counts[counter] += len(chunk)
                await sink.send_all(chunk)
        if connection.stalled:  # a partition does not carry the FIN either
            await trio.sleep_forever()
        await sink.send_eof()  # half-close, as the peer did; the other direction goes on


@asynccontextmanager
async def open_fault_proxy(
    upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[FaultProxy]:
    """Listen on ``(host, port)`` (0: a free port) and forward to ``upstream``; on exit the
    listener and every connection are closed."""
    proxy = FaultProxy(upstream, host)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, proxy._serve, port, host=host))
        proxy.port = listeners[0].socket.getsockname()[1]
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()
