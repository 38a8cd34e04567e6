"""Error types that cross a boundary: actor to actor, runtime to service, service to wire.

Every error a caller can be expected to handle lives here, so that the web layer can map
any of them to an OpenAI-style error body without importing the layer that raised it.
Each carries the HTTP status and OpenAI ``type``/``code`` it should become on the wire.
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
    """The prompt (plus the reply budget) does not fit the model's context window."""

    http_status = 413
    code = "context_length_exceeded"


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
