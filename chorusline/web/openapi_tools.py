"""Schemas of the tool-calling and structured-output parts of chat completions, as the
wire parser (``protocols.openai_tools``) takes them and the bodies carry them."""

from __future__ import annotations

from chorusline.web.openapi_common import BOOL, NULL_STR, STR, Schema, _obj, _ref

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}


def tool_properties() -> dict[str, Schema]:
    """The request fields that offer tools (chat completions and conversation turns)."""
    return {
        "tools": {"type": ["array", "null"], "maxItems": 128, "items": _ref("Tool")},
        "tool_choice": {"anyOf": [
            {"type": "string", "enum": ["none", "auto", "required"]},
            _obj({"type": {"const": "function"},
                  "function": _obj({"name": _NAME}, ["name"], closed=True)},
                 ["type", "function"], closed=True),
            {"type": "null"},
        ], "description": "Only with `tools`. Default `auto`."},
        "parallel_tool_calls": {"type": ["boolean", "null"],
                                "description": "Only with `tools`. Default true."},
    }


def response_format() -> Schema:
    return {"anyOf": [
        _obj({"type": {"const": "text"}}, ["type"], closed=True),
        _obj({"type": {"const": "json_object"}}, ["type"], closed=True),
        _obj({"type": {"const": "json_schema"}, "json_schema": _obj({
            "name": _NAME, "description": STR, "schema": {"type": "object"},
            "strict": {"type": ["boolean", "null"]},
        }, ["name"], closed=True)}, ["type", "json_schema"], closed=True),
        {"type": "null"},
    ], "description": "Constrained decoding: the reply always parses (and validates "
                      "against the schema) unless it ends with `length`."}


def schemas() -> dict[str, Schema]:
    function_call = _obj({"name": STR, "arguments": STR}, ["name", "arguments"],
                         closed=True)
    return {
        "Tool": _obj({"type": {"const": "function"}, "function": _obj({
            "name": _NAME, "description": STR,
            "parameters": {"type": "object", "description": "A JSON schema of type "
                           "object (default: no arguments)."},
            "strict": {"type": ["boolean", "null"]},
        }, ["name"], closed=True)}, ["type", "function"], closed=True),
        "ToolCall": _obj({"id": STR, "type": {"const": "function"},
                          "function": function_call}, ["id", "type", "function"],
                         closed=True),
        "ToolCallDelta": _obj({
            "index": {"type": "integer"}, "id": STR, "type": {"const": "function"},
            "function": _obj({"name": STR, "arguments": STR}, ["arguments"], closed=True),
        }, ["index", "function"], closed=True),
    }


def message_fields() -> dict[str, Schema]:
    """What a request message may carry besides role and content."""
    return {
        "name": STR,
        "tool_calls": {"type": "array", "items": _ref("ToolCall"),
                       "description": "On an assistant message: the calls it made."},
        "tool_call_id": {**NULL_STR, "description": "On a tool message: the call it "
                         "answers (required there)."},
        "refusal": NULL_STR,
    }


TRUNCATION = {"type": ["string", "null"], "enum": ["auto", "disabled", None],
              "description": "chorusline extension. `auto`: a history too long for the "
                             "window loses its oldest turns; `disabled` (default): it is "
                             "refused with `context_length_exceeded`."}
STORE = {"type": ["boolean", "null"], "enum": [False, None],
         "description": "Only false: chorusline does not keep completions for OpenAI's "
                        "distillation products."}
SERVICE_TIER = {"type": ["string", "null"], "enum": ["auto", "default", None]}
FLAG = BOOL
