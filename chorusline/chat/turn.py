"""A chat turn as its caller sees it: the one request type in, the handle back.

``ChatRequest`` is what the web layer (or an embedding application) builds; ``Turn`` is
the same request on its way through the actors, with the request id minted once at the
door (``ChatService.chat``): that id is the ``chatcmpl-`` id, the ``X-Request-Id`` header,
the engine's request id, the rate-limit lease and the usage row's id, and a replay
carries the original turn's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from chorusline.chat.principal import Principal
from chorusline.chat.stream import TokenStream
from chorusline.protocols import ChatMessage, FunctionTool, SamplingParams, ToolChoice


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn. With ``conversation_id`` the turn is stored and ``content`` is the
    user's new message; without it ``messages`` is the whole (stateless) conversation
    (``ChatMessage``s); with ``prompt`` instead it is a raw
    completion: the text (or token ids) is the model's input as it is, no template.

    ``idempotency_key`` (stored turns) selects a replay: a retry with the same key
    returns the original turn instead of a new one. ``tools`` and ``tool_choice`` offer
    the model functions to call (``chat.tools``); a stored turn may carry
    ``tool_results`` (``tool`` messages answering the last reply's calls) instead of
    ``content``. ``truncate``: a stateless history too long for the window loses its
    oldest turns instead of being refused. ``model``: a served model's name or alias
    (None: the default; ``chat.served``).
    """

    params: SamplingParams = field(default_factory=SamplingParams)
    conversation_id: str | None = None
    content: str | None = None
    messages: tuple[ChatMessage, ...] = ()
    tool_results: tuple[ChatMessage, ...] = ()
    prompt: str | tuple[int, ...] | None = None
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=lambda: ToolChoice("none"))
    parallel_tool_calls: bool = True
    truncate: bool = False
    idempotency_key: str | None = None
    custom_instructions: str | None = None
    #: Edit: the new user message becomes a sibling of this one (the old branch is kept).
    edit_message_id: str | None = None
    #: Regenerate: a new reply to the user message this assistant message answered.
    regenerate_message_id: str | None = None
    #: The caller's own end user (OpenAI's ``user``), kept on the turn's usage row.
    end_user: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        # ``(role, content)`` pairs are taken too (embedding code and tests write them).
        object.__setattr__(self, "messages", tuple(ChatMessage.of(m) for m in self.messages))
        object.__setattr__(self, "tool_results", tuple(self.tool_results))
        if isinstance(self.prompt, list):
            object.__setattr__(self, "prompt", tuple(self.prompt))


@dataclass(frozen=True)
class Turn:
    """A ``ChatRequest`` inside the actors: who asked, the request id minted for it, and
    the models that may answer it, in order (the one asked for, then its fallbacks:
    ``chat.router``)."""

    principal: Principal
    request: ChatRequest
    request_id: str
    models: tuple[str, ...]
    custom_instructions: str | None = None


@dataclass
class TurnHandle:
    """What the caller gets back at once: ids of the durable messages and the stream.

    ``replayed`` means the idempotency key had been seen: the stream then carries the
    stored reply instead of a new generation, and ``request_id`` is the original's.
    """

    request_id: str
    stream: TokenStream
    conversation_id: str | None = None
    user_message_id: str | None = None
    assistant_message_id: str | None = None
    replayed: bool = False
    prompt_tokens: int = 0
    #: The model that answers (a replay: the one that answered then).
    model: str = ""
    #: The model asked for, when another answered instead (``chat.router``).
    fallback_from: str | None = None
    rate_headers: dict[str, str] = field(default_factory=dict)
    #: Set once the reply is final in the store and, if complete, in the hot cache (at
    #: once for replays and refusals).
    persisted: trio.Event = field(default_factory=trio.Event)

    def __post_init__(self) -> None:
        if self.replayed:
            self.persisted.set()
