"""The JSON shapes of the conversation API and the checks on what clients send for it.

Pure functions, kept apart from the routes, so each promised shape is written once. The
checks turn every malformed field into ``InvalidRequest`` (400) before a store call sees
it: the store checks lengths, but a wrong *type* would reach it as a bare ``TypeError``
and leave as a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chorusline.chat import Conversation, Message
from chorusline.protocols import InvalidRequest, NotFound, openai as wire

#: Ids are UUIDs and share tokens URL-safe base64. Anything else cannot exist, so it is
#: answered NotFound at once; that also keeps odd bytes (a NUL...) away from the driver,
#: which PostgreSQL would reject with a raw error rather than a NotFound.
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")  # lower case only


def checked_id(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise NotFound(f"{what.replace('_', ' ')} {value[:64]!r} not found", param=what)
    return value


def body_id(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string", param=name)
    return checked_id(value, name)


def object_body(body: Any, allowed: set[str] | None = None) -> dict[str, Any]:
    """The body as an object; with ``allowed``, an unknown field is refused rather than
    ignored, so a misspelt ``archvied`` does not silently change nothing."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if allowed is not None:
        wire.reject_unknown(body, allowed)
    return body


def optional_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string", param=name)
    return value


def query_int(args: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    """An integer query parameter; absent is ``default``, and anything but digits within
    the documented range (an empty value included) is a 400."""
    raw = args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"{name} must be an integer between 1 and {maximum}", param=name)
    return int(raw)


def query_flag(args: Mapping[str, str], name: str, *, any_word: str | None = None
               ) -> bool | None:
    """A boolean query parameter (absent is False); ``any_word`` names the value that
    means "either" (None). Exactly the spellings the OpenAPI document lists are taken
    (``flag_values``): an empty or other value is a 400, not a silent False."""
    raw = args.get(name)
    if raw is None:
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    if any_word is not None and raw == any_word:
        return None
    raise InvalidRequest(f"{name} must be one of {', '.join(flag_values(any_word))}",
                         param=name)


def flag_values(any_word: str | None = None) -> list[str]:
    """What ``query_flag`` accepts, for the OpenAPI document's enums."""
    return [*_TRUE, *_FALSE, *([any_word] if any_word else [])]


#: The longest search query the store takes.
MAX_QUERY = 1000


def query_text(args: Mapping[str, str], name: str) -> str:
    """A required text query parameter with something besides blanks in it (a blank
    search would match nearly everything)."""
    raw = args.get(name)
    if raw is None:
        raise InvalidRequest(f"{name} is required", param=name)
    if not raw.strip():
        raise InvalidRequest(f"{name} must contain a non-blank character", param=name)
    if len(raw) > MAX_QUERY:
        raise InvalidRequest(f"{name} is longer than {MAX_QUERY} characters", param=name)
    return raw


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


def conversation(c: Conversation) -> dict[str, Any]:
    """The owner's view; the share token itself is only handed out by ``/share``."""
    return {
        "id": c.id,
        "object": "conversation",
        "title": c.title,
        "system_prompt": c.system_prompt,
        "model": c.model,
        "archived": c.archived,
        "shared": c.share_token is not None,
        "parent_conversation_id": c.parent_conversation_id,
        "branch_point_message_id": c.branch_point_message_id,
        "created_at": _ts(c.created),
        "updated_at": _ts(c.updated),
    }


def message(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "object": "conversation.message",
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "parent_message_id": m.parent_message_id,
        "role": m.role.value,
        "content": m.content,
        "status": m.status.value,
        "finish_reason": m.finish_reason,
        "model": m.model,
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "created_at": _ts(m.created),
        **tool_fields(m),
    }


def tool_fields(m: Any) -> dict[str, Any]:
    """A message's calls in OpenAI's shape, or the call a tool message answers; nothing
    for the others, so a message without tools reads as it always did."""
    if m.tool_calls:
        return {"tool_calls": [call.wire() for call in m.tool_calls]}
    if m.tool_call_id is not None:
        return {"tool_call_id": m.tool_call_id}
    return {}


def listing(data: list[dict[str, Any]], next_cursor: str | None = None) -> dict[str, Any]:
    return {"object": "list", "data": data, "next_cursor": next_cursor}


# SharedConversation and SearchHit are not exported by chorusline.chat, so these take
# them structurally (attribute access) rather than by their names.

def shared(snapshot: Any) -> dict[str, Any]:
    """What anyone with the link sees: no owner, no ids, no system prompt."""
    return {
        "object": "shared_conversation",
        "token": snapshot.token,
        "title": snapshot.title,
        "created_at": _ts(snapshot.created),
        "messages": [
            {"role": m.role.value, "content": m.content, "created_at": _ts(m.created),
             **tool_fields(m)}
            for m in snapshot.messages
        ],
    }


def search_hit(hit: Any) -> dict[str, Any]:
    return {
        "object": "conversation.search_result",
        "conversation": conversation(hit.conversation),
        "title_matched": hit.title_matched,
        "message_ids": list(hit.message_ids),
        "snippet": hit.snippet,
    }
