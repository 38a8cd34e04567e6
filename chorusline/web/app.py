"""The Quart-trio application: OpenAI-compatible routes over a running ChatService.

Every failure a client can cause leaves as OpenAI's error body with the error's own
status (``ChoruslineError`` carries it), so the official SDKs raise their typed
exceptions. Only a real bug becomes a 500, and it is logged with its traceback.
"""

from __future__ import annotations

import logging

from quart import Response, request
from quart.ctx import RequestContext
from quart.typing import ResponseReturnValue
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from chorusline.chat import ChatService
from chorusline.protocols import ChoruslineError, openai as wire
from chorusline.web import (
    admin,
    api_keys,
    chat_page,
    console,
    conversations,
    embeddings,
    feedback,
    me,
    models,
    moderations,
    observability,
    pages,
    sessions,
    shares,
    stop,
    text_completions,
)
from chorusline.web.completions import build_request, complete, results_as_messages
from chorusline.web.http import (
    DRAIN_EXTENSION,
    MAX_BODY_BYTES,
    Drain,
    HttpError,
    authenticate,
    body_too_large,
    error_response,
    json_body,
    json_response,
    shutting_down,
)

log = logging.getLogger("chorusline.web")


class _DrainingApp(QuartTrio):
    """Answers a request still being handled at the drain deadline with a 503 (and
    ``Retry-After``) instead of letting Hypercorn's graceful timeout cut it off with no
    status at all. Only the handler is guarded: a streaming body, sent after the handler
    returned, ends itself with an SSE error event (see ``completions``)."""

    drain: Drain

    async def dispatch_request(
        self, request_context: RequestContext | None = None
    ) -> ResponseReturnValue:
        with self.drain.guard():
            return await super().dispatch_request(request_context)
        # Reached only when the guard swallowed its own cancellation: time is up.
        raise shutting_down()


def create_app(chat: ChatService, *, public_url: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, drain: Drain | None = None) -> QuartTrio:
    """The app; share links start with ``public_url`` (default: the bound address),
    ``max_body_bytes`` bounds every request body (413 beyond it) and ``drain`` is the
    graceful-shutdown deadline the server expires (``serve`` passes one; without it the
    app never drains)."""
    app = _DrainingApp("chorusline", static_folder=None)  # pages serve their own files
    app.drain = drain or Drain()
    app.extensions[DRAIN_EXTENSION] = app.drain
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    @app.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        try:
            await chat.ping()
        except Exception as exc:  # any store failure means "not ready", never a 500
            log.warning("readiness check failed: %r", exc)
            return json_response({"status": "unavailable", "reason": str(exc)}, 503)
        return json_response({"status": "ready"})

    @app.post("/v1/chat/completions")
    async def chat_completions() -> Response:
        principal = await authenticate(chat)
        parsed = wire.parse_chat_request(await json_body())
        key = request.headers.get("Idempotency-Key") or request.headers.get("X-Request-Id")
        turn = build_request(parsed, key or None)
        with results_as_messages(parsed, turn):
            return await complete(chat, principal, turn, parsed)

    conversations.register(app, chat)
    shares.register(app, chat, public_url=public_url)
    observability.register(app, chat)
    admin.register(app, chat)
    pages.register_common(app)
    console.register(app, chat)
    chat_page.register(app)
    embeddings.register(app, chat)
    models.register(app, chat)
    text_completions.register(app, chat)
    moderations.register(app, chat)
    stop.register(app, chat)
    me.register(app, chat)
    feedback.register(app, chat)
    sessions.register(app, chat)
    api_keys.register(app, chat)

    @app.errorhandler(ChoruslineError)
    async def on_chorusline_error(error: ChoruslineError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def on_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 413:  # Quart's size limit, from the config an embedder may change
            response = error_response(body_too_large(app.config["MAX_CONTENT_LENGTH"]))
        else:
            response = error_response(HttpError(status, error.description or error.name))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return response

    @app.errorhandler(Exception)
    async def on_bug(error: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path,
                      exc_info=error)
        bug = HttpError(500, "The server had an error while processing your request.")
        bug.error_type = "server_error"
        return error_response(bug)

    return app
