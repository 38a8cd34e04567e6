"""Error types that cross a boundary: actor to actor, runtime to service, service to wire.

Every error a caller can be expected to handle lives here, so that the web layer can map
any of them to an OpenAI-style error body without importing the layer that raised it.
Each carries the HTTP status and OpenAI ``type``/``code`` it should become on the wire::

    ChoruslineError                       500 server_error (never raised bare)
    ├── InvalidRequest                    400 the request is wrong; do not retry it as is
    │   ├── ContextTooLong                413 context_length_exceeded
    │   ├── InvalidTokenId                400 invalid_token_id
    │   └── InvalidSamplingParams         400 invalid_sampling_params
    ├── ModelNotFound                     404 model_not_found
    ├── NotFound                          404 (another user's data is NotFound too)
    ├── Unauthorized                      401
    ├── PermissionDenied                  403
    ├── RateLimited                       429 + Retry-After, x-ratelimit-*
    ├── Overloaded                        503 + Retry-After (admission control)
    ├── ServiceUnavailable                503 an actor died; retrying with the same key is safe
    │   └── ChildCrashed                  503 a linked, unsupervised child actor died
    ├── StoreUnavailable                  503 the database cannot be reached
    ├── ShuttingDown                      503 the server drained past its deadline
    ├── EngineRestarted                   503 the GPU worker died mid-request (n > 1)
    ├── SlowConsumer                      503 the reader fell too far behind; aborted
    └── ReplyInterrupted                  503 the actor relaying a reply stopped
        └── ConversationInterrupted       503 the conversation actor stopped mid-reply

Retry on any 503 (after ``Retry-After``), with the same idempotency key for stored turns.
"""

from __future__ import annotations


class ChoruslineError(Exception):
    """Base of every error chorusline raises on purpose (never an internal bug)."""

    http_status: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(ChoruslineError):
    """The request itself is wrong; retrying it unchanged will fail again."""

    http_status = 400
    error_type = "invalid_request_error"


class ContextTooLong(InvalidRequest):
    """The prompt (plus the reply budget) does not fit the model's context window.

    A 400, as OpenAI answers it (the SDKs then raise ``BadRequestError``)."""

    code = "context_length_exceeded"


class InvalidGrammar(InvalidRequest):
    """A ``response_format`` or tool schema that cannot be compiled into a grammar, or
    that uses a feature the grammar engine does not support (the message names it)."""

    code = "invalid_grammar"


class UnknownParameter(InvalidRequest):
    """A request field this endpoint does not take (OpenAI's wording and ``param``)."""

    code = "unknown_parameter"


class InvalidTokenId(InvalidRequest):
    """A token id outside the model's vocabulary (prompt, stop ids or logit bias)."""

    code = "invalid_token_id"


class InvalidSamplingParams(InvalidRequest):
    """A sampling parameter outside its valid range."""

    code = "invalid_sampling_params"


class ModelNotFound(ChoruslineError):
    """The requested model is not served here."""

    http_status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class NotFound(ChoruslineError):
    """A resource that does not exist or that the caller may not see (never 403)."""

    http_status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class Conflict(ChoruslineError):
    """The resource exists but is not in a state the operation applies to (aborting a
    request whose generation already ended)."""

    http_status = 409
    error_type = "invalid_request_error"
    code = "conflict"


class Unauthorized(ChoruslineError):
    """Missing, unknown or revoked credentials."""

    http_status = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(ChoruslineError):
    """Valid credentials without the right to this operation (an admin route called
    with a non-admin key). OpenAI answers such 403s with ``invalid_request_error``; the
    code says which right is missing."""

    http_status = 403
    error_type = "invalid_request_error"
    code = "insufficient_permissions"


class RateLimited(ChoruslineError):
    """A rate-limit bucket refused the request; ``retry_after`` is in seconds."""

    http_status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after
        self.headers = headers or {}


class Overloaded(ChoruslineError):
    """Admission control refused the request; ``retry_after`` is in seconds."""

    http_status = 503
    error_type = "server_error"
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after


class ServiceUnavailable(ChoruslineError):
    """An actor serving the request died mid-request (a crash its supervisor is
    restarting). Nothing acknowledged is lost and a retry, with the same idempotency
    key, is safe: a 503, not a 500, because it is not a bug in the request's handling."""

    http_status = 503
    error_type = "server_error"
    code = "service_unavailable"


class ChildCrashed(ServiceUnavailable):
    """A linked child actor died abnormally and its parent does not supervise it: the
    parent crashes with this as its reason (``reason`` is the child's ``ExitReason``)."""

    code = "child_crashed"

    def __init__(self, path: str, reason: object) -> None:
        super().__init__(f"child {path} died: {reason}")
        self.path = path
        self.reason = reason


class StoreUnavailable(ChoruslineError):
    """The database cannot be reached; the request may succeed later (503)."""

    http_status = 503
    error_type = "server_error"
    code = "store_unavailable"


class ShuttingDown(ChoruslineError):
    """The server is draining and the request ran past the drain deadline. Retrying is
    safe (with the same ``Idempotency-Key`` for a stored turn): another process, or this
    one restarted, takes it."""

    http_status = 503
    error_type = "server_error"
    code = "server_shutting_down"


class EngineRestarted(ChoruslineError):
    """The GPU worker died mid-request and the request could not be continued."""

    http_status = 503
    code = "engine_restarted"


class SlowConsumer(ChoruslineError):
    """The reader let too much output pile up; the request was aborted."""

    http_status = 503
    code = "slow_consumer"


class ReplyInterrupted(ChoruslineError):
    """The actor relaying a reply stopped before the reply ended."""

    http_status = 503
    code = "interrupted"


class ConversationInterrupted(ReplyInterrupted):
    """The conversation actor stopped mid-reply; the draft is kept as incomplete."""
