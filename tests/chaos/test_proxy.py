"""The fault proxy against real sockets: an echo server started in the test's nursery, and
the real Redis. Waits are on what can be observed (an echo, an EOF); the only timed waits
are short ones proving that nothing arrives, and latency is checked by lower bounds only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from urllib.parse import urlsplit

import pytest
import trio

from chorusline.chaos.proxy import FaultProxy, open_fault_proxy

QUIET = 0.5  # how long "nothing arrives" is watched for
HANG = 30  # a broken proxy fails the test instead of hanging it; never a timing assertion


class Echo:
    """An upstream that sends back what it receives and counts its connections."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            async for data in stream:
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


@pytest.fixture
async def echo(nursery: trio.Nursery) -> Echo:
    server = Echo()
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server


@pytest.fixture
async def proxy(echo: Echo) -> AsyncIterator[FaultProxy]:
    async with open_fault_proxy(("127.0.0.1", echo.port)) as fault_proxy:
        yield fault_proxy


async def connect(proxy: FaultProxy) -> trio.SocketStream:
    return await trio.open_tcp_stream(proxy.host, proxy.port)


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = b""
    with trio.fail_after(HANG):
        while len(data) < size:
            chunk = await stream.receive_some(size - len(data))
            assert chunk, f"EOF after {data!r}"
            data += chunk
    return data


async def round_trip(stream: trio.SocketStream, payload: bytes) -> bytes:
    await stream.send_all(payload)
    return await receive_exactly(stream, len(payload))


async def assert_closed(stream: trio.SocketStream) -> None:
    """The proxy closed this connection: the next receive is EOF or a reset."""
    try:
        with trio.fail_after(HANG):
            assert await stream.receive_some(1024) == b""
    except trio.BrokenResourceError:
        pass


async def assert_silent(stream: trio.SocketStream) -> None:
    with trio.move_on_after(QUIET) as quiet:
        data = await stream.receive_some(1024)
        pytest.fail(f"expected nothing, got {data!r}")
    assert quiet.cancelled_caught


async def test_bytes_pass_both_ways_and_are_counted(proxy: FaultProxy) -> None:
    assert proxy.port != 0
    assert proxy.address == f"127.0.0.1:{proxy.port}"
    assert (proxy.mode, proxy.latency) == ("pass", 0.0)
    async with await connect(proxy) as stream:
        assert await round_trip(stream, b"hello") == b"hello"
        assert await round_trip(stream, b"x" * 100_000) == b"x" * 100_000
        assert proxy.stats() == {"accepted": 1, "active": 1, "bytes_up": 100_005,
                                 "bytes_down": 100_005, "refused": 0}


async def test_client_half_close_is_forwarded(proxy: FaultProxy) -> None:
    async with await connect(proxy) as stream:
        await stream.send_all(b"last words")
        await stream.send_eof()
        assert await receive_exactly(stream, 10) == b"last words"
        await assert_closed(stream)  # the echo server closed after our EOF reached it


async def test_cut_aborts_open_connections_and_closes_new_ones(
    proxy: FaultProxy, echo: Echo
) -> None:
    async with await connect(proxy) as stream:
        assert await round_trip(stream, b"ping") == b"ping"
        proxy.cut()
        assert proxy.mode == "cut"
        await assert_closed(stream)
    async with await connect(proxy) as late:  # the connect itself succeeds...
        await assert_closed(late)  # ...and is closed at once
    stats = proxy.stats()
    assert (stats["accepted"], stats["active"], stats["refused"]) == (2, 0, 1)
    assert echo.connections == 1


async def test_heal_after_cut_restores_service(proxy: FaultProxy) -> None:
    proxy.cut()
    async with await connect(proxy) as refused:
        await assert_closed(refused)
    proxy.heal()
    assert (proxy.mode, proxy.latency) == ("pass", 0.0)
    async with await connect(proxy) as stream:
        assert await round_trip(stream, b"back") == b"back"


async def test_blackhole_stalls_open_connections_and_holds_new_ones(
    proxy: FaultProxy, echo: Echo
) -> None:
    async with await connect(proxy) as before:
        assert await round_trip(before, b"one") == b"one"
        proxy.blackhole()
        assert proxy.mode == "blackhole"
        await before.send_all(b"two")
        await assert_silent(before)
        async with await connect(proxy) as during:  # accepted, never forwarded
            await during.send_all(b"three")
            await assert_silent(during)
            assert proxy.stats()["active"] == 2
            assert echo.connections == 1
            assert proxy.stats()["bytes_up"] == 3
            proxy.heal()  # both connections are dead now: their clients must reconnect
            await assert_closed(before)
            await assert_closed(during)
    assert proxy.stats()["active"] == 0
    async with await connect(proxy) as after:
        assert await round_trip(after, b"four") == b"four"


async def test_latency_delays_each_direction_and_keeps_order(proxy: FaultProxy) -> None:
    proxy.set_latency(0.2)
    assert proxy.latency == 0.2
    async with await connect(proxy) as stream:
        started = trio.current_time()
        assert await round_trip(stream, b"slow") == b"slow"
        assert trio.current_time() - started >= 0.4  # 0.2 up + 0.2 down; lower bound only
        chunks = [bytes([65 + i]) * 1000 for i in range(5)]
        for chunk in chunks:
            await stream.send_all(chunk)
        assert await receive_exactly(stream, 5000) == b"".join(chunks)
    proxy.heal()
    assert proxy.latency == 0.0


@pytest.mark.parametrize("seconds", [-1, -0.001, float("nan")])
async def test_negative_latency_is_refused(proxy: FaultProxy, seconds: float) -> None:
    with pytest.raises(ValueError):
        proxy.set_latency(seconds)
    assert proxy.latency == 0.0


async def test_unreachable_upstream_closes_the_client_and_counts_refused() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    for listener in listeners:
        await listener.aclose()  # nothing listens on that port now
    async with open_fault_proxy(("127.0.0.1", port)) as proxy:
        async with await connect(proxy) as stream:
            await assert_closed(stream)
        assert proxy.stats() == {"accepted": 1, "active": 0, "bytes_up": 0, "bytes_down": 0,
                                 "refused": 1}


async def test_leaving_the_context_closes_every_connection(echo: Echo) -> None:
    async with open_fault_proxy(("127.0.0.1", echo.port)) as proxy:
        stream = await connect(proxy)
        assert await round_trip(stream, b"hi") == b"hi"
        port = proxy.port
    async with stream:
        await assert_closed(stream)
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_redis_answers_through_the_proxy_and_not_through_a_cut(redis_url: str) -> None:
    url = urlsplit(redis_url)
    async with open_fault_proxy((url.hostname or "127.0.0.1", url.port or 6379)) as proxy:
        async with await connect(proxy) as stream:
            await stream.send_all(b"PING\r\n")
            assert await receive_exactly(stream, 7) == b"+PONG\r\n"
            proxy.cut()
            await assert_closed(stream)
        proxy.heal()
        async with await connect(proxy) as stream:
            await stream.send_all(b"PING\r\n")
            assert await receive_exactly(stream, 7) == b"+PONG\r\n"
