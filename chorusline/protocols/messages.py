"""A chat message as it crosses the layers, and the tools a model may call.

OpenAI's chat format is more than ``(role, content)``: an assistant message may carry
``tool_calls`` instead of (or beside) text, and a ``tool`` message answers one of them by
its id. Both have to survive the trip from the wire to the prompt (and, for stored
conversations, to the store), so they are values here, below every layer that uses them.
They hold what was said, already checked for shape by the wire parser; how a model sees
them (its tool format) is the chat layer's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: The roles a message may have once parsed (OpenAI's ``developer`` is a ``system``).
MESSAGE_ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolCall:
    """One function call the assistant made: ``arguments`` is JSON text (an object), as
    OpenAI carries it, so the exact characters the model wrote survive a round trip."""

    id: str
    name: str
    arguments: str

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation. ``tool_calls`` only on an assistant message,
    ``tool_call_id`` only (and always) on a ``tool`` one."""

    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    #: The name of the function whose result a ``tool`` message carries (found from its
    #: call when the client did not say).
    name: str | None = None

    @classmethod
    def of(cls, message: ChatMessage | tuple[str, str]) -> ChatMessage:
        """Accept the ``(role, content)`` pairs embedding code and tests write."""
        if isinstance(message, ChatMessage):
            return message
        role, content = message
        return cls(role, content)


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call: ``parameters`` is its arguments' JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    strict: bool = False

    def wire(self) -> dict[str, Any]:
        """The tool as OpenAI's ``tools`` entry (what the model is shown)."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters
        return {"type": "function", "function": function}

    def schema_text(self) -> str:
        return json.dumps(self.parameters)


@dataclass(frozen=True)
class ToolChoice:
    """``none``, ``auto``, ``required``, or ``function`` with the one tool's ``name``."""

    mode: str = "auto"
    name: str | None = None
