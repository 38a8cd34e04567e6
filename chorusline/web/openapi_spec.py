"""The OpenAPI 3.1 document served at ``/openapi.json``.

Written by hand as data rather than generated from the routes: the routes parse bodies
by hand (so that every malformed field is a 400 in OpenAI's format), so there is nothing
to introspect, and a hand-written contract is what schemathesis checks the server
against. The constraints mirror the parser (``chorusline.protocols.openai``) and
``SamplingParams``' ranges: a value the schema allows is one the server must accept or
refuse with a documented 4xx, never a 5xx.
"""

from __future__ import annotations

from typing import Any

from chorusline.web.admin_spec import admin_paths

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
        400: _error("Invalid request (`invalid_request_error`; codes `invalid_sampling_params`, "
                    "`invalid_token_id`, or null)."),
        401: _error("Missing, unknown or revoked API key (`invalid_api_key`)."),
        404: _error("Unknown model (`model_not_found`) or a resource that does not exist or "
                    "is not the caller's (`not_found`)."),
        405: _error("The method is not allowed on this path."),
        413: _error("Prompt plus reply budget exceeds the context window "
                    "(`context_length_exceeded`)."),
        429: _error("Rate limited (`rate_limit_error` / `rate_limit_exceeded`).",
                    {"Retry-After": RETRY_AFTER,
                     "retry-after-ms": _header("Milliseconds to wait (OpenAI SDK hint).",
                                               {"type": "string", "pattern": "^[0-9]+$"}),
                     **RATE_HEADERS}),
        503: _error("Overloaded: the engine queue is full (`server_error` / `overloaded`).",
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
STR = {"type": "string"}
BOOL = {"type": "boolean"}
NULL_STR = {"type": ["string", "null"]}
NULL_INT = {"type": ["integer", "null"]}
FINISH = {"type": "string", "enum": ["stop", "length", "content_filter"]}


def sampling_properties() -> dict[str, Schema]:
    """The sampling fields shared by chat completions and conversation turns."""
    return {
        "max_tokens": {**NULL_INT, "minimum": 1,
                       "description": "Reply budget per choice; null: until the context "
                                      "window is full."},
        "max_completion_tokens": {**NULL_INT, "minimum": 1,
                                  "description": "Newer name of max_tokens; wins if both."},
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2,
                        "description": "0 is greedy. Default 1."},
        "top_p": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
        "top_k": {**NULL_INT, "minimum": 0, "description": "0 disables top-k."},
        "min_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "seed": {**NULL_INT, "description": "Makes sampling reproducible per choice."},
        "stop": {"anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 16},
            {"type": "null"},
        ], "description": "Up to 16 non-empty stop strings (not included in the output)."},
        "n": {**NULL_INT, "minimum": 1, "maximum": 16},
        "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
        "logit_bias": {
            "type": ["object", "null"],
            "propertyNames": {"pattern": "^[0-9]{1,9}$"},
            "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
            "description": "Token id (a decimal string) to an additive bias; an id outside "
                           "the vocabulary is a 400 `invalid_token_id`.",
        },
        "logprobs": {"type": ["boolean", "null"],
                     "description": "Return each generated token's log probability in "
                                    "the choice's `logprobs` (else it is null)."},
        "top_logprobs": {**NULL_INT, "minimum": 0, "maximum": 20,
                         "description": "Most likely alternatives per token; non-zero "
                                        "requires `logprobs: true` (else 400)."},
        "ignore_eos": {"type": ["boolean", "null"],
                       "description": "chorusline extension: keep generating past "
                                      "end-of-sequence (benchmarks)."},
        "stream": {"type": ["boolean", "null"]},
        "stream_options": _nullable(_obj({"include_usage": {"type": ["boolean", "null"]}})),
    }


def logprob_schemas() -> dict[str, Schema]:
    """OpenAI's ``logprobs`` object of a choice (``chorusline.protocols.openai``)."""
    top: dict[str, Schema] = {
        "token": {**STR, "description": "The token's text (U+FFFD for part of a "
                                        "character; empty for a special token)."},
        "logprob": {"type": "number"},
        "bytes": {"type": ["array", "null"],
                  "items": {"type": "integer", "minimum": 0, "maximum": 255}},
    }
    return {
        "TopLogprob": _obj(top, ["token", "logprob", "bytes"], closed=True),
        "TokenLogprob": _obj(
            {**top, "top_logprobs": {"type": "array", "items": _ref("TopLogprob")}},
            ["token", "logprob", "bytes", "top_logprobs"], closed=True),
        "ChoiceLogprobs": _obj({
            "content": {"type": ["array", "null"], "items": _ref("TokenLogprob")},
            "refusal": {"type": "null"},
        }, ["content"], closed=True),
    }


def _message_content() -> Schema:
    return {"anyOf": [
        STR,
        {"type": "array", "items": _obj({"type": {"const": "text"}, "text": STR},
                                        ["type", "text"])},
        {"type": "null"},
    ]}


def components(model_name: str) -> Schema:
    usage = _obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT},
                 ["prompt_tokens", "completion_tokens", "total_tokens"], closed=True)
    conversation = _obj({
        "id": STR, "object": {"const": "conversation"}, "title": STR,
        "system_prompt": NULL_STR, "model": NULL_STR, "archived": BOOL, "shared": BOOL,
        "parent_conversation_id": NULL_STR, "branch_point_message_id": NULL_STR,
        "created_at": INT, "updated_at": INT,
    }, ["id", "object", "title", "archived", "created_at", "updated_at"])
    message = _obj({
        "id": STR, "object": {"const": "conversation.message"}, "conversation_id": STR,
        "seq": INT, "parent_message_id": NULL_STR, "role": STR, "content": STR,
        "status": STR, "finish_reason": NULL_STR, "model": NULL_STR,
        "prompt_tokens": NULL_INT, "completion_tokens": NULL_INT, "created_at": INT,
    }, ["id", "object", "conversation_id", "role", "content", "status"])
    return {
        "securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer",
            "description": "An API key (`chorusline keys create`) as `Authorization: Bearer "
                           "<key>`."}},
        "schemas": {
            "Error": _obj({"error": _obj({
                "message": STR, "type": STR, "param": NULL_STR, "code": NULL_STR,
            }, ["message", "type", "param", "code"], closed=True)}, ["error"], closed=True),
            "ChatMessage": _obj({
                "role": {"type": "string",
                         "enum": ["system", "developer", "user", "assistant"],
                         "description": "`developer` is treated as `system`."},
                "content": _message_content(),
            }, ["role"]),
            "ChatCompletionRequest": _obj({
                "model": {"type": "string", "examples": [model_name],
                          "description": "Must be the served model (else 404 "
                                         "`model_not_found`)."},
                "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
                **sampling_properties(),
                "user": NULL_STR,
                "conversation_id": {**NULL_STR, "description": "Bind the turn to a stored "
                                    "conversation: its history is loaded and the last "
                                    "(user) message and the reply are persisted."},
            }, ["model", "messages"]),
            "ChatCompletion": _obj({
                "id": STR, "object": {"const": "chat.completion"}, "created": INT,
                "model": STR, "system_fingerprint": {"type": "null"},
                "choices": {"type": "array", "items": _obj({
                    "index": INT,
                    "message": _obj({"role": {"const": "assistant"}, "content": STR,
                                     "refusal": {"type": "null"}},
                                    ["role", "content"], closed=True),
                    "logprobs": _nullable(_ref("ChoiceLogprobs")),
                    "finish_reason": FINISH,
                }, ["index", "message", "finish_reason"], closed=True)},
                "usage": usage,
            }, ["id", "object", "created", "model", "choices", "usage"], closed=True),
            "ChatCompletionChunk": _obj({
                "id": STR, "object": {"const": "chat.completion.chunk"}, "created": INT,
                "model": STR, "system_fingerprint": {"type": "null"},
                "choices": {"type": "array", "items": _obj({
                    "index": INT,
                    "delta": _obj({"role": {"const": "assistant"}, "content": STR},
                                  closed=True),
                    "logprobs": _nullable(_ref("ChoiceLogprobs")),
                    "finish_reason": _nullable(FINISH),
                }, ["index", "delta", "finish_reason"])},
                "usage": _nullable(usage),
            }, ["id", "object", "created", "model", "choices"]),
            **logprob_schemas(),
            "ModelList": _obj({
                "object": {"const": "list"},
                "data": {"type": "array", "items": _obj({
                    "id": STR, "object": {"const": "model"}, "created": INT, "owned_by": STR,
                }, ["id", "object", "created", "owned_by"], closed=True)},
            }, ["object", "data"], closed=True),
            "Conversation": conversation,
            "ConversationWithMessages": {"allOf": [conversation, _obj(
                {"messages": {"type": "array", "items": message}}, ["messages"])]},
            "Message": message,
            "StoredReply": {"allOf": [message, _obj({
                "user_message_id": NULL_STR, "replayed": BOOL})]},
            "ConversationList": _obj({
                "object": {"const": "list"},
                "data": {"type": "array", "items": conversation},
                "next_cursor": NULL_STR,
            }, ["object", "data", "next_cursor"]),
            "MessageList": _obj({
                "object": {"const": "list"}, "data": {"type": "array", "items": message},
                "next_cursor": NULL_STR,
            }, ["object", "data"]),
            "SearchResults": _obj({
                "object": {"const": "list"},
                "data": {"type": "array", "items": _obj({
                    "object": {"const": "conversation.search_result"},
                    "conversation": conversation, "title_matched": BOOL,
                    "message_ids": {"type": "array", "items": STR}, "snippet": NULL_STR,
                }, ["object", "conversation"])},
                "next_cursor": NULL_STR,
            }, ["object", "data"]),
            "Share": _obj({"token": STR, "url": STR, "conversation_id": STR,
                           "object": {"const": "conversation.share"}},
                          ["token", "url", "conversation_id", "object"]),
            "ShareRevoked": _obj({"conversation_id": STR,
                                  "object": {"const": "conversation.share"},
                                  "shared": {"const": False}},
                                 ["conversation_id", "object", "shared"]),
            "Deleted": _obj({"id": STR, "object": {"const": "conversation.deleted"},
                             "deleted": {"const": True}}, ["id", "object", "deleted"]),
            "SharedConversation": _obj({
                "object": {"const": "shared_conversation"}, "token": STR, "title": STR,
                "created_at": INT,
                "messages": {"type": "array", "items": _obj(
                    {"role": STR, "content": STR, "created_at": INT},
                    ["role", "content"])},
            }, ["object", "token", "messages"]),
            "Export": _obj({"format": STR, "conversation": {"type": "object"},
                            "active_leaf_message_id": NULL_STR,
                            "messages": {"type": "array", "items": {"type": "object"}}},
                           ["conversation", "messages"]),
        },
    }


BEARER: list[Schema] = [{"bearerAuth": []}]
OPEN: list[Schema] = []
CID = {"name": "conversation_id", "in": "path", "required": True, "schema": STR,
       "description": "A conversation id; someone else's is a 404, like a missing one."}
IDEMPOTENCY = [
    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": STR,
     "description": "Retrying with the same key never duplicates a turn."},
    {"name": "X-Request-Id", "in": "header", "required": False, "schema": STR,
     "description": "Used as the idempotency key when Idempotency-Key is absent."},
]


def _limit_param() -> Schema:
    return {"name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}


def _conversation_paths() -> dict[str, Schema]:
    def op(summary: str, ok: Schema, *errors: int, body: Schema | None = None,
           params: list[Schema] | None = None, status: str = "200",
           security: list[Schema] = BEARER) -> Schema:
        operation: Schema = {"summary": summary, "security": security,
                             "tags": ["conversations"],
                             "responses": {status: ok, **_errors(*errors)}}
        if params:
            operation["parameters"] = params
        if body is not None:
            operation["requestBody"] = {"required": True,
                                        "content": {JSON: {"schema": body}}}
        return operation

    title_prompt = _obj({"title": NULL_STR, "system_prompt": NULL_STR}, closed=True)
    turn = _obj({
        "content": {**NULL_STR, "description": "The user's message (required unless "
                                               "regenerating)."},
        "edit_message_id": {**NULL_STR, "description": "Replace this user message (a new "
                                                       "branch)."},
        "regenerate_message_id": {**NULL_STR, "description": "Regenerate this assistant "
                                                             "message."},
        **sampling_properties(),
        "user": NULL_STR,
    })
    tree = {"name": "tree", "in": "query", "required": False,
            "schema": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]},
            "description": "true: every message of every branch; default: the active branch."}
    return {
        "/v1/conversations": {
            "post": op("Create a conversation", _json("Created", _ref("Conversation")),
                       400, 401, 429, body=title_prompt, status="201"),
            "get": op("List the caller's conversations, newest first",
                      _json("A page", _ref("ConversationList")), 400, 401,
                      params=[_limit_param(),
                              {"name": "cursor", "in": "query", "required": False,
                               "schema": STR, "description": "next_cursor of the last page."},
                              {"name": "archived", "in": "query", "required": False,
                               "schema": {"type": "string",
                                          "enum": ["true", "false", "all"]}}]),
        },
        "/v1/conversations/search": {
            "get": op("Search titles and message text",
                      _json("Matches", _ref("SearchResults")), 400, 401,
                      params=[{"name": "q", "in": "query", "required": True,
                               "schema": {"type": "string", "minLength": 1}},
                              _limit_param()]),
        },
        "/v1/conversations/{conversation_id}": {
            "parameters": [CID],
            "get": op("A conversation and its messages",
                      _json("The conversation", _ref("ConversationWithMessages")),
                      401, 404, params=[tree]),
            "patch": op("Rename, archive or change the system prompt",
                        _json("The updated conversation", _ref("Conversation")),
                        400, 401, 404,
                        body=_obj({"title": STR, "system_prompt": NULL_STR,
                                   "archived": BOOL}, closed=True)),
            "delete": op("Delete (soft) a conversation", _json("Deleted", _ref("Deleted")),
                         401, 404),
        },
        "/v1/conversations/{conversation_id}/messages": {
            "parameters": [CID],
            "get": op("The active branch's messages (or all, with tree=true)",
                      _json("Messages", _ref("MessageList")), 400, 401, 404, params=[tree]),
            "post": {
                **op("Send a turn; streams like chat completions when stream is true",
                     {"description": "The stored assistant message, or an SSE stream of "
                                     "chat.completion.chunk events ending in `data: [DONE]`.",
                      "headers": {"X-Request-Id": REQUEST_ID_HEADER, **RATE_HEADERS},
                      "content": {JSON: {"schema": _ref("StoredReply")},
                                  "text/event-stream": {"schema": STR}}},
                     400, 401, 404, 413, 429, 503, body=turn, params=IDEMPOTENCY),
            },
        },
        "/v1/conversations/{conversation_id}/branch": {
            "parameters": [CID],
            "post": op("Copy the conversation up to a message into a new one",
                       _json("The new conversation", _ref("Conversation")), 400, 401, 404,
                       body=_obj({"message_id": STR, "title": NULL_STR}, ["message_id"],
                                 closed=True), status="201"),
        },
        "/v1/conversations/{conversation_id}/share": {
            "parameters": [CID],
            "post": op("Create (or return) a read-only share link",
                       _json("The link", _ref("Share")), 401, 404),
            "delete": op("Revoke the share link", _json("Revoked", _ref("ShareRevoked")),
                         401, 404),
        },
        "/v1/conversations/{conversation_id}/export": {
            "parameters": [CID],
            "get": op("The whole conversation tree as JSON (an attachment)",
                      _json("The export", _ref("Export")), 401, 404),
        },
        "/v1/shared/{token}": {
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": STR}],
            "get": op("A shared conversation (no authentication; read-only)",
                      _json("The shared view", _ref("SharedConversation")), 404,
                      security=OPEN),
        },
    }


def build_spec(model_name: str) -> Schema:
    """The whole document; ``model_name`` appears in examples only."""
    status = _obj({"status": STR, "reason": STR}, ["status"])
    return {
        "openapi": "3.1.0",
        "info": {"title": "chorusline", "version": "1",
                 "description": "OpenAI-compatible chat API over a supervised actor system. "
                                "See docs/api.md."},
        "security": BEARER,
        "paths": {
            "/health": {"get": {
                "summary": "Liveness", "security": OPEN, "tags": ["operations"],
                "responses": {"200": _json("Alive", status)}}},
            "/ready": {"get": {
                "summary": "Readiness: the store answers", "security": OPEN,
                "tags": ["operations"],
                "responses": {"200": _json("Ready", status),
                              "503": _json("Not ready (`status: unavailable`)", status)}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (unauthenticated)", "security": OPEN,
                "tags": ["operations"],
                "responses": {"200": {"description": "Prometheus text format 0.0.4",
                                      "content": {"text/plain": {"schema": STR}}}}}},
            "/openapi.json": {"get": {
                "summary": "This document", "security": OPEN, "tags": ["operations"],
                "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})}}},
            "/v1/models": {"get": {
                "summary": "The served model", "security": BEARER, "tags": ["openai"],
                "responses": {"200": _json("The model list", _ref("ModelList")),
                              **_errors(401)}}},
            "/v1/chat/completions": {"post": {
                "summary": "OpenAI chat completions (JSON, or SSE with stream: true)",
                "security": BEARER, "tags": ["openai"],
                "parameters": IDEMPOTENCY,
                "requestBody": {"required": True, "content": {
                    JSON: {"schema": _ref("ChatCompletionRequest")}}},
                "responses": {
                    "200": {
                        "description": "A chat.completion, or (stream: true) an SSE stream "
                                       "of chat.completion.chunk events: `data: <json>` "
                                       "lines, each followed by a blank line, ending with "
                                       "`data: [DONE]`.",
                        "headers": {"X-Request-Id": REQUEST_ID_HEADER, **RATE_HEADERS},
                        "content": {JSON: {"schema": _ref("ChatCompletion")},
                                    "text/event-stream": {"schema": STR}},
                    },
                    **_errors(400, 401, 404, 413, 429, 503),
                }}},
            **_conversation_paths(),
            **admin_paths(),
        },
        "components": components(model_name),
    }
