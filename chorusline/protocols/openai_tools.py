"""The tool-calling and structured-output parts of an OpenAI chat body.

Parsed here, not downstream, for the same reason as the rest of the wire format: every
malformed field becomes a 400 that names it (``tools[0].function.parameters``,
``messages[3].tool_call_id``), before any actor or engine work. What the shapes mean for
the model (its tool format, the grammar that constrains a call) is the chat layer's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chorusline.protocols.errors import InvalidRequest, UnknownParameter
from chorusline.protocols.generation import Grammar
from chorusline.protocols.messages import ChatMessage, FunctionTool, ToolCall, ToolChoice

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
         "tool": "tool"}
#: OpenAI's rule for function and schema names.
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TOOLS = 128
_MESSAGE_FIELDS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
}


def _fields(body: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for name in body:
        if name not in allowed:
            raise UnknownParameter(f"Unrecognized request argument supplied: {where}.{name}",
                                   param=f"{where}.{name}")


def _string(value: Any, param: str, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{param} must be {what}", param=param)
    return value


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{param} must be an object", param=param)
    return value


def content_text(value: Any, param: str) -> str:
    """A message's ``content``: a string, null, or a list of text parts."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest("only text content parts are supported",
                                     param=f"{param}[{i}]")
            parts.append(_string(part.get("text"), f"{param}[{i}].text"))
        return "".join(parts)
    raise InvalidRequest(f"{param} must be a string or a list of text parts", param=param)


def _tool_calls(value: Any, where: str) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be a list", param=where)
    calls = []
    for j, call in enumerate(value):
        at = f"{where}[{j}]"
        call = _object(call, at)
        _fields(call, {"id", "type", "function"}, at)
        if call.get("type", "function") != "function":
            raise InvalidRequest(f"{at}.type must be 'function'", param=f"{at}.type")
        function = _object(call.get("function"), f"{at}.function")
        _fields(function, {"name", "arguments"}, f"{at}.function")
        arguments = _string(function.get("arguments"), f"{at}.function.arguments")
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidRequest(f"{at}.function.arguments must be a JSON object in text",
                                 param=f"{at}.function.arguments")
        calls.append(ToolCall(_string(call.get("id"), f"{at}.id"),
                              _string(function.get("name"), f"{at}.function.name"),
                              arguments))
    return tuple(calls)


def parse_messages(value: Any) -> tuple[ChatMessage, ...]:
    """``messages``, with tool calls and tool results checked against each other: a
    ``tool`` message must answer a call an earlier assistant message made."""
    if not isinstance(value, list):
        raise InvalidRequest("messages must be a list", param="messages")
    out: list[ChatMessage] = []
    calls: dict[str, str] = {}  # call id -> function name
    for i, message in enumerate(value):
        at = f"messages[{i}]"
        message = _object(message, at)
        role = message.get("role")
        role = ROLES.get(role) if isinstance(role, str) else None
        if role is None:
            raise InvalidRequest(f"{at}.role must be system, developer, user, assistant or "
                                 "tool", param=f"{at}.role")
        _fields(message, _MESSAGE_FIELDS[role], at)
        content = content_text(message.get("content"), f"{at}.content")
        if message.get("name") is not None:
            _string(message["name"], f"{at}.name")
        if role == "assistant" and message.get("tool_calls") is not None:
            made = _tool_calls(message["tool_calls"], f"{at}.tool_calls")
            calls.update((call.id, call.name) for call in made)
            out.append(ChatMessage(role, content, tool_calls=made))
        elif role == "tool":
            call_id = _string(message.get("tool_call_id"), f"{at}.tool_call_id")
            if call_id not in calls:
                raise InvalidRequest(f"{at}.tool_call_id {call_id[:64]!r} answers no tool "
                                     "call of an earlier assistant message",
                                     param=f"{at}.tool_call_id")
            out.append(ChatMessage(role, content, tool_call_id=call_id, name=calls[call_id]))
        else:
            out.append(ChatMessage(role, content))
    if not out:
        raise InvalidRequest("messages must not be empty", param="messages")
    return tuple(out)


def parse_tool_results(value: Any) -> tuple[ChatMessage, ...]:
    """A conversation turn's ``tool_results``: ``[{"tool_call_id", "content"}]``, the
    client's answers to the last reply's calls (the store checks them against the
    calls, which only it holds)."""
    if not isinstance(value, list) or not value:
        raise InvalidRequest("tool_results must be a non-empty list", param="tool_results")
    results = []
    for i, result in enumerate(value):
        at = f"tool_results[{i}]"
        result = _object(result, at)
        _fields(result, {"tool_call_id", "content"}, at)
        results.append(ChatMessage(
            "tool", content_text(result.get("content"), f"{at}.content"),
            tool_call_id=_string(result.get("tool_call_id"), f"{at}.tool_call_id")))
    return tuple(results)


def _schema(value: Any, param: str) -> dict[str, Any]:
    schema = _object(value, param)
    kind = schema.get("type", "object")
    if kind != "object":
        raise InvalidRequest(f"{param} must be a JSON schema of type 'object'", param=param)
    return schema


def parse_tools(value: Any) -> tuple[FunctionTool, ...]:
    if not isinstance(value, list):
        raise InvalidRequest("tools must be a list", param="tools")
    if len(value) > MAX_TOOLS:
        raise InvalidRequest(f"at most {MAX_TOOLS} tools", param="tools")
    tools: list[FunctionTool] = []
    for i, tool in enumerate(value):
        at = f"tools[{i}]"
        tool = _object(tool, at)
        _fields(tool, {"type", "function"}, at)
        if tool.get("type") != "function":
            raise InvalidRequest(f"{at}.type must be 'function'", param=f"{at}.type")
        function = _object(tool.get("function"), f"{at}.function")
        _fields(function, {"name", "description", "parameters", "strict"}, f"{at}.function")
        name = function.get("name")
        if not isinstance(name, str) or NAME.fullmatch(name) is None:
            raise InvalidRequest(f"{at}.function.name is required: 1-64 letters, digits, _ "
                                 "or -", param=f"{at}.function.name")
        if any(t.name == name for t in tools):
            raise InvalidRequest(f"two tools are named {name!r}", param=f"{at}.function.name")
        description = function.get("description")
        if description is not None:
            _string(description, f"{at}.function.description")
        parameters = {"type": "object", "properties": {}}
        if function.get("parameters") is not None:
            parameters = _schema(function["parameters"], f"{at}.function.parameters")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidRequest(f"{at}.function.strict must be a boolean",
                                 param=f"{at}.function.strict")
        tools.append(FunctionTool(name, description or "", parameters, bool(strict)))
    return tuple(tools)


def parse_tool_choice(value: Any, tools: tuple[FunctionTool, ...]) -> ToolChoice:
    if value is None:
        return ToolChoice("auto" if tools else "none")
    if not tools:
        raise InvalidRequest("tool_choice is only allowed when tools are given",
                             param="tool_choice")
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise InvalidRequest("tool_choice must be none, auto, required or a function",
                                 param="tool_choice")
        return ToolChoice(value)
    choice = _object(value, "tool_choice")
    _fields(choice, {"type", "function"}, "tool_choice")
    if choice.get("type") != "function":
        raise InvalidRequest("tool_choice.type must be 'function'", param="tool_choice.type")
    function = _object(choice.get("function"), "tool_choice.function")
    _fields(function, {"name"}, "tool_choice.function")
    name = _string(function.get("name"), "tool_choice.function.name")
    if all(t.name != name for t in tools):
        raise InvalidRequest(f"tool_choice names {name[:64]!r}, which is not in tools",
                             param="tool_choice.function.name")
    return ToolChoice("function", name)


def parse_response_format(value: Any) -> Grammar | None:
    """``response_format``: None for text, else the grammar the reply must match."""
    if value is None:
        return None
    body = _object(value, "response_format")
    kind = body.get("type")
    if kind == "text":
        _fields(body, {"type"}, "response_format")
        return None
    if kind == "json_object":
        _fields(body, {"type"}, "response_format")
        return Grammar("json_object")
    if kind != "json_schema":
        raise InvalidRequest("response_format.type must be text, json_object or json_schema",
                             param="response_format.type")
    _fields(body, {"type", "json_schema"}, "response_format")
    spec = _object(body.get("json_schema"), "response_format.json_schema")
    _fields(spec, {"name", "description", "schema", "strict"}, "response_format.json_schema")
    name = spec.get("name")
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise InvalidRequest("response_format.json_schema.name is required: 1-64 letters, "
                             "digits, _ or -", param="response_format.json_schema.name")
    if spec.get("description") is not None:
        _string(spec["description"], "response_format.json_schema.description")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest("response_format.json_schema.strict must be a boolean",
                             param="response_format.json_schema.strict")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise InvalidRequest("response_format.json_schema.schema must be a JSON schema "
                             "object", param="response_format.json_schema.schema")
    return Grammar("json_schema", json.dumps(schema))
