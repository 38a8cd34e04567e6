"""An assistant message's tool calls as the ``tool_calls`` column keeps them.

JSON text ``[{"id", "name", "arguments"}]``, NULL when there are none, so a message
without calls reads exactly as it did before migration 4. ``arguments`` stays the JSON
*text* the model wrote (never re-encoded), so an exported or replayed call carries the
characters the client was first shown. The checks run before any SQL: a malformed call
must be an ``InvalidRequest``, not a driver error or a row that cannot be read back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chorusline.protocols import InvalidRequest, ToolCall
from chorusline.store._checks import check_text

#: Longest call id or function name kept (OpenAI's names are at most 64 characters; ids
#: are ours or the client's, bounded so a key-sized value cannot be smuggled in).
MAX_ID = 256
MAX_ARGUMENTS = 1_000_000


def check_tool_call_id(value: Any, what: str = "tool_call_id") -> str:
    return check_text(value, what, max_len=MAX_ID, allow_empty=False)


def check_tool_calls(calls: Sequence[ToolCall]) -> tuple[ToolCall, ...]:
    checked = tuple(calls)
    seen: set[str] = set()
    for i, call in enumerate(checked):
        if not isinstance(call, ToolCall):
            raise InvalidRequest(f"tool_calls[{i}] must be a ToolCall", param=f"tool_calls[{i}]")
        check_tool_call_id(call.id, f"tool_calls[{i}].id")
        check_text(call.name, f"tool_calls[{i}].name", max_len=MAX_ID, allow_empty=False)
        check_text(call.arguments, f"tool_calls[{i}].arguments", max_len=MAX_ARGUMENTS)
        if call.id in seen:
            raise InvalidRequest(f"two tool calls have the id {call.id[:64]!r}",
                                 param=f"tool_calls[{i}].id")
        seen.add(call.id)
    return checked


def encode_tool_calls(calls: Sequence[ToolCall]) -> str | None:
    if not calls:
        return None
    return json.dumps([{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
                      ensure_ascii=False)


def decode_tool_calls(raw: Any) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    return tuple(ToolCall(str(c["id"]), str(c["name"]), str(c["arguments"]))
                 for c in json.loads(raw))


def check_tool_fields(role: str, tool_calls: Sequence[ToolCall],
                      tool_call_id: str | None) -> tuple[ToolCall, ...]:
    """What the table's constraints require, as a 400 rather than an integrity error:
    calls only on an assistant message, a call id on every tool message and no other."""
    calls = check_tool_calls(tool_calls)
    if calls and role != "assistant":
        raise InvalidRequest("only an assistant message makes tool calls", param="tool_calls")
    if role == "tool":
        check_tool_call_id(tool_call_id)
    elif tool_call_id is not None:
        raise InvalidRequest("only a tool message answers a tool call", param="tool_call_id")
    return calls
