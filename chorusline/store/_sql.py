"""What the two SQL stores share: a transaction interface, row mapping and helpers.

The SQL in the mixins is written once, with ``?`` placeholders, against a schema that is
identical in both dialects; a backend supplies only connections, the placeholder style,
the case-insensitive LIKE operator and how it stores timestamps. Keeping one copy of
the queries is what lets one contract suite vouch for both.
"""

from __future__ import annotations

import abc
import json
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from chorusline.protocols import NotFound, ToolCall
from chorusline.store._checks import check_text
from chorusline.store._tool_calls import check_tool_fields, decode_tool_calls, encode_tool_calls
from chorusline.store.base import Store
from chorusline.store.models import (
    ACTIVE_LEAF,
    Conversation,
    Message,
    MessageStatus,
    ParentRef,
    Role,
)

Row = dict[str, Any]
Clock = Callable[[], datetime]

MESSAGE_COLUMNS = (
    "id, conversation_id, seq, parent_message_id, role, content, status, prompt_tokens, "
    "completion_tokens, finish_reason, model, request_id, created, tool_calls, tool_call_id"
)
#: One ``?`` per column of ``MESSAGE_COLUMNS``, for an INSERT of a whole message.
MESSAGE_VALUES = "VALUES (" + ", ".join("?" * len(MESSAGE_COLUMNS.split(","))) + ")"
CONVERSATION_COLUMNS = (
    "id, user_id, title, system_prompt, model, archived, share_token, "
    "parent_conversation_id, branch_point_message_id, created, updated"
)


class Tx(Protocol):
    """One open transaction; statements use ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run a statement; returns the affected row count."""
        ...

    def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None: ...

    def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def escape_like(text: str) -> str:
    """Make ``text`` match literally inside a LIKE pattern using ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlStore(Store):
    """The dialect-neutral half of a SQL store; see the module docstring."""

    like_operator: ClassVar[str] = "LIKE"
    #: Appended to a SELECT that must lock its row until the transaction ends (PostgreSQL);
    #: SQLite's ``BEGIN IMMEDIATE`` already serialises writers.
    _for_update: ClassVar[str] = ""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or utcnow

    # -- supplied by a backend -------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self, *, write: bool = True) -> AbstractContextManager[Tx]:
        """Commit on normal exit, roll back on an exception."""

    @abc.abstractmethod
    def _ts_in(self, value: datetime) -> object:
        """A timestamp as a query parameter."""

    @abc.abstractmethod
    def _ts_out(self, raw: Any) -> datetime:
        """A timestamp column's value as an aware UTC datetime."""

    # -- helpers for the mixins ------------------------------------------------------

    def _now(self) -> tuple[datetime, object]:
        """The current time, truncated to what both databases store (microseconds)."""
        now = self._clock().astimezone(UTC)
        return now, self._ts_in(now)

    def _opt_ts(self, raw: Any) -> datetime | None:
        return None if raw is None else self._ts_out(raw)

    @staticmethod
    def _json_out(raw: Any) -> Any:
        return json.loads(raw) if isinstance(raw, str | bytes) else raw

    def _conversation(self, row: Row) -> Conversation:
        return Conversation(
            id=row["id"],
            user_id=row["user_id"],
            title=row["title"],
            system_prompt=row["system_prompt"],
            model=row["model"],
            archived=bool(row["archived"]),
            share_token=row["share_token"],
            parent_conversation_id=row["parent_conversation_id"],
            branch_point_message_id=row["branch_point_message_id"],
            created=self._ts_out(row["created"]),
            updated=self._ts_out(row["updated"]),
        )

    def _message(self, row: Row) -> Message:
        return Message(
            id=row["id"],
            conversation_id=row["conversation_id"],
            seq=int(row["seq"]),
            parent_message_id=row["parent_message_id"],
            role=Role(row["role"]),
            content=row["content"],
            status=MessageStatus(row["status"]),
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            finish_reason=row["finish_reason"],
            model=row["model"],
            request_id=row["request_id"],
            created=self._ts_out(row["created"]),
            tool_calls=decode_tool_calls(row["tool_calls"]),
            tool_call_id=row["tool_call_id"],
        )

    def _owned_conversation(self, tx: Tx, user_id: str, conversation_id: str) -> Conversation:
        row = tx.fetchone(
            f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
            "WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
            (conversation_id, user_id),
        )
        if row is None:
            raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
        return self._conversation(row)

    def _message_in(self, tx: Tx, conversation_id: str, message_id: str) -> Message:
        row = tx.fetchone(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ? AND conversation_id = ?",
            (message_id, conversation_id),
        )
        if row is None:
            raise NotFound(f"message {message_id!r} not found", param="message_id")
        return self._message(row)

    def _active_leaf(self, tx: Tx, conversation_id: str) -> str | None:
        """The leaf of the branch the conversation shows: the one a branch switch chose,
        else the newest message (always a leaf: a child is created after its parent)."""
        chosen = tx.fetchone(
            "SELECT active_leaf_message_id FROM conversations WHERE id = ?", (conversation_id,))
        if chosen is not None and chosen["active_leaf_message_id"] is not None:
            return str(chosen["active_leaf_message_id"])
        row = tx.fetchone(
            "SELECT id FROM messages WHERE conversation_id = ? ORDER BY seq DESC LIMIT 1",
            (conversation_id,),
        )
        return None if row is None else str(row["id"])

    def _branch(self, tx: Tx, conversation_id: str, leaf_id: str | None) -> list[Message]:
        """Root-to-leaf path; by default the active branch (``_active_leaf``)."""
        if leaf_id is None:
            leaf_id = self._active_leaf(tx, conversation_id)
            if leaf_id is None:
                return []
        else:
            self._message_in(tx, conversation_id, leaf_id)
        cols = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))
        rows = tx.fetchall(
            "WITH RECURSIVE path (id, parent_message_id) AS ("
            " SELECT id, parent_message_id FROM messages WHERE id = ? AND conversation_id = ?"
            " UNION ALL"
            " SELECT m.id, m.parent_message_id FROM messages m"
            " JOIN path p ON m.id = p.parent_message_id"
            f") SELECT {cols} FROM messages m JOIN path p ON m.id = p.id ORDER BY m.seq",
            (leaf_id, conversation_id),
        )
        return [self._message(r) for r in rows]

    def _insert_message(
        self,
        tx: Tx,
        conversation_id: str,
        *,
        role: Role,
        content: str,
        parent: ParentRef,
        status: MessageStatus,
        model: str | None = None,
        request_id: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        finish_reason: str | None = None,
        tool_calls: Sequence[ToolCall] = (),
        tool_call_id: str | None = None,
    ) -> Message:
        """Allocate the next seq and insert, inside the caller's transaction.

        Bumping ``conversations.last_seq`` first takes the conversation's row lock (on
        SQLite the whole write lock), so concurrent appends queue up here: each sees the
        previous one's message, seqs stay gap-free (a rollback undoes the bump too) and
        "the active leaf" is well defined.
        """
        check_text(content, "content", max_len=10_000_000)
        tool_calls = check_tool_fields(Role(role).value, tool_calls, tool_call_id)
        now, now_db = self._now()
        # This update takes the conversation's row lock first, so concurrent appends
        # read the leaf one after another (each sees the one before it).
        row = tx.fetchone(
            "UPDATE conversations SET last_seq = last_seq + 1, updated = ? "
            "WHERE id = ? AND deleted_at IS NULL RETURNING last_seq, active_leaf_message_id",
            (now_db, conversation_id),
        )
        if row is None:
            raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
        seq = int(row["last_seq"])
        parent_id: str | None = None
        if parent is ACTIVE_LEAF:
            parent_id = self._active_leaf(tx, conversation_id)
        if row["active_leaf_message_id"] is not None:
            # The new message is the newest: it ends the active branch from now on.
            tx.execute("UPDATE conversations SET active_leaf_message_id = NULL WHERE id = ?",
                       (conversation_id,))
        if parent is not ACTIVE_LEAF:
            parent_id = parent
            if parent_id is not None:
                self._message_in(tx, conversation_id, parent_id)
        message = Message(
            id=new_id(),
            conversation_id=conversation_id,
            seq=seq,
            parent_message_id=parent_id,
            role=Role(role),
            content=content,
            status=MessageStatus(status),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish_reason,
            model=model,
            request_id=request_id,
            created=now,
            tool_calls=tuple(tool_calls),
            tool_call_id=tool_call_id,
        )
        tx.execute(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}) {MESSAGE_VALUES}",
            (
                message.id,
                conversation_id,
                seq,
                parent_id,
                message.role.value,
                content,
                message.status.value,
                prompt_tokens,
                completion_tokens,
                finish_reason,
                model,
                request_id,
                now_db,
                encode_tool_calls(tool_calls),
                tool_call_id,
            ),
        )
        return message
