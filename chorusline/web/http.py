"""What every route shares: OpenAI's error body, bounded JSON in and JSON out, bearer
authentication, and the drain deadline of a graceful shutdown.

A module of its own so that the route modules (completions, conversations, admin) import
it and ``app`` only wires them: no route module needs the app, so there is no import
circle to break with late imports.

``json_body`` is the one gate every JSON body passes, so the limits that keep hostile
input from becoming a 500 live there and hold for every route alike: the size (413), the
nesting depth (400: the stdlib parser recurses, so a few thousand ``[`` would end in a
``RecursionError``), UTF-8 (400) and unpaired UTF-16 surrogates (400: ``"\\ud800"`` is
valid JSON but no valid text; SQLite, PostgreSQL and the tokenizer all fail on it).
"""

from __future__ import annotations

import hmac
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio
from quart import Response, current_app, g, has_app_context, request

from chorusline.chat import ChatService, Principal, TurnHandle
from chorusline.protocols import (
    ChoruslineError,
    InvalidRequest,
    Overloaded,
    PermissionDenied,
    RateLimited,
    ShuttingDown,
    Unauthorized,
    openai as wire,
)

#: The default largest request body, in bytes (``create_app``/``serve`` take another).
#: Quart refuses a larger one before reading it (a ``Content-Length`` over the limit) or
#: as soon as it grows past it (chunked), so an oversized body is never parsed. Why 1 MiB:
#: ``json.loads`` holds the GIL, so parsing blocks every other request (about 25 ms for a
#: hostile 1 MiB body of tiny values here, 100 ms at 4 MiB), while the context window
#: (2,048 tokens of at most 81 bytes) can use less than 170 kB of text.
MAX_BODY_BYTES = 1024 * 1024
#: The deepest JSON nesting accepted; OpenAI bodies need at most five levels.
MAX_JSON_DEPTH = 64
DRAIN_EXTENSION = "chorusline.drain"

# A JSON string, its closing quote optional so that an unterminated one ends the scan
# instead of making the search restart at every later quote (quadratic time).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
# Structural brackets as "(" and ")", everything else deleted (after strings are gone).
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# An escape that may decode to a surrogate (valid pairs too): only then is the parsed
# body searched, so ordinary bodies cost one regex scan.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_response(data: dict[str, Any], status: int = 200) -> Response:
    return Response(wire.json_bytes(data), status=status, mimetype="application/json")


#: Set on a turn's response when another model answered than the one asked for.
FALLBACK_HEADER = "x-chorusline-fallback"


def turn_headers(response: Response, handle: TurnHandle) -> None:
    """What every turn's response carries: its rate-limit headers, its request id, and
    (after a fallback) ``x-chorusline-fallback: asked -> answered``."""
    response.headers.update(handle.rate_headers)
    response.headers["X-Request-Id"] = handle.request_id
    if handle.fallback_from is not None:
        response.headers[FALLBACK_HEADER] = f"{handle.fallback_from} -> {handle.model}"


def error_response(error: ChoruslineError) -> Response:
    response = json_response(wire.error_body(error), error.http_status)
    if isinstance(error, RateLimited):
        response.headers.update(error.headers)
    if isinstance(error, RateLimited | Overloaded):
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    elif error.http_status == 503:  # a restart or a drain: soon over, so retry soon
        response.headers["Retry-After"] = "1"
    return response


class HttpError(ChoruslineError):
    """A framework-level refusal (unknown route, wrong method, body too large)."""

    error_type = "invalid_request_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = None


def body_too_large(limit: object) -> HttpError:
    return HttpError(413, f"The request body is larger than this server's limit of "
                          f"{limit} bytes.")


#: The page session's cookie (``web.sessions``) and the header that must echo the
#: session's CSRF secret on every state-changing request the cookie authenticates.
SESSION_COOKIE = "chorusline_session"
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change nothing, which need no CSRF header.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def authenticate(chat: ChatService) -> Principal:
    """The caller: an API key in ``Authorization: Bearer``, else a page session cookie.

    A cookie rides along with any request a browser makes, a cross-site one included, so
    a state-changing request it authenticates must also carry the session's CSRF secret
    in ``X-CSRF-Token``, which no other site can read or set. A bearer key is never
    ambient: it needs no such check."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return await chat.authenticate(key.strip())
    token = request.cookies.get(SESSION_COOKIE)
    if not header and token:
        session = await chat.accounts.session(token)
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
                request.headers.get(CSRF_HEADER, ""), session.csrf):
            raise PermissionDenied(f"this request needs the session's {CSRF_HEADER} header "
                                   "(GET /v1/auth/session gives it)")
        if session.renewed:
            g.renewed_session = session  # web.sessions sets the new cookie on the response
        return session.principal
    raise Unauthorized("You didn't provide an API key: use 'Authorization: Bearer <key>'")


async def json_body() -> Any:
    """The request's JSON body, refused (in OpenAI's format) if it is too large, nested
    too deeply, not UTF-8, not JSON, or holds a string no database can store."""
    # Over the size limit this raises a 413 (before reading, if Content-Length says so).
    data = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if isinstance(limit, int) and len(data) > limit:
        raise body_too_large(limit)
    if nested_too_deeply(data, MAX_JSON_DEPTH):
        raise InvalidRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels "
                             f"deep.")
    try:
        text = data.decode("utf-8-sig")  # strict: a surrogate encoded as UTF-8 fails too
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not valid UTF-8.") from None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidRequest("We could not parse the JSON body of your request.") from None
    if _SURROGATE_ESCAPE.search(text) is not None:
        path = surrogate_path(body)
        if path is not None:
            raise InvalidRequest(
                f"{path or 'The body'} contains an unpaired UTF-16 surrogate escape "
                f"(\\ud800-\\udfff without its pair), which is not text.",
                param=path or None)
    return body


def nested_too_deeply(data: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than ``limit`` deep, in linear
    time and without parsing: with strings removed, each round deletes every innermost
    ``()`` pair, so the rounds needed are the depth. Brackets left unmatched (a body that
    is not JSON anyway) count as levels, since the parser recurses into them first."""
    brackets = _STRING.sub(b"", data).translate(_BRACKETS, _NOT_BRACKETS)
    for removed in range(limit):
        if b"()" not in brackets:
            return removed + brackets.count(b"(") > limit
        brackets = brackets.replace(b"()", b"")
    return b"(" in brackets


def surrogate_path(value: Any) -> str | None:
    """Where in a parsed body a string holds an unpaired surrogate (``messages[0].content``;
    the enclosing object's path for a key; "" for the top level), or None. A valid pair is
    one astral character once parsed, so any surrogate left is unpaired."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item) is not None:
                return path
        elif isinstance(item, dict):
            for key in item:
                if _SURROGATE.search(key) is not None:
                    return path
            stack.extend((f"{path}.{key}" if path else key, child)
                         for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


class Drain:
    """The drain deadline of a graceful shutdown, shared by the server (which calls
    ``expire`` when a request's time is up) and the code answering requests.

    Past Hypercorn's graceful timeout whatever still runs is cancelled, and a cancelled
    response ends with no status line or no SSE error event: the client cannot tell a
    shutdown from a crash. So the server expires the drain a little earlier, and each
    wait that may outlast it is wrapped in ``guard``: expiry cancels the guarded wait
    (at once if already expired) and the caller answers properly, a 503 with
    ``Retry-After`` or an SSE error event, while there is still time to send it.
    """

    def __init__(self) -> None:
        self.expired = False
        self._scopes: set[trio.CancelScope] = set()

    def expire(self) -> None:
        self.expired = True
        for scope in list(self._scopes):
            scope.cancel()

    @contextmanager
    def guard(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that expiry cancels; check its ``cancel_called`` after it."""
        with trio.CancelScope() as scope:
            if self.expired:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)


def current_drain() -> Drain:
    """The app's Drain; outside an app (or in an app built without one), one that never
    expires, so callers need not ask whether a server is draining at all."""
    drain = current_app.extensions.get(DRAIN_EXTENSION) if has_app_context() else None
    return drain if isinstance(drain, Drain) else Drain()


def shutting_down() -> ShuttingDown:
    return ShuttingDown("The server is shutting down and could not finish this request "
                        "in time; retry it.")
