"""Component schemas of the OpenAPI document: chat-completion requests and responses
(their sampling fields mirror ``chorusline.protocols.openai``'s parser and
``SamplingParams``' ranges), log probabilities, conversations and messages."""

from __future__ import annotations

from chorusline.protocols import openai as wire
from chorusline.web import openapi_tools as tools
from chorusline.web.openapi_common import (
    BOOL,
    END_USER,
    FINISH,
    INT,
    NULL_INT,
    NULL_STR,
    STR,
    Schema,
    _nullable,
    _obj,
    _ref,
)


def sampling_properties() -> dict[str, Schema]:
    """The sampling fields shared by chat completions and conversation turns."""
    return {
        "max_tokens": {**NULL_INT, "minimum": 1, "maximum": wire.INT32_MAX,
                       "description": "Reply budget per choice; null: 512 tokens (the "
                                      "server's default reply budget). More than the "
                                      "context window can hold is refused "
                                      "(`context_length_exceeded`)."},
        "max_completion_tokens": {**NULL_INT, "minimum": 1, "maximum": wire.INT32_MAX,
                                  "description": "Newer name of max_tokens; wins if both."},
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2,
                        "description": "0 is greedy. Default 1."},
        "top_p": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
        "top_k": {**NULL_INT, "minimum": 0, "maximum": wire.INT32_MAX,
                  "description": "0 disables top-k."},
        "min_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "seed": {**NULL_INT, "minimum": wire.INT64_MIN, "maximum": wire.INT64_MAX,
                 "description": "Makes sampling reproducible per choice."},
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
        "response_format": tools.response_format(),
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


def message_content() -> Schema:
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
        "tool_calls": {"type": "array", "items": _ref("ToolCall"),
                       "description": "The functions an assistant message called."},
        "tool_call_id": {**STR, "description": "The call a `tool` message answers."},
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
                         "enum": ["system", "developer", "user", "assistant", "tool"],
                         "description": "`developer` is treated as `system`."},
                "content": message_content(),
                **tools.message_fields(),
            }, ["role"], closed=True),
            **tools.schemas(),
            "ChatCompletionRequest": _obj({
                "model": {"type": "string", "examples": [model_name],
                          "description": "A served chat model's name or alias (else "
                                         "404 `model_not_found`; a base model: 400)."},
                "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
                **sampling_properties(),
                **tools.tool_properties(),
                "user": END_USER,
                "truncation": tools.TRUNCATION,
                "store": tools.STORE,
                "service_tier": tools.SERVICE_TIER,
                "conversation_id": {**NULL_STR, "description": "Bind the turn to a stored "
                                    "conversation: its history is loaded and the last "
                                    "(user) message and the reply are persisted."},
            }, ["model", "messages"], closed=True),
            "ChatCompletion": _obj({
                "id": STR, "object": {"const": "chat.completion"}, "created": INT,
                "model": STR, "system_fingerprint": {"type": "null"},
                "choices": {"type": "array", "items": _obj({
                    "index": INT,
                    "message": _obj({"role": {"const": "assistant"}, "content": NULL_STR,
                                     "refusal": {"type": "null"},
                                     "tool_calls": {"type": "array",
                                                    "items": _ref("ToolCall")}},
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
                    "delta": _obj({"role": {"const": "assistant"}, "content": STR,
                                   "tool_calls": {"type": "array",
                                                  "items": _ref("ToolCallDelta")}},
                                  closed=True),
                    "logprobs": _nullable(_ref("ChoiceLogprobs")),
                    "finish_reason": _nullable(FINISH),
                }, ["index", "delta", "finish_reason"])},
                "usage": _nullable(usage),
            }, ["id", "object", "created", "model", "choices"]),
            **logprob_schemas(),
            "ModelList": _obj({
                "object": {"const": "list"},
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
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
                           "object": {"const": "conversation.share"}, "created_at": INT},
                          ["token", "url", "conversation_id", "object", "created_at"]),
            "ShareRevoked": _obj({"conversation_id": STR,
                                  "object": {"const": "conversation.share"},
                                  "shared": {"const": False}},
                                 ["conversation_id", "object", "shared"]),
            "User": _obj({"object": {"const": "user"}, "id": STR, "name": STR,
                          "custom_instructions": NULL_STR, "created_at": INT},
                         ["object", "id", "name", "custom_instructions", "created_at"]),
            "Feedback": _obj({"object": {"const": "message.feedback"}, "message_id": STR,
                              "conversation_id": STR, "rating": {"enum": ["up", "down"]},
                              "comment": NULL_STR, "created_at": INT, "updated_at": INT},
                             ["object", "message_id", "conversation_id", "rating",
                              "comment", "created_at", "updated_at"]),
            "PageSession": _obj({"object": {"const": "session"}, "user": _ref("User"),
                                 "csrf_token": STR, "expires_at": INT},
                                ["object", "user", "csrf_token", "expires_at"]),
            "Stopped": _obj({"object": {"const": "chat.completion.stop"}, "id": STR,
                             "stopped": {"const": True}, "message_id": STR},
                            ["object", "id", "stopped"]),
            "Deleted": _obj({"id": STR, "object": {"const": "conversation.deleted"},
                             "deleted": {"const": True}}, ["id", "object", "deleted"]),
            "SharedConversation": _obj({
                "object": {"const": "shared_conversation"}, "token": STR, "title": STR,
                "created_at": INT,
                "messages": {"type": "array", "items": _obj(
                    {"role": STR, "content": STR, "created_at": INT,
                     "tool_calls": {"type": "array", "items": _ref("ToolCall")},
                     "tool_call_id": STR},
                    ["role", "content"])},
            }, ["object", "token", "messages"]),
            "Export": _obj({"format": STR, "conversation": {"type": "object"},
                            "active_leaf_message_id": NULL_STR,
                            "messages": {"type": "array", "items": {"type": "object"}},
                            "feedback": {"type": "array", "items": {"type": "object"}}},
                           ["conversation", "messages", "feedback"]),
        },
    }
