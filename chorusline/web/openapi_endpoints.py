"""The OpenAPI paths and schemas of OpenAI's endpoints besides chat completions:
``/v1/completions``, ``/v1/embeddings``, ``/v1/moderations`` and ``/v1/models/{model}``.

Kept apart from ``openapi_spec`` and ``openapi_schemas`` (chat completions and
conversations) so each stays short. The request bodies are closed
(``additionalProperties: false``) because their parsers refuse any field they do not
take (``unknown_parameter``); the constraints mirror those parsers
(``chorusline.protocols.openai_completions``, ``openai_embeddings``,
``openai_moderations``), so a body the schema allows is one the server answers with a
result or a documented 4xx, never a 5xx.
"""

from __future__ import annotations

# Submodule imports, pending these joining ``chorusline.protocols``' ``__all__``.
import chorusline.protocols.openai_completions as cwire
import chorusline.protocols.openai_embeddings as ewire
import chorusline.protocols.openai_moderations as mwire
from chorusline.protocols import openai as wire
from chorusline.web.openapi_common import (
    BEARER,
    BOOL,
    END_USER,
    FINISH,
    INT,
    JSON,
    NULL_INT,
    NULL_STR,
    RATE_HEADERS,
    REQUEST_ID_HEADER,
    STR,
    Schema,
    _errors,
    _json,
    _nullable,
    _obj,
    _ref,
)
from chorusline.web.openapi_schemas import sampling_properties

#: The embedding model a default deployment serves (examples only).
EMBEDDING_EXAMPLE = "all-minilm-l6-v2"

#: One Server-Sent Event of a streamed legacy completion (``/v1/completions``).
TEXT_SSE_EVENT: Schema = _obj({
    "event": STR, "id": STR, "retry": {"type": "integer", "minimum": 0},
    "data": {**STR, "description": "A text_completion chunk (JSON), an error body (JSON) "
                                   "after a failure mid-stream, or `[DONE]`."},
}, ["data"])


def _post(summary: str, request: str, ok: Schema, *errors: int) -> Schema:
    return {"post": {
        "summary": summary, "security": BEARER, "tags": ["openai"],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(request)}}},
        "responses": {"200": ok, **_errors(*errors)}}}


def endpoint_paths() -> dict[str, Schema]:
    return {
        "/v1/completions": _post(
            "OpenAI legacy text completions (JSON, or SSE with stream: true)",
            "CompletionRequest",
            {"description": "A text_completion, or (stream: true) an SSE stream of "
                            "text_completion chunks ending with `data: [DONE]`.",
             "headers": {"X-Request-Id": REQUEST_ID_HEADER, **RATE_HEADERS},
             "content": {JSON: {"schema": _ref("TextCompletion")},
                         "text/event-stream": {"schema": TEXT_SSE_EVENT}}},
            400, 401, 404, 413, 429, 503),
        "/v1/embeddings": _post(
            "Embedding vectors of texts or token-id lists (the served embedding model)",
            "EmbeddingRequest",
            _json("One vector per input, in order", _ref("EmbeddingList"), RATE_HEADERS),
            400, 401, 404, 413, 429, 503),
        "/v1/models/{model}": {
            "parameters": [{"name": "model", "in": "path", "required": True,
                            "schema": STR}],
            "get": {"summary": "One served model (the chat or the embedding model)",
                    "security": BEARER, "tags": ["openai"],
                    "responses": {"200": _json("The model", _ref("Model")),
                                  **_errors(401, 404)}}},
        "/v1/moderations": _post(
            "The chat path's input moderation, in OpenAI's format", "ModerationRequest",
            _json("One result per input", _ref("ModerationResponse")),
            400, 401, 404, 413),
    }


def endpoint_schemas(model_name: str) -> dict[str, Schema]:
    return {**_completion_schemas(model_name), **_embedding_schemas(),
            **_moderation_schemas(),
            "Model": MODEL_OBJECT}


#: OpenAI's model object plus what chorusline says of each model (``web.models``).
MODEL_OBJECT = _obj({
    "id": STR, "object": {"const": "model"}, "created": INT, "owned_by": STR,
    "capabilities": {"type": "array", "items": {
        "enum": ["chat", "completions", "tools", "embeddings"]}},
    "context_window": INT,
    "aliases": {"type": "array", "items": STR},
    "fallback": {"type": "array", "items": STR},
}, ["id", "object", "created", "owned_by", "capabilities", "aliases", "fallback"],
    closed=True)


def _completion_schemas(model_name: str) -> dict[str, Schema]:
    shared = sampling_properties()
    ids = {"type": "array", "minItems": 1, "items": INT}
    text = {"type": "string", "minLength": 1}
    usage = _obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT},
                 ["prompt_tokens", "completion_tokens", "total_tokens"], closed=True)
    choice = _obj({
        "text": STR, "index": INT, "logprobs": _nullable(_ref("LegacyLogprobs")),
        "finish_reason": FINISH}, ["text", "index", "logprobs", "finish_reason"], closed=True)
    return {
        "CompletionRequest": _obj({
            "model": {"type": "string", "examples": [model_name],
                      "description": "A served model's name or alias (else 404 "
                                     "`model_not_found`); base models serve only this "
                                     "route."},
            "prompt": {"anyOf": [
                text,
                {"type": "array", "minItems": 1, "maxItems": cwire.MAX_PROMPTS,
                 "items": text},
                ids,
                {"type": "array", "minItems": 1, "maxItems": cwire.MAX_PROMPTS,
                 "items": ids},
            ], "description": "A text, texts, token ids or lists of token ids; each "
                              "prompt is a turn of its own, without the chat template."},
            "suffix": {**NULL_STR, "description": "Not supported: a non-empty suffix is a "
                                                  "400."},
            **{name: shared[name] for name in cwire.SHARED_SAMPLING},
            "max_tokens": {**NULL_INT, "minimum": 1, "maximum": wire.INT32_MAX,
                           "description": "Reply budget per choice; null: 16 (OpenAI's "
                                          "default here)."},
            "logprobs": {**NULL_INT, "minimum": 0, "maximum": cwire.MAX_LOGPROBS,
                         "description": "Alternatives per token in the legacy logprobs "
                                        "object; cannot be combined with echo."},
            "echo": {"type": ["boolean", "null"]},
            "best_of": {**NULL_INT, "minimum": 1, "maximum": 16,
                        "description": "Candidates per prompt (at least n; not with "
                                       "stream); the n with the highest total logprob "
                                       "are returned."},
            "stream": shared["stream"], "stream_options": shared["stream_options"],
            "user": END_USER,
        }, ["model", "prompt"], closed=True),
        "LegacyLogprobs": _obj({
            "tokens": {"type": "array", "items": STR},
            "token_logprobs": {"type": "array", "items": {"type": "number"}},
            "top_logprobs": {"type": "array", "items": {
                "type": "object", "additionalProperties": {"type": "number"}}},
            "text_offset": {"type": "array", "items": INT},
        }, ["tokens", "token_logprobs", "top_logprobs", "text_offset"], closed=True),
        "TextCompletion": _obj({
            "id": STR, "object": {"const": "text_completion"}, "created": INT,
            "model": STR, "system_fingerprint": {"type": "null"},
            "choices": {"type": "array", "items": choice}, "usage": usage,
        }, ["id", "object", "created", "model", "choices", "usage"], closed=True),
    }


def _embedding_schemas() -> dict[str, Schema]:
    text = {"type": "string", "minLength": 1}
    ids = {"type": "array", "minItems": 1, "items": INT}
    many = {"minItems": 1, "maxItems": ewire.MAX_INPUTS}
    return {
        "EmbeddingRequest": _obj({
            "model": {"type": "string", "examples": [EMBEDDING_EXAMPLE],
                      "description": "Must be the served embedding model (else 404 "
                                     "`model_not_found`, also when none is served)."},
            "input": {"anyOf": [
                text, {"type": "array", **many, "items": text}, ids,
                {"type": "array", **many, "items": ids},
            ], "description": "A text, texts, token ids or lists of token ids (the "
                              "embedding model's own vocabulary). An input longer than "
                              "the model reads is a 400 `context_length_exceeded`, never "
                              "truncated."},
            "encoding_format": {"type": ["string", "null"],
                                "enum": [*ewire.ENCODING_FORMATS, None],
                                "description": "`float` (default) or `base64`: "
                                               "little-endian float32 bytes."},
            "dimensions": {**NULL_INT, "minimum": 1,
                           "description": "Only the model's own size (384) is served; "
                                          "any other is a 400."},
            "user": END_USER,
        }, ["model", "input"], closed=True),
        "EmbeddingList": _obj({
            "object": {"const": "list"},
            "data": {"type": "array", "items": _obj({
                "object": {"const": "embedding"}, "index": INT,
                "embedding": {"anyOf": [
                    {"type": "array", "items": {"type": "number"}},
                    {"type": "string", "contentEncoding": "base64"},
                ]},
            }, ["object", "index", "embedding"], closed=True)},
            "model": STR,
            "usage": _obj({"prompt_tokens": INT, "total_tokens": INT},
                          ["prompt_tokens", "total_tokens"], closed=True),
        }, ["object", "data", "model", "usage"], closed=True),
    }


def _moderation_schemas() -> dict[str, Schema]:
    flags = {"type": "object", "additionalProperties": BOOL,
             "required": list(mwire.OPENAI_CATEGORIES)}
    numbers = {"type": "object", "additionalProperties": {"type": "number"},
               "required": list(mwire.OPENAI_CATEGORIES)}
    types = {"type": "object", "additionalProperties": {"type": "array", "items": STR},
             "required": list(mwire.OPENAI_CATEGORIES)}
    many = {"minItems": 1, "maxItems": mwire.MAX_INPUTS}
    return {
        "ModerationRequest": _obj({
            "input": {"anyOf": [
                STR,
                {"type": "array", **many, "items": STR},
                {"type": "array", **many,
                 "items": _obj({"type": {"const": "text"}, "text": STR},
                               ["type", "text"], closed=True)},
            ]},
            "model": {**NULL_STR, "description": "omni-moderation-latest (the default), "
                      "text-moderation-latest or chorusline-moderation: one policy; any "
                      "other is a 404."},
        }, ["input"], closed=True),
        "ModerationResponse": _obj({
            "id": STR, "model": STR,
            "results": {"type": "array", "items": _obj({
                "flagged": BOOL, "categories": flags, "category_scores": numbers,
                "category_applied_input_types": types,
                "action": {"type": "string", "enum": ["allow", "redact", "block"],
                           "description": "chorusline extension: what the chat path "
                                          "does with this text."},
            }, ["flagged", "categories", "category_scores",
                "category_applied_input_types"], closed=True)},
        }, ["id", "model", "results"], closed=True),
    }
