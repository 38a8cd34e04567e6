"""The messages that start a chat turn and the handle its caller streams from."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from chorusline.chat.stream import TokenStream
from chorusline.runtime import SamplingParams


@dataclass(frozen=True)
class TurnRequest:
    """One user message for a stored conversation (sent to its ConversationActor)."""

    user_id: str
    content: str
    idempotency_key: str
    params: SamplingParams = field(default_factory=SamplingParams)
    priority: int = 0
    tenant: str = "default"
    api_key_id: str | None = None
    custom_instructions: str | None = None
    #: Edit: the new user message becomes a sibling of this one (the old branch is kept).
    edit_message_id: str | None = None
    #: Regenerate: a new reply to the user message this assistant message answered.
    regenerate_message_id: str | None = None


@dataclass
class TurnHandle:
    """What the caller gets back at once: ids of the durable messages and the stream.

    ``replayed`` means the idempotency key had been seen: the stream then carries the
    stored reply instead of a new generation.
    """

    request_id: str
    stream: TokenStream
    conversation_id: str | None = None
    user_message_id: str | None = None
    assistant_message_id: str | None = None
    replayed: bool = False
    prompt_tokens: int = 0
    rate_headers: dict[str, str] = field(default_factory=dict)
    #: Set once the reply is final in the store and, if complete, in the hot cache (at
    #: once for replays and refusals).
    persisted: trio.Event = field(default_factory=trio.Event)

    def __post_init__(self) -> None:
        if self.replayed or self.conversation_id is None:
            self.persisted.set()
