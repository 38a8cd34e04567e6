"""The contract every durable store fulfils; the chat service depends on this only.

Calls are synchronous and thread-safe: actors run them on worker threads. Every method
that reads or changes a conversation takes the caller's ``user_id`` and answers
``NotFound`` for conversations that are someone else's or deleted, so a bug upstream
cannot leak another user's data. Ordinary misuse raises ``InvalidRequest`` or
``NotFound`` from ``chorusline.protocols``, never a raw driver exception.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chorusline.protocols import ToolCall
from chorusline.store._tool_api import ToolTurns
from chorusline.store.models import (
    ACTIVE_LEAF,
    ApiKey,
    Conversation,
    ConversationPage,
    Credentials,
    Feedback,
    IssuedApiKey,
    Message,
    MessageStatus,
    ModerationEvent,
    ModerationStage,
    ParentRef,
    Rating,
    Role,
    SearchHit,
    SharedConversation,
    Turn,
    UsageEvent,
    UsageTotals,
    User,
    WebSession,
)


class Store(ToolTurns, abc.ABC):
    """Users, keys, conversations, message trees, events and idempotent turns."""

    # -- lifecycle -------------------------------------------------------------------

    @abc.abstractmethod
    def ping(self) -> None:
        """Round-trip to the database; raises if it cannot answer (used by /ready)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    # -- users and API keys ----------------------------------------------------------

    @abc.abstractmethod
    def create_user(self, name: str, *, custom_instructions: str | None = None) -> User: ...

    @abc.abstractmethod
    def get_user(self, user_id: str) -> User:
        """Raises ``NotFound``."""

    @abc.abstractmethod
    def list_users(self) -> list[User]:
        """Every user, oldest first (names need not be unique); for admin tooling."""

    @abc.abstractmethod
    def set_custom_instructions(self, user_id: str, instructions: str | None) -> User: ...

    @abc.abstractmethod
    def create_api_key(
        self, user_id: str, *, tier: str = "free", is_admin: bool = False
    ) -> IssuedApiKey:
        """The plaintext is returned here once and never again; only its hash is kept."""

    @abc.abstractmethod
    def authenticate_api_key(self, plaintext: str) -> ApiKey | None:
        """The key's record, or None when unknown or revoked (no hint which)."""

    @abc.abstractmethod
    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        """All of a user's keys, revoked ones included, oldest first."""

    @abc.abstractmethod
    def has_admin_key(self) -> bool:
        """Whether any live admin key exists (the server makes one on first start)."""

    @abc.abstractmethod
    def revoke_api_key(self, user_id: str, key_id: str) -> ApiKey:
        """Idempotent; raises ``NotFound`` for another user's key."""

    # -- conversations ---------------------------------------------------------------

    @abc.abstractmethod
    def create_conversation(
        self,
        user_id: str,
        *,
        title: str = "",
        system_prompt: str | None = None,
        model: str | None = None,
    ) -> Conversation: ...

    @abc.abstractmethod
    def get_conversation(self, user_id: str, conversation_id: str) -> Conversation:
        """Raises ``NotFound`` if missing, deleted or not ``user_id``'s."""

    @abc.abstractmethod
    def list_conversations(
        self,
        user_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        archived: bool | None = False,
    ) -> ConversationPage:
        """Newest ``updated`` first (ties by id); ``archived=None`` lists both kinds.

        The cursor is opaque and stable under concurrent inserts: a page never repeats
        or skips a conversation that existed when the first page was read.
        """

    @abc.abstractmethod
    def title_if_untitled(self, user_id: str, conversation_id: str, title: str) -> bool:
        """Set an automatic title unless the conversation has one by then."""

    @abc.abstractmethod
    def rename_conversation(
        self, user_id: str, conversation_id: str, title: str
    ) -> Conversation: ...

    @abc.abstractmethod
    def set_archived(self, user_id: str, conversation_id: str, archived: bool) -> Conversation: ...

    @abc.abstractmethod
    def set_system_prompt(
        self, user_id: str, conversation_id: str, system_prompt: str | None
    ) -> Conversation: ...

    @abc.abstractmethod
    def delete_conversation(self, user_id: str, conversation_id: str) -> None:
        """Soft delete: the rows stay (usage accounting refers to them) but vanish from
        every read, and any share link stops working."""

    @abc.abstractmethod
    def search_conversations(self, user_id: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Case-insensitive substring match on titles and message contents, newest
        conversation first; ``%`` and ``_`` in ``query`` match literally."""

    # -- messages --------------------------------------------------------------------

    @abc.abstractmethod
    def append_message(
        self,
        user_id: str,
        conversation_id: str,
        *,
        role: Role,
        content: str,
        parent: ParentRef = ACTIVE_LEAF,
        status: MessageStatus = MessageStatus.COMPLETE,
        model: str | None = None,
        request_id: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        finish_reason: str | None = None,
        tool_calls: Sequence[ToolCall] = (),
        tool_call_id: str | None = None,
    ) -> Message:
        """Adds a message with the next ``seq``, allocated atomically (gap-free and
        monotonic even under concurrent appends). ``parent`` defaults to the active
        leaf; ``None`` starts a new root; a message id branches from that message.
        ``tool_calls`` only on an assistant message; ``tool_call_id`` on every tool one."""

    @abc.abstractmethod
    def create_draft(
        self,
        user_id: str,
        conversation_id: str,
        *,
        parent: ParentRef = ACTIVE_LEAF,
        model: str | None = None,
        request_id: str | None = None,
    ) -> Message:
        """An empty ``incomplete`` assistant message that a stream fills in; persisting
        it before the first token means a crash leaves a visible, marked reply.
        Regenerating a reply is ``create_draft(parent=old_reply.parent_message_id)``."""

    @abc.abstractmethod
    def update_draft(self, conversation_id: str, message_id: str, content: str,
                     tool_calls: Sequence[ToolCall] = ()) -> None:
        """Replace an open draft's content and calls so far; ``InvalidRequest`` once it
        is finalised."""

    @abc.abstractmethod
    def finalize_message(
        self,
        conversation_id: str,
        message_id: str,
        *,
        status: MessageStatus,
        finish_reason: str,
        content: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        tool_calls: Sequence[ToolCall] | None = None,
        model: str | None = None,
    ) -> Message:
        """Close an open draft; ``content=None`` (``tool_calls=None``, ``model=None``)
        keeps the last streamed content (calls, the model named when it was claimed)."""

    @abc.abstractmethod
    def mark_interrupted_drafts(self, conversation_id: str | None = None) -> list[Message]:
        """After a crash: close every open draft (of one conversation, or all) as
        ``incomplete`` with finish reason ``"interrupted"``; returns them. With several
        nodes on one database, pass the conversation id: "all" would also close drafts
        that another node is still streaming."""

    @abc.abstractmethod
    def get_message(self, user_id: str, conversation_id: str, message_id: str) -> Message: ...

    @abc.abstractmethod
    def get_active_branch(
        self, user_id: str, conversation_id: str, *, leaf_message_id: str | None = None
    ) -> list[Message]:
        """Root-to-leaf path ending at ``leaf_message_id`` or, by default, at the most
        recently created message (the branch the user last extended)."""

    @abc.abstractmethod
    def set_active_branch(self, user_id: str, conversation_id: str,
                          message_id: str) -> list[Message]:
        """Make the branch through ``message_id`` (to its newest descendant) the one the
        conversation shows and continues; returns it."""

    @abc.abstractmethod
    def get_message_tree(self, user_id: str, conversation_id: str) -> list[Message]:
        """Every message of every branch, by ``seq``; ``parent_message_id`` links them."""

    @abc.abstractmethod
    def edit_message(
        self, user_id: str, conversation_id: str, message_id: str, content: str
    ) -> Message:
        """A new sibling of ``message_id`` (same parent and role) with ``content``; the
        old branch is kept and stays reachable through ``get_message_tree``."""

    @abc.abstractmethod
    def branch_to_new_conversation(
        self, user_id: str, conversation_id: str, message_id: str, *, title: str | None = None
    ) -> Conversation:
        """Copy the path root..``message_id`` into a new conversation that records
        where it came from (``parent_conversation_id``, ``branch_point_message_id``)."""

    # -- sharing and export ----------------------------------------------------------

    @abc.abstractmethod
    def share_conversation(self, user_id: str, conversation_id: str) -> SharedConversation:
        """A new share token and the snapshot it shows; an older token is revoked."""

    @abc.abstractmethod
    def revoke_share(self, user_id: str, conversation_id: str) -> None: ...

    @abc.abstractmethod
    def get_shared(self, token: str) -> SharedConversation:
        """Raises ``NotFound`` for unknown, revoked or deleted shares."""

    @abc.abstractmethod
    def export_conversation(self, user_id: str, conversation_id: str) -> dict[str, Any]:
        """The conversation and its whole message tree as JSON-serialisable data."""

    # -- sign-in ---------------------------------------------------------------------

    @abc.abstractmethod
    def credentials(self, name: str) -> Credentials | None:
        """The account called ``name`` that can sign in, if any."""

    @abc.abstractmethod
    def user_account(self, user_id: str) -> Credentials: ...

    @abc.abstractmethod
    def set_password(self, user_id: str, password_hash: str) -> None:
        """Also ends the account's sessions; refuses a name another account signs in
        with."""

    @abc.abstractmethod
    def set_user_tier(self, user_id: str, tier: str) -> None: ...

    @abc.abstractmethod
    def set_disabled(self, user_id: str, disabled: bool) -> None: ...

    @abc.abstractmethod
    def create_web_session(self, user_id: str, expires: datetime) -> WebSession: ...

    @abc.abstractmethod
    def web_session(self, session_id: str) -> WebSession | None: ...

    @abc.abstractmethod
    def extend_web_session(self, session_id: str, expires: datetime) -> None: ...

    @abc.abstractmethod
    def revoke_web_session(self, session_id: str) -> None: ...

    @abc.abstractmethod
    def server_secret(self, name: str) -> str:
        """A random secret shared by every process over this store."""

    # -- feedback --------------------------------------------------------------------

    @abc.abstractmethod
    def set_feedback(self, user_id: str, conversation_id: str, message_id: str,
                     rating: Rating, comment: str | None = None) -> Feedback:
        """Rate an assistant message (replacing an earlier rating); ``InvalidRequest``
        for any other role, ``NotFound`` for someone else's message."""

    @abc.abstractmethod
    def delete_feedback(self, user_id: str, conversation_id: str, message_id: str) -> bool:
        """Remove the message's rating; whether there was one."""

    @abc.abstractmethod
    def list_feedback(self, user_id: str, conversation_id: str) -> list[Feedback]: ...

    # -- events ----------------------------------------------------------------------

    @abc.abstractmethod
    def record_usage(
        self,
        *,
        user_id: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        api_key_id: str | None = None,
        conversation_id: str | None = None,
        ttft_ms: float | None = None,
        latency_ms: float | None = None,
        request_id: str | None = None,
        end_user: str | None = None,
    ) -> UsageEvent: ...

    @abc.abstractmethod
    def list_usage(
        self,
        *,
        user_id: str | None = None,
        api_key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[UsageEvent]:
        """Newest first; ``since`` inclusive, ``until`` exclusive."""

    @abc.abstractmethod
    def usage_totals(
        self,
        *,
        user_id: str | None = None,
        api_key_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> UsageTotals: ...

    @abc.abstractmethod
    def record_moderation(
        self,
        *,
        stage: ModerationStage,
        category: str,
        action: str,
        conversation_id: str | None = None,
        message_id: str | None = None,
        detail: str | None = None,
    ) -> ModerationEvent: ...

    @abc.abstractmethod
    def list_moderation(
        self,
        *,
        conversation_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[ModerationEvent]:
        """Newest first."""

    # -- idempotent turns ------------------------------------------------------------

    @abc.abstractmethod
    def begin_turn(
        self,
        user_id: str,
        conversation_id: str,
        idempotency_key: str,
        *,
        content: str,
        parent: ParentRef = ACTIVE_LEAF,
        request_id: str | None = None,
    ) -> Turn:
        """Commit the user message of a turn, once per ``(user_id, idempotency_key)``.

        A retry with the same key returns the original turn (``replayed=True``) and
        writes nothing; the same key with a different conversation or content is an
        ``InvalidRequest``, since replaying it would silently answer another question.
        """

    @abc.abstractmethod
    def claim_reply(
        self,
        user_id: str,
        idempotency_key: str,
        *,
        model: str | None = None,
        request_id: str | None = None,
    ) -> tuple[Message, bool]:
        """The reply of a turn, made exactly once: ``(draft, True)`` when this call made
        (and linked) a new draft answering the key's user message, ``(reply, False)``
        when a reply exists already. A reply that ended with no content and no success
        (a failure before the client was answered) is reopened as the new draft, so a retry
        starts the answer anew. Atomic: of concurrent claims exactly one makes a draft."""

    @abc.abstractmethod
    def record_turn_result(
        self,
        user_id: str,
        idempotency_key: str,
        *,
        assistant_message_id: str | None = None,
        response: dict[str, Any] | None = None,
    ) -> Turn:
        """Attach the reply (draft id and/or final response body) so retries find it."""

    @abc.abstractmethod
    def purge_idempotency_keys(self, older_than: datetime) -> int:
        """Forget keys created before ``older_than``; returns how many went."""
