"""Building blocks of the hand-written OpenAPI document (see ``openapi_spec``): schema
references, OpenAI-format error responses, rate-limit headers and scalar types, shared by
the chat-completion schemas, the conversation paths and the admin paths."""

from __future__ import annotations

from typing import Any

from chorusline.protocols import openai as wire

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _header(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "schema": schema or {"type": "string"}}


RATE_HEADERS: dict[str, Schema] = {
    "x-ratelimit-limit-requests": _header("Requests allowed per minute on the key's tier.",
                                          {"type": "string", "pattern": "^[0-9]+$"}),
    "x-ratelimit-limit-tokens": _header("Tokens allowed per minute on the key's tier.",
                                        {"type": "string", "pattern": "^[0-9]+$"}),
    "x-ratelimit-remaining-requests": _header("Requests left in the current window.",
                                              {"type": "string", "pattern": "^[0-9]+$"}),
    "x-ratelimit-remaining-tokens": _header("Tokens left in the current window.",
                                            {"type": "string", "pattern": "^[0-9]+$"}),
    "x-ratelimit-reset-requests": _header("Time until the request budget is full again, "
                                          "OpenAI style (`20ms`, `1.5s`, `6m0s`)."),
    "x-ratelimit-reset-tokens": _header("Time until the token budget is full again."),
}
REQUEST_ID_HEADER: Schema = _header(
    "The turn's request id: the Idempotency-Key (or X-Request-Id) sent, else generated.")
RETRY_AFTER: Schema = _header("Whole seconds to wait before retrying (at least 1).",
                              {"type": "string", "pattern": "^[0-9]+$"})


def _error(description: str, headers: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {"description": description,
                        "content": {JSON: {"schema": _ref("Error")}}}
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int) -> dict[str, Schema]:
    table: dict[int, Schema] = {
        400: _error("Invalid request (`invalid_request_error`; codes `unknown_parameter`, "
                    "`context_length_exceeded` (prompt plus reply budget over the context "
                    "window), `invalid_grammar`, `invalid_sampling_params`, "
                    "`invalid_token_id`, or null)."),
        401: _error("Missing, unknown or revoked API key (`invalid_api_key`)."),
        403: _error("A page-session (cookie) request that changes something without the "
                    "session's `X-CSRF-Token` header (`insufficient_permissions`)."),
        404: _error("Unknown model (`model_not_found`) or a resource that does not exist or "
                    "is not the caller's (`not_found`)."),
        405: _error("The method is not allowed on this path."),
        409: _error("The resource is not in a state the call applies to: a reply whose "
                    "generation already ended cannot be stopped (`conflict`)."),
        413: _error("The body is over the server's size limit (code null)."),
        415: _error("The body is not `application/json` (how a cross-site form post is "
                    "refused)."),
        429: _error("Rate limited (`rate_limit_error` / `rate_limit_exceeded`).",
                    {"Retry-After": RETRY_AFTER,
                     "retry-after-ms": _header("Milliseconds to wait (OpenAI SDK hint).",
                                               {"type": "string", "pattern": "^[0-9]+$"}),
                     **RATE_HEADERS}),
        503: _error("Overloaded: the engine queue is full (`server_error` / `overloaded`); "
                    "an actor restarting; or the server draining for a shutdown "
                    "(`server_shutting_down`).",
                    {"Retry-After": RETRY_AFTER}),
    }
    return {str(status): table[status] for status in statuses}


def _json(description: str, schema: Schema, headers: dict[str, Schema] | None = None
          ) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _obj(properties: dict[str, Schema], required: list[str] | None = None,
         *, closed: bool = False) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


INT = {"type": "integer"}
#: Who may call an operation: a bearer key (or the page's session), or anyone.
BEARER: list[Schema] = [{"bearerAuth": []}]
OPEN: list[Schema] = []
STR = {"type": "string"}
BOOL = {"type": "boolean"}
NULL_STR = {"type": ["string", "null"]}
#: OpenAI's ``user``: the caller's end-user id, kept on the turn's usage row.
END_USER = {**NULL_STR, "maxLength": 256, "description": "Your end user's id: kept on the "
            "turn's usage row."}
NULL_INT = {"type": ["integer", "null"]}
FINISH = {"type": "string", "enum": sorted(wire.FINISH_REASONS)}
