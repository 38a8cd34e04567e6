"""A client for the console feed, ``GET /v1/admin/events`` (docs/console.md, "The feed").

The feed is server-sent events: ``SSEParser`` turns the bytes, in whatever chunks the
network delivers them, into messages (any line ending, comments, multi-line data, a UTF-8
character split between chunks), and ``open_feed`` connects and yields each message as
``(event_name, payload)``. Failures are ``FeedError``s that say in one line what went
wrong, sorted by what a caller should do about them: ``FeedRefused`` (the key is wrong:
retrying cannot help), ``FeedLost`` (the server is away or went quiet: retry later) and
plain ``FeedError`` (this is not a console feed at all). ``FeedError`` is an ``OSError``,
so the command line prints it as it prints any other I/O failure: one line, no traceback.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

FeedMessage = tuple[str, dict[str, Any]]

DEFAULT_URL = "http://127.0.0.1:8000"
FEED_PATH = "/v1/admin/events"
CONNECT_TIMEOUT = 10.0

_END_OF_LINE = re.compile(r"\r\n|\r|\n")


class FeedError(OSError):
    """The feed cannot be read; the message is one line, fit to show a user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class FeedRefused(FeedError):
    """401 or 403: the key is missing, unknown, revoked or not an admin key."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the server refused the key (HTTP {status}): {message}")
        self.status = status


class FeedLost(FeedError):
    """The server cannot be reached, went quiet or ended the feed: worth retrying."""


@dataclass(frozen=True)
class SSEMessage:
    event: str
    data: str
    id: str | None = None


class SSEParser:
    """The event-stream format of the HTML standard, fed incrementally.

    A line ends in CRLF, LF or a lone CR. A CR at the very end of a chunk ends its line
    at once (holding it back until the next chunk says whether an LF follows would hold
    a whole message back for an interval, or for ever at the end of the stream); an LF
    that then starts the next chunk is the rest of that CRLF and is skipped. Lines
    starting with ``:`` are comments (heartbeats); a blank line ends a message; a
    message with no ``data`` is dropped.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._skip_lf = False  # the last chunk ended in a CR
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        """The messages that ``chunk`` completes, oldest first."""
        text = self._decoder.decode(chunk)
        if self._skip_lf and text:
            self._skip_lf = False
            text = text.removeprefix("\n")
        self._buffer += text
        if not self._started and self._buffer:
            self._started = True
            self._buffer = self._buffer.removeprefix("\ufeff")
        messages = []
        for line in self._lines():
            message = self._line(line)
            if message is not None:
                messages.append(message)
        return messages

    def _lines(self) -> Iterator[str]:
        start = 0
        for end in _END_OF_LINE.finditer(self._buffer):
            yield self._buffer[start:end.start()]
            start = end.end()
        if start:  # a CR that ends the buffer may be the first half of a split CRLF
            self._skip_lf = start == len(self._buffer) and self._buffer[-1] == "\r"
        self._buffer = self._buffer[start:]

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._id = value
        return None  # ``retry`` and unknown fields: nothing this client uses

    def _dispatch(self) -> SSEMessage | None:
        event, data, self._event, self._data = self._event, self._data, "", []
        if not data:
            return None
        return SSEMessage(event or "message", "\n".join(data), self._id)


def base_url(text: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing ``/`` or ``/v1``: users set
    ``CHORUSLINE_URL`` to the API's URL, which ends in ``/v1``. ValueError if not a URL."""
    url = text.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise ValueError(f"{text!r} is not an http(s)://host:port URL")
    try:
        parts.port  # noqa: B018 (a bad port raises only when read)
    except ValueError:
        raise ValueError(f"{text!r} has a bad port") from None
    return url.removesuffix("/v1").rstrip("/")


def decode(message: SSEMessage) -> FeedMessage:
    """The message's name and its JSON object; FeedError if the data is not one."""
    try:
        payload = json.loads(message.data)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise FeedError(f"the feed sent a {message.event!r} message whose data is not a "
                        "JSON object")
    return message.event, payload


def refusal_message(response: httpx.Response) -> str:
    """The server's ``error.message`` (OpenAI-style error body), else the reason."""
    try:
        body = response.json()
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    return str(message) if message else response.reason_phrase or "no reason given"


def read_timeout(interval: float) -> float:
    """How long a silent feed counts as alive: a snapshot comes every ``interval``."""
    return max(15.0, 3 * interval + 10.0)


@asynccontextmanager
async def open_feed(url: str, key: str, interval: float = 1.0, *,
                    client: httpx.AsyncClient | None = None
                    ) -> AsyncIterator[AsyncIterator[FeedMessage]]:
    """Connect to the feed of the server at ``url`` (a base URL, see ``base_url``) and
    give its messages, ``(event_name, payload)``, in order: ``hello`` first. The iterator
    ends when the server ends the feed; leaving the block disconnects."""
    base = base_url(url)
    timeout = httpx.Timeout(CONNECT_TIMEOUT, read=read_timeout(interval))
    async with _client(client, timeout) as http:
        request = http.build_request(
            "GET", base + FEED_PATH, params={"interval": f"{interval:g}"},
            headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
            timeout=timeout)
        try:
            response = await http.send(request, stream=True)
        except httpx.ConnectTimeout:
            raise FeedLost(f"{base} did not answer within {CONNECT_TIMEOUT:g} s") from None
        except httpx.TimeoutException:
            raise FeedLost(f"{base} sent no response within {read_timeout(interval):g} s"
                           ) from None
        except httpx.TransportError as error:
            raise FeedLost(f"cannot reach {base}: {error or type(error).__name__}") from None
        try:
            await _check(response, base)
            silence = read_timeout(interval)
            async with aclosing(_messages(response, base, silence)) as messages:
                yield messages
        finally:
            await response.aclose()


@asynccontextmanager
async def _client(client: httpx.AsyncClient | None,
                  timeout: httpx.Timeout) -> AsyncIterator[httpx.AsyncClient]:
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient(timeout=timeout) as own:
        yield own


async def _check(response: httpx.Response, base: str) -> None:
    status = response.status_code
    if status == 200:
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if kind != "text/event-stream":
            raise FeedError(f"{base}{FEED_PATH} is not an event stream ({kind or 'no type'});"
                            " is this a chorusline server?")
        return
    with suppress(httpx.HTTPError):  # the status says enough
        await response.aread()
    if status in (401, 403):
        raise FeedRefused(status, refusal_message(response))
    if status >= 500:  # a restart or a drain (503): soon over
        raise FeedLost(f"{base} answered HTTP {status}: {refusal_message(response)}")
    if status == 404:
        raise FeedError(f"{base} has no console feed ({FEED_PATH} is a 404); is this a "
                        "chorusline server with the console?")
    raise FeedError(f"{base}{FEED_PATH} answered HTTP {status}: {refusal_message(response)}")


async def _messages(response: httpx.Response, base: str,
                    silence: float) -> AsyncGenerator[FeedMessage, None]:
    parser = SSEParser()
    try:
        async for chunk in response.aiter_bytes():
            for message in parser.feed(chunk):
                yield decode(message)
    except httpx.TimeoutException:
        raise FeedLost(f"{base} sent nothing for {silence:g} s") from None
    except httpx.TransportError as error:
        raise FeedLost(f"lost the connection to {base}: "
                       f"{error or type(error).__name__}") from None
