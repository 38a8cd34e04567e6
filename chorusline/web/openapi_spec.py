"""The OpenAPI 3.1 document served at ``/openapi.json``.

Written by hand as data rather than generated from the routes: the routes parse bodies
by hand (so that every malformed field is a 400 in OpenAI's format), so there is nothing
to introspect, and a hand-written contract is what schemathesis checks the server
against. The constraints mirror the parser (``chorusline.protocols.openai``) and
``SamplingParams``' ranges: a value the schema allows is one the server must accept or
refuse with a documented 4xx, never a 5xx.
"""

from __future__ import annotations

from chorusline.web.admin_spec import admin_paths
from chorusline.web.conversation_views import MAX_QUERY, flag_values
from chorusline.web.openapi_account import account_paths
from chorusline.web.openapi_common import (
    BEARER,
    BOOL,
    END_USER,
    JSON,
    NULL_STR,
    OPEN,
    RATE_HEADERS,
    REQUEST_ID_HEADER,
    STR,
    Schema,
    _errors,
    _json,
    _obj,
    _ref,
)
from chorusline.web.openapi_endpoints import endpoint_paths, endpoint_schemas
from chorusline.web.openapi_schemas import components, message_content, sampling_properties
from chorusline.web.openapi_tools import tool_properties

#: The longest title the store keeps.
TITLE_MAX = 500
CID = {"name": "conversation_id", "in": "path", "required": True, "schema": STR,
       "description": "A conversation id; someone else's is a 404, like a missing one."}
IDEMPOTENCY = [
    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": STR,
     "description": "Retrying with the same key never duplicates a turn."},
    {"name": "X-Request-Id", "in": "header", "required": False, "schema": STR,
     "description": "Used as the idempotency key when Idempotency-Key is absent."},
]


#: One Server-Sent Event of a streamed reply, as OpenAPI 3.2 and schemathesis read a
#: ``text/event-stream`` (event by event, not as one string): ``data`` is a
#: chat.completion.chunk's JSON, an error body's, or ``[DONE]``.
SSE_EVENT: Schema = _obj({
    "event": STR, "id": STR, "retry": {"type": "integer", "minimum": 0},
    "data": {**STR, "description": "A chat.completion.chunk (JSON), an error body "
                                   "(JSON) after a failure mid-stream, or `[DONE]`."},
}, ["data"])


def _limit_param() -> Schema:
    return {"name": "limit", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}


def _conversation_paths() -> dict[str, Schema]:
    def op(summary: str, ok: Schema, *errors: int, body: Schema | None = None,
           params: list[Schema] | None = None, status: str = "200",
           security: list[Schema] = BEARER, body_required: bool = True) -> Schema:
        operation: Schema = {"summary": summary, "security": security,
                             "tags": ["conversations"],
                             "responses": {status: ok, **_errors(*errors)}}
        if params:
            operation["parameters"] = params
        if body is not None:  # a required body that is missing is a 400 that says so
            operation["requestBody"] = {"required": body_required,
                                        "content": {JSON: {"schema": body}}}
        return operation

    title = {"type": ["string", "null"], "maxLength": TITLE_MAX}
    title_prompt = _obj({"title": title, "system_prompt": NULL_STR}, closed=True)
    # Closed like the route: an unknown field (`max_token`) or `messages` is a 400.
    turn = _obj({
        "content": {**NULL_STR, "description": "The user's message (required unless "
                                               "regenerating)."},
        "edit_message_id": {**NULL_STR, "description": "Replace this user message (a new "
                                                       "branch)."},
        "regenerate_message_id": {**NULL_STR, "description": "Regenerate this assistant "
                                                             "message."},
        "model": {**NULL_STR, "description": "The served model (the default); any other "
                                             "is a 404 `model_not_found`."},
        **sampling_properties(),
        **tool_properties(),
        "tool_results": {"type": ["array", "null"], "minItems": 1, "items": _obj({
            "tool_call_id": STR, "content": message_content()},
            ["tool_call_id"], closed=True),
            "description": "Instead of `content`: the results of the last reply's tool "
                           "calls, one per call."},
        "user": END_USER,
    }, closed=True)
    tree = {"name": "tree", "in": "query", "required": False,
            "schema": {"type": "string", "enum": flag_values()},
            "description": "true: every message of every branch; absent or false: the "
                           "active branch; any other value (an empty one too) is a 400."}
    return {
        "/v1/conversations": {
            "post": op("Create a conversation (the body may be left out)",
                       _json("Created", _ref("Conversation")),
                       400, 401, 429, body=title_prompt, status="201", body_required=False),
            "get": op("List the caller's conversations, newest first",
                      _json("A page", _ref("ConversationList")), 400, 401,
                      params=[_limit_param(),
                              {"name": "cursor", "in": "query", "required": False,
                               "schema": STR, "description": "next_cursor of the last page "
                                                             "(absent or empty: the first)."},
                              {"name": "archived", "in": "query", "required": False,
                               "schema": {"type": "string", "enum": flag_values("all")},
                               "description": "Absent: false (unarchived only)."}]),
        },
        "/v1/conversations/search": {
            "get": op("Search titles and message text",
                      _json("Matches", _ref("SearchResults")), 400, 401,
                      params=[{"name": "q", "in": "query", "required": True,
                               "schema": {"type": "string", "minLength": 1,
                                          "maxLength": MAX_QUERY, "pattern": "\\S"},
                               "description": "A case-insensitive substring; blank is a "
                                              "400."},
                              _limit_param()]),
        },
        "/v1/conversations/{conversation_id}": {
            "parameters": [CID],
            "get": op("A conversation and its messages",
                      _json("The conversation", _ref("ConversationWithMessages")),
                      400, 401, 404, params=[tree]),
            "patch": op("Rename, archive or change the system prompt",
                        _json("The updated conversation", _ref("Conversation")),
                        400, 401, 404,
                        body={**_obj({"title": {**STR, "maxLength": TITLE_MAX},
                                      "system_prompt": NULL_STR, "archived": BOOL},
                                     closed=True), "minProperties": 1}),
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
                                  "text/event-stream": {"schema": SSE_EVENT}}},
                     400, 401, 404, 413, 429, 503, body=turn, params=IDEMPOTENCY),
            },
        },
        "/v1/conversations/{conversation_id}/branch": {
            "parameters": [CID],
            "post": op("Copy the conversation up to a message into a new one",
                       _json("The new conversation", _ref("Conversation")), 400, 401, 404,
                       body=_obj({"message_id": STR, "title": title}, ["message_id"],
                                 closed=True), status="201"),
        },
        "/v1/conversations/{conversation_id}/share": {
            "parameters": [CID],
            "post": op("Create a read-only share link to a snapshot of the conversation "
                       "now (sharing again revokes the previous link; its url starts "
                       "with the server's configured public URL, never the request's Host)",
                       _json("The link", _ref("Share")), 401, 404),
            "get": op("The conversation's live share link and when it was made (404 when "
                      "it has none)", _json("The link", _ref("Share")), 401, 404),
            "delete": op("Revoke the share link", _json("Revoked", _ref("ShareRevoked")),
                         401, 404),
        },
        "/v1/conversations/{conversation_id}/active_branch": {
            "parameters": [CID],
            "post": op("Show and continue the branch through a message (down to its "
                       "newest descendant): the page's sibling switch",
                       _json("The conversation with its new active branch",
                             _ref("ConversationWithMessages")), 400, 401, 404,
                       body=_obj({"message_id": STR}, ["message_id"], closed=True)),
        },
        "/v1/conversations/{conversation_id}/messages/{message_id}/stop": {
            "parameters": [CID, {"name": "message_id", "in": "path", "required": True,
                                 "schema": STR}],
            "post": op("Stop the reply being written into this assistant message (kept "
                       "`incomplete`, finish reason `abort`)",
                       _json("Stopped", _ref("Stopped")), 401, 404, 409),
        },
        "/v1/conversations/{conversation_id}/messages/{message_id}/feedback": {
            "parameters": [CID, {"name": "message_id", "in": "path", "required": True,
                                 "schema": STR}],
            "put": op("Rate an assistant message (replacing your earlier rating)",
                      _json("The rating", _ref("Feedback")), 400, 401, 404,
                      body=_obj({"rating": {"enum": ["up", "down"]},
                                 "comment": {**NULL_STR, "maxLength": 10_000}},
                                ["rating"], closed=True)),
            "delete": op("Remove your rating of the message",
                         _json("Removed (`deleted`: whether there was one)",
                               _obj({"object": {"const": "message.feedback.deleted"},
                                     "message_id": STR, "deleted": {"type": "boolean"}},
                                    ["object", "message_id", "deleted"])), 401, 404),
        },
        "/v1/conversations/{conversation_id}/feedback": {
            "parameters": [CID],
            "get": op("The conversation's ratings, oldest first",
                      _json("Ratings", _obj({"object": {"const": "list"}, "data": {
                          "type": "array", "items": _ref("Feedback")}},
                          ["object", "data"])), 401, 404),
        },
        "/v1/conversations/{conversation_id}/export": {
            "parameters": [CID],
            "get": op("The whole conversation tree as JSON (an attachment)",
                      _json("The export", _ref("Export")), 401, 404),
        },
        "/v1/shared/{token}": {
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": STR}],
            "get": op("A shared conversation (no authentication; read-only). A client "
                      "that prefers `text/html` (a browser) gets the read-only page "
                      "instead; everyone else gets this JSON",
                      _json("The shared view", _ref("SharedConversation")), 404,
                      security=OPEN),
        },
    }


def build_spec(model_name: str) -> Schema:
    """The whole document; ``model_name`` appears in examples only."""
    status = _obj({"status": STR, "reason": STR}, ["status"])
    parts = components(model_name)
    parts["schemas"] = {**parts["schemas"], **endpoint_schemas(model_name)}
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
                "summary": "The served models: the chat model, then the embedding model "
                           "(when one is served)", "security": BEARER, "tags": ["openai"],
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
                                    "text/event-stream": {"schema": SSE_EVENT}},
                    },
                    **_errors(400, 401, 404, 413, 429, 503),
                }}},
            "/v1/chat/completions/{request_id}/stop": {"post": {
                "summary": "Stop one of your own turns still being generated, by its id "
                           "(a stored reply is kept `incomplete`, finish reason `abort`)",
                "security": BEARER, "tags": ["openai"],
                "parameters": [{"name": "request_id", "in": "path", "required": True,
                                "schema": STR}],
                "responses": {"200": _json("Stopped", _ref("Stopped")),
                              **_errors(401, 404, 409)}}},
            **_conversation_paths(),
            **account_paths(),
            **endpoint_paths(),
            **admin_paths(),
        },
        "components": parts,
    }
