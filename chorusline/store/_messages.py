"""Messages as a tree: appends, streaming drafts, branches and their recovery.

A conversation's messages form a tree through ``parent_message_id``; ``seq`` orders
them by creation. Editing a message or regenerating a reply adds a sibling, so no
branch is ever lost, and the branch shown is the path to the newest leaf.
"""

from __future__ import annotations

from collections.abc import Sequence

from chorusline.protocols import InvalidRequest, NotFound, ToolCall
from chorusline.store._checks import check_text
from chorusline.store._sql import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    MESSAGE_VALUES,
    SqlStore,
    new_id,
)
from chorusline.store._tool_calls import check_tool_calls, encode_tool_calls
from chorusline.store.models import (
    ACTIVE_LEAF,
    Conversation,
    Message,
    MessageStatus,
    ParentRef,
    Role,
)

INTERRUPTED = "interrupted"


def parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidRequest(f"unknown role {role!r}", param="role") from None


def parse_status(status: str) -> MessageStatus:
    try:
        return MessageStatus(status)
    except ValueError:
        raise InvalidRequest(f"unknown message status {status!r}", param="status") from None


def _check_tokens(**counts: int | None) -> None:
    for name, value in counts.items():
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidRequest(f"{name} must be a non-negative integer", param=name)


class MessagesMixin(SqlStore):
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
        role, status = parse_role(role), parse_status(status)
        _check_tokens(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            return self._insert_message(
                tx,
                conversation_id,
                role=role,
                content=content,
                parent=parent,
                status=status,
                model=model,
                request_id=request_id,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish_reason,
                tool_calls=tool_calls,
                tool_call_id=tool_call_id,
            )

    def create_draft(
        self,
        user_id: str,
        conversation_id: str,
        *,
        parent: ParentRef = ACTIVE_LEAF,
        model: str | None = None,
        request_id: str | None = None,
    ) -> Message:
        return self.append_message(
            user_id,
            conversation_id,
            role=Role.ASSISTANT,
            content="",
            parent=parent,
            status=MessageStatus.INCOMPLETE,
            model=model,
            request_id=request_id,
        )

    def update_draft(self, conversation_id: str, message_id: str, content: str,
                     tool_calls: Sequence[ToolCall] = ()) -> None:
        check_text(content, "content", max_len=10_000_000)
        calls = encode_tool_calls(check_tool_calls(tool_calls))
        with self._transaction() as tx:
            changed = tx.execute(
                "UPDATE messages SET content = ?, tool_calls = ? WHERE id = ? "
                "AND conversation_id = ? AND role = 'assistant' "
                "AND status = 'incomplete' AND finish_reason IS NULL",
                (content, calls, message_id, conversation_id),
            )
            if changed == 0:
                self._message_in(tx, conversation_id, message_id)  # NotFound if missing
                raise InvalidRequest(f"message {message_id!r} is not an open draft")

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
        status = parse_status(status)
        check_text(finish_reason, "finish_reason", max_len=64, allow_empty=False)
        if model is not None:
            check_text(model, "model", max_len=256, allow_empty=False)
        if content is not None:
            check_text(content, "content", max_len=10_000_000)
        _check_tokens(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        keep_calls = tool_calls is None
        calls = None if tool_calls is None else encode_tool_calls(check_tool_calls(tool_calls))
        with self._transaction() as tx:
            row = tx.fetchone(
                "UPDATE messages SET status = ?, finish_reason = ?, "
                "content = COALESCE(?, content), "
                "tool_calls = CASE WHEN ? THEN tool_calls ELSE ? END, "
                "prompt_tokens = ?, completion_tokens = ?, model = COALESCE(?, model) "
                "WHERE id = ? AND conversation_id = ? "
                "AND status = 'incomplete' AND finish_reason IS NULL "
                f"RETURNING {MESSAGE_COLUMNS}",
                (
                    status.value,
                    finish_reason,
                    content,
                    keep_calls,
                    calls,
                    prompt_tokens,
                    completion_tokens,
                    model,
                    message_id,
                    conversation_id,
                ),
            )
            if row is None:
                self._message_in(tx, conversation_id, message_id)
                raise InvalidRequest(f"message {message_id!r} is not an open draft")
        return self._message(row)

    def mark_interrupted_drafts(self, conversation_id: str | None = None) -> list[Message]:
        where = "status = 'incomplete' AND finish_reason IS NULL"
        params: tuple[object, ...] = (INTERRUPTED,)
        if conversation_id is not None:
            where += " AND conversation_id = ?"
            params += (conversation_id,)
        with self._transaction() as tx:
            rows = tx.fetchall(
                f"UPDATE messages SET finish_reason = ? WHERE {where} RETURNING {MESSAGE_COLUMNS}",
                params,
            )
        return sorted((self._message(r) for r in rows), key=lambda m: (m.conversation_id, m.seq))

    def get_message(self, user_id: str, conversation_id: str, message_id: str) -> Message:
        with self._transaction(write=False) as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            return self._message_in(tx, conversation_id, message_id)

    def get_active_branch(
        self, user_id: str, conversation_id: str, *, leaf_message_id: str | None = None
    ) -> list[Message]:
        with self._transaction(write=False) as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            return self._branch(tx, conversation_id, leaf_message_id)

    def set_active_branch(self, user_id: str, conversation_id: str,
                          message_id: str) -> list[Message]:
        """Show and continue the branch through ``message_id``: its newest descendant
        becomes the active leaf (the page's "2 of 3" switch picks a sibling, and the page
        then shows that sibling's latest continuation). Returns the new active branch.
        ``InvalidRequest`` for a message of another of the user's conversations,
        ``NotFound`` for anyone else's."""
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            row = tx.fetchone("SELECT conversation_id FROM messages WHERE id = ?",
                              (message_id,))
            if row is not None and row["conversation_id"] != conversation_id:
                mine = tx.fetchone(
                    "SELECT id FROM conversations WHERE id = ? AND user_id = ? "
                    "AND deleted_at IS NULL", (row["conversation_id"], user_id))
                if mine is not None:
                    raise InvalidRequest("that message belongs to another conversation",
                                         param="message_id")
            self._message_in(tx, conversation_id, message_id)  # NotFound otherwise
            leaf = tx.fetchone(
                "WITH RECURSIVE below (id, seq) AS ("
                " SELECT id, seq FROM messages WHERE id = ?"
                " UNION ALL"
                " SELECT m.id, m.seq FROM messages m JOIN below b ON m.parent_message_id = b.id"
                ") SELECT id FROM below ORDER BY seq DESC LIMIT 1", (message_id,))
            assert leaf is not None
            tx.execute("UPDATE conversations SET active_leaf_message_id = ? WHERE id = ?",
                       (leaf["id"], conversation_id))
            return self._branch(tx, conversation_id, str(leaf["id"]))

    def get_message_tree(self, user_id: str, conversation_id: str) -> list[Message]:
        with self._transaction(write=False) as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            rows = tx.fetchall(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            )
        return [self._message(r) for r in rows]

    def edit_message(
        self, user_id: str, conversation_id: str, message_id: str, content: str
    ) -> Message:
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            old = self._message_in(tx, conversation_id, message_id)
            return self._insert_message(
                tx,
                conversation_id,
                role=old.role,
                content=content,
                parent=old.parent_message_id,
                status=MessageStatus.COMPLETE,
                tool_calls=old.tool_calls,
                tool_call_id=old.tool_call_id,
            )

    def branch_to_new_conversation(
        self, user_id: str, conversation_id: str, message_id: str, *, title: str | None = None
    ) -> Conversation:
        if title is not None:
            check_text(title, "title", max_len=500)
        _, now_db = self._now()
        with self._transaction() as tx:
            source = self._owned_conversation(tx, user_id, conversation_id)
            path = self._branch(tx, conversation_id, message_id)
            new_cid = new_id()
            tx.execute(
                "INSERT INTO conversations (id, user_id, title, system_prompt, model, archived, "
                "parent_conversation_id, branch_point_message_id, last_seq, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_cid,
                    user_id,
                    source.title if title is None else title,
                    source.system_prompt,
                    source.model,
                    False,
                    conversation_id,
                    message_id,
                    len(path),
                    now_db,
                    now_db,
                ),
            )
            parent: str | None = None
            for seq, old in enumerate(path, start=1):
                new_mid = new_id()
                # Call ids are kept: they tie the copied results to the copied calls.
                tx.execute(
                    f"INSERT INTO messages ({MESSAGE_COLUMNS}) {MESSAGE_VALUES}",
                    (
                        new_mid,
                        new_cid,
                        seq,
                        parent,
                        old.role.value,
                        old.content,
                        old.status.value,
                        old.prompt_tokens,
                        old.completion_tokens,
                        INTERRUPTED if old.is_open_draft else old.finish_reason,
                        old.model,
                        old.request_id,
                        self._ts_in(old.created),
                        encode_tool_calls(old.tool_calls),
                        old.tool_call_id,
                    ),
                )
                parent = new_mid
            row = tx.fetchone(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (new_cid,)
            )
        if row is None:  # pragma: no cover - inserted above in the same transaction
            raise NotFound(f"conversation {new_cid!r} not found")
        return self._conversation(row)
