"""chorusline.top.feed: the event-stream parser on its own, then ``open_feed`` against a
real (scripted) HTTP server: the messages in order, and each failure sorted into the
class that tells the caller whether retrying can help."""

from __future__ import annotations

import pytest
import trio

from chorusline.top.feed import (
    FeedError,
    FeedLost,
    FeedRefused,
    SSEMessage,
    SSEParser,
    base_url,
    decode,
    open_feed,
)
from tests.top.feed_server import (
    ADMIN_KEY,
    USER_KEY,
    FeedServer,
    Stream,
    event,
    free_port,
    hello,
    snapshot,
    start,
)

# -- the parser --------------------------------------------------------------------------

STREAM = ("event: hello\ndata: {\"a\": 1}\n\n"
          ": heartbeat\n\n"
          "event: event\ndata: first\ndata: second\n\n"
          "data: caf\u00e9 \u20ac \U0001f600\n\n")
EXPECTED = [SSEMessage("hello", '{"a": 1}'), SSEMessage("event", "first\nsecond"),
            SSEMessage("message", "caf\u00e9 \u20ac \U0001f600")]


def parse(*chunks: bytes) -> list[SSEMessage]:
    parser = SSEParser()
    return [message for chunk in chunks for message in parser.feed(chunk)]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_ending_and_every_split_point_give_the_same_messages(
        newline: str) -> None:
    data = STREAM.replace("\n", newline).encode()
    assert parse(data) == EXPECTED
    for cut in range(1, len(data)):  # CRLF halves, UTF-8 halves, mid-field...
        assert parse(data[:cut], data[cut:]) == EXPECTED, cut
    assert parse(*(data[i:i + 1] for i in range(len(data)))) == EXPECTED


def test_a_crlf_split_between_chunks_is_one_line_end_not_two() -> None:
    # Read as CR, then LF, it would be an empty line: a message ended early.
    assert parse(b"data: a\r", b"\ndata: b\r\n\r\n") == [SSEMessage("message", "a\nb")]


def test_a_utf8_character_split_between_chunks_is_decoded_whole() -> None:
    encoded = "data: \u20ac\n\n".encode()
    euro = encoded.index(b"\xe2")
    assert parse(encoded[:euro + 1], encoded[euro + 1:euro + 2], encoded[euro + 2:]) == [
        SSEMessage("message", "\u20ac")]


def test_comments_alone_dispatch_nothing_and_a_trailing_partial_message_waits() -> None:
    parser = SSEParser()
    assert parser.feed(b": keep-alive\n\n:another\r\n\r\n") == []
    assert parser.feed(b"event: snapshot\ndata: {}\n") == []  # no blank line yet
    assert parser.feed(b"\n") == [SSEMessage("snapshot", "{}")]


def test_field_details_follow_the_html_standard() -> None:
    messages = parse(
        b"\xef\xbb\xbfdata:no space\ndata:  two spaces\ndata\n\n"  # BOM, colon rules
        b"event: named\nid: 7\nretry: 100\nunknown: x\ndata: d\n\n"
        b"data: after\n\n"  # the name resets, the id stays
        b"event: no-data\n\n")  # dropped: a message needs data
    assert messages == [SSEMessage("message", "no space\n two spaces\n"),
                        SSEMessage("named", "d", "7"), SSEMessage("message", "after", "7")]


def test_decode_wants_a_json_object() -> None:
    assert decode(SSEMessage("gap", '{"skipped": 3}')) == ("gap", {"skipped": 3})
    for data in ("[1, 2]", "not json", "null"):
        with pytest.raises(FeedError, match="'gap' message whose data is not a JSON"):
            decode(SSEMessage("gap", data))


@pytest.mark.parametrize(("text", "base"), [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000"),
    (" https://chat.example/v1/ ", "https://chat.example"),
    ("https://example.org/prefix/v1", "https://example.org/prefix"),
])
def test_base_url_drops_the_api_suffix(text: str, base: str) -> None:
    assert base_url(text) == base


@pytest.mark.parametrize("text", ["127.0.0.1:8000", "ftp://host", "http://", "http://h?x=1",
                                  "http://h:99999", "http://h:port"])
def test_base_url_rejects_what_is_not_a_server_url(text: str) -> None:
    with pytest.raises(ValueError, match=r"URL|port"):
        base_url(text)


# -- against a server --------------------------------------------------------------------

async def whole_feed(stream: Stream) -> None:
    await stream.send("hello", hello(events=[event(1)]))
    await stream.send("snapshot", snapshot())
    await stream.raw(b": heartbeat\r\n\r\n")
    await stream.send("event", event(2, "actor_crashed"))
    await stream.send("trace", {"request_id": "chatcmpl-x", "spans": []})
    await stream.send("gap", {"skipped": 4})


async def test_the_feed_arrives_in_order_with_the_key_and_interval_sent(
        nursery: trio.Nursery) -> None:
    server = await start(nursery, FeedServer(whole_feed))
    with trio.fail_after(10):
        async with open_feed(server.url + "/v1/", ADMIN_KEY, 0.5) as feed:
            received = [message async for message in feed]  # ends with the stream
    assert [name for name, _ in received] == ["hello", "snapshot", "event", "trace", "gap"]
    assert received[0][1] == hello(events=[event(1)])
    assert received[1][1] == snapshot()
    assert received[4][1] == {"skipped": 4}
    request = server.requests[0]
    assert request.path == "/v1/admin/events"
    assert request.query == {"interval": ["0.5"]}
    assert request.headers["authorization"] == f"Bearer {ADMIN_KEY}"
    assert request.headers["accept"] == "text/event-stream"


async def test_leaving_the_block_disconnects(nursery: trio.Nursery) -> None:
    disconnected = trio.Event()

    async def script(stream: Stream) -> None:
        await stream.send("hello", hello())
        await stream.wait_closed()
        disconnected.set()

    server = await start(nursery, FeedServer(script))
    with trio.fail_after(10):
        async with open_feed(server.url, ADMIN_KEY) as feed:
            async for name, _ in feed:
                assert name == "hello"
                break
        await disconnected.wait()


@pytest.mark.parametrize(("key", "status", "message"), [
    ("sk-wrong", 401, "invalid API key"), (USER_KEY, 403, "this key is not an admin key")])
async def test_a_refused_key_is_a_feed_refused_with_the_servers_reason(
        nursery: trio.Nursery, key: str, status: int, message: str) -> None:
    server = await start(nursery, FeedServer(whole_feed))
    with trio.fail_after(10), pytest.raises(FeedRefused) as refused:
        async with open_feed(server.url, key):
            pass
    assert refused.value.status == status
    assert str(refused.value) == f"the server refused the key (HTTP {status}): {message}"


async def test_a_drop_mid_message_is_a_feed_lost(nursery: trio.Nursery) -> None:
    async def script(stream: Stream) -> None:
        await stream.send("hello", hello())
        await stream.raw(b"event: snapshot\ndata: {\"time\"")  # and then nothing
        await stream.drop()

    server = await start(nursery, FeedServer(script))
    names = []
    with trio.fail_after(10), pytest.raises(FeedLost, match="lost the connection to"):
        async with open_feed(server.url, ADMIN_KEY) as feed:
            async for name, _ in feed:
                names.append(name)
    assert names == ["hello"]  # the half message is never given


async def test_nobody_listening_is_a_feed_lost() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with trio.fail_after(10), pytest.raises(FeedLost, match=f"cannot reach {url}"):
        async with open_feed(url, ADMIN_KEY):
            pass


async def test_a_server_error_is_worth_retrying_but_a_wrong_route_is_not(
        nursery: trio.Nursery) -> None:
    busy = await start(nursery, FeedServer(whole_feed, status=503))
    with trio.fail_after(10), pytest.raises(FeedLost, match="HTTP 503"):
        async with open_feed(busy.url, ADMIN_KEY):
            pass
    missing = await start(nursery, FeedServer(whole_feed, status=404))
    with trio.fail_after(10), pytest.raises(FeedError, match="no console feed") as error:
        async with open_feed(missing.url, ADMIN_KEY):
            pass
    assert not isinstance(error.value, FeedLost | FeedRefused)


async def test_a_page_that_is_not_an_event_stream_is_refused_as_not_a_feed(
        nursery: trio.Nursery) -> None:
    server = await start(nursery, FeedServer(whole_feed, content_type="text/html"))
    with trio.fail_after(10), pytest.raises(FeedError, match="not an event stream"):
        async with open_feed(server.url, ADMIN_KEY):
            pass


async def test_a_message_that_is_not_json_ends_the_feed_with_a_feed_error(
        nursery: trio.Nursery) -> None:
    async def script(stream: Stream) -> None:
        await stream.raw(b"event: hello\r\ndata: <html>\r\n\r\n")

    server = await start(nursery, FeedServer(script))
    with trio.fail_after(10), pytest.raises(FeedError, match="not a JSON object"):
        async with open_feed(server.url, ADMIN_KEY) as feed:
            async for _ in feed:
                pass


def test_a_lone_cr_ends_its_line_at_once_and_a_later_lf_is_its_own() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: now\r\r") == [SSEMessage("message", "now")]  # not held
    # An empty chunk between the halves of a CRLF keeps the LF still to be skipped.
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\ndata: \xe2") == []
    assert parser.feed(b"\x82\xac\r\n\r\n") == [SSEMessage("message", "x\n\u20ac")]
    # A CR in the middle of a buffer is a line end; the next chunk's LF is a blank line.
    assert parser.feed(b"data: y\rdata: z") == []
    assert parser.feed(b"\n\n") == [SSEMessage("message", "y\nz")]
