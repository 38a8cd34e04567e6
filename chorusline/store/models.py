"""The records the store hands out.

They are frozen dataclasses rather than driver rows so that callers (actors on other
threads) can pass them around freely without holding a connection or a lock, and so that
both backends are interchangeable behind one contract.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from chorusline.protocols import ToolCall


class Role(enum.StrEnum):
    """Who wrote a message; the values are the OpenAI role names."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    #: A function's result, answering one of the calls of the assistant message it
    #: follows (``tool_call_id``).
    TOOL = "tool"


class MessageStatus(enum.StrEnum):
    """Whether a message's content is final.

    ``incomplete`` covers both a draft still streaming (``finish_reason`` is None) and a
    reply whose stream broke (``finish_reason`` set, e.g. ``"interrupted"``).
    """

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    BLOCKED = "blocked"


class ModerationStage(enum.StrEnum):
    """Where moderation looked: at the user's input or at the streamed output."""

    INPUT = "input"
    OUTPUT = "output"


class _ActiveLeaf(enum.Enum):
    ACTIVE_LEAF = "active-leaf"


ACTIVE_LEAF: Final = _ActiveLeaf.ACTIVE_LEAF
"""Parent marker meaning "continue the most recently extended branch".

``None`` already means "a new root" (an edit of the very first message), so the default
needs a value of its own.
"""

ParentRef = str | None | Literal[_ActiveLeaf.ACTIVE_LEAF]


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    custom_instructions: str | None
    created: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's record; the secret itself is never stored, only its SHA-256."""

    id: str
    user_id: str
    prefix: str
    tier: str
    is_admin: bool
    created: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A freshly created key: the only moment the plaintext exists on our side."""

    key: ApiKey
    plaintext: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    user_id: str
    title: str
    system_prompt: str | None
    model: str | None
    archived: bool
    share_token: str | None
    parent_conversation_id: str | None
    branch_point_message_id: str | None
    created: datetime
    updated: datetime


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of a listing; ``next_cursor`` is None on the last page."""

    items: tuple[Conversation, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    conversation_id: str
    seq: int
    parent_message_id: str | None
    role: Role
    content: str
    status: MessageStatus
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    model: str | None
    request_id: str | None
    created: datetime
    #: The functions an assistant message called (its ``content`` is then the text it
    #: said besides, without the call markup).
    tool_calls: tuple[ToolCall, ...] = ()
    #: The call a ``tool`` message answers; None on every other role.
    tool_call_id: str | None = None

    @property
    def is_open_draft(self) -> bool:
        """True while a reply may still be streaming into this message."""
        return self.status is MessageStatus.INCOMPLETE and self.finish_reason is None

    @property
    def failed_unseen(self) -> bool:
        """A reply that ended with nothing in it and no success: it failed before the
        client got an answer, so a retry may start it anew (see ``claim_reply``)."""
        return (self.status is MessageStatus.INCOMPLETE and not self.content
                and not self.tool_calls and self.finish_reason is not None)


class Rating(enum.StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Feedback:
    """A user's thumbs up or down (and optional comment) on one assistant message; at
    most one per message, replaced when given again."""

    message_id: str
    conversation_id: str
    rating: Rating
    comment: str | None
    created: datetime
    updated: datetime


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A conversation that matched, with the matching messages (oldest first)."""

    conversation: Conversation
    title_matched: bool
    message_ids: tuple[str, ...]
    snippet: str


@dataclass(frozen=True, slots=True)
class SharedMessage:
    role: Role
    content: str
    created: datetime
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class SharedConversation:
    """What a share link shows: no owner, no system prompt, no drafts.

    The message list is the active branch as it stood when the link was made, so later
    turns in the owner's conversation do not appear behind an already published link.
    """

    token: str
    title: str
    messages: tuple[SharedMessage, ...]
    created: datetime


@dataclass(frozen=True, slots=True)
class UsageEvent:
    id: int
    api_key_id: str | None
    user_id: str
    conversation_id: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    latency_ms: float | None
    created: datetime
    request_id: str | None = None
    end_user: str | None = None


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ModerationEvent:
    id: int
    conversation_id: str | None
    message_id: str | None
    stage: ModerationStage
    category: str
    action: str
    detail: str | None
    created: datetime


@dataclass(frozen=True, slots=True)
class Turn:
    """The durable start of a chat turn, as keyed by the client's idempotency key.

    ``replayed`` is True when the key had been seen: the caller must then not generate
    again but resume from ``assistant_message`` / ``response``. A turn of tool results
    (``begin_tool_turn``) has its last ``tool`` message as ``user_message``: the message
    the reply answers.
    """

    idempotency_key: str
    conversation_id: str
    user_message: Message
    assistant_message: Message | None
    response: dict[str, Any] | None
    replayed: bool


@dataclass(frozen=True, slots=True)
class Credentials:
    """What sign-in needs to know about an account."""

    user: User
    password_hash: str | None
    tier: str
    disabled: bool


@dataclass(frozen=True, slots=True)
class WebSession:
    id: str
    user_id: str
    created: datetime
    expires: datetime
    revoked: bool
