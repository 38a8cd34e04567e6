"""The Quart-trio application: OpenAI-compatible routes over a running ChatService.

Every failure a client can cause leaves as OpenAI's error body with the error's own
status (``ChoruslineError`` carries it), so the official SDKs raise their typed
exceptions. Only a real bug becomes a 500, and it is logged with its traceback.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from chorusline.chat import ChatService, Principal
from chorusline.protocols import (
    ChoruslineError,
    InvalidRequest,
    Overloaded,
    RateLimited,
    Unauthorized,
)
from chorusline.protocols import openai as wire
from chorusline.web import admin, conversations, observability
from chorusline.web.completions import build_request, complete

log = logging.getLogger("chorusline.web")


def json_response(data: dict[str, Any], status: int = 200) -> Response:
    return Response(wire.json_bytes(data), status=status, mimetype="application/json")


def error_response(error: ChoruslineError) -> Response:
    response = json_response(wire.error_body(error), error.http_status)
    if isinstance(error, RateLimited):
        response.headers.update(error.headers)
    if isinstance(error, RateLimited | Overloaded):
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    elif error.http_status == 503:  # a restart in progress: soon over, so retry soon
        response.headers["Retry-After"] = "1"
    return response


class _HttpError(ChoruslineError):
    """A framework-level refusal (unknown route, wrong method, body too large)."""

    error_type = "invalid_request_error"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = None


async def authenticate(chat: ChatService) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("You didn't provide an API key: use 'Authorization: Bearer <key>'")
    return await chat.authenticate(key.strip())


async def json_body() -> Any:
    data = await request.get_data(as_text=False)
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("We could not parse the JSON body of your request.") from None


def create_app(chat: ChatService, model_name: str) -> QuartTrio:
    app = QuartTrio("chorusline")
    created = int(time.time())

    @app.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        try:
            await chat.db(chat.store.ping)
        except Exception as exc:  # any store failure means "not ready", never a 500
            log.warning("readiness check failed: %r", exc)
            return json_response({"status": "unavailable", "reason": str(exc)}, 503)
        return json_response({"status": "ready"})

    @app.get("/v1/models")
    async def models() -> Response:
        await authenticate(chat)
        return json_response(wire.model_list(model_name, created))

    @app.post("/v1/chat/completions")
    async def chat_completions() -> Response:
        principal = await authenticate(chat)
        parsed = wire.parse_chat_request(await json_body())
        key = request.headers.get("Idempotency-Key") or request.headers.get("X-Request-Id")
        turn = build_request(parsed, model_name, key or None)
        return await complete(chat, principal, turn, parsed, model_name)

    conversations.register(app, chat, model_name)
    observability.register(app, chat, model_name)
    admin.register(app, chat)

    @app.errorhandler(ChoruslineError)
    async def on_chorusline_error(error: ChoruslineError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def on_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        return error_response(_HttpError(status, error.description or error.name))

    @app.errorhandler(Exception)
    async def on_bug(error: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path,
                      exc_info=error)
        bug = _HttpError(500, "The server had an error while processing your request.")
        bug.error_type = "server_error"
        return error_response(bug)

    return app
