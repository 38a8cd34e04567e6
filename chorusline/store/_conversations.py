"""Conversation records: create, read, list with a cursor, change, soft delete, search."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

from chorusline.protocols import InvalidRequest, NotFound
from chorusline.store._checks import check_limit, check_text
from chorusline.store._sql import CONVERSATION_COLUMNS, SqlStore, escape_like, new_id
from chorusline.store.models import Conversation, ConversationPage, SearchHit

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_TITLE_MAX = 500
_SNIPPET_CHARS = 160


def encode_cursor(updated: datetime, conversation_id: str) -> str:
    """An opaque keyset cursor: the sort key of the last item shown.

    Microseconds are integers so the ``updated = ?`` tie-break compares exactly.
    """
    raw = json.dumps([(updated - _EPOCH) // _US, conversation_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, conversation_id = json.loads(raw)
        if not isinstance(micros, int) or not isinstance(conversation_id, str):
            raise ValueError(cursor)
        return _EPOCH + micros * _US, conversation_id
    except (ValueError, TypeError, binascii.Error, OverflowError) as exc:
        raise InvalidRequest("malformed cursor", param="cursor") from exc


def _snippet(content: str, query: str) -> str:
    at = content.lower().find(query.lower())
    start = max(0, at - _SNIPPET_CHARS // 4) if at >= 0 else 0
    return content[start : start + _SNIPPET_CHARS]


class ConversationsMixin(SqlStore):
    def create_conversation(
        self,
        user_id: str,
        *,
        title: str = "",
        system_prompt: str | None = None,
        model: str | None = None,
    ) -> Conversation:
        check_text(title, "title", max_len=_TITLE_MAX)
        if system_prompt is not None:
            check_text(system_prompt, "system_prompt", max_len=1_000_000)
        now, now_db = self._now()
        conversation = Conversation(
            id=new_id(),
            user_id=user_id,
            title=title,
            system_prompt=system_prompt,
            model=model,
            archived=False,
            share_token=None,
            parent_conversation_id=None,
            branch_point_message_id=None,
            created=now,
            updated=now,
        )
        with self._transaction() as tx:
            if tx.fetchone("SELECT 1 AS one FROM users WHERE id = ?", (user_id,)) is None:
                raise NotFound(f"user {user_id!r} not found", param="user_id")
            tx.execute(
                "INSERT INTO conversations (id, user_id, title, system_prompt, model, "
                "archived, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation.id, user_id, title, system_prompt, model, False, now_db, now_db),
            )
        return conversation

    def get_conversation(self, user_id: str, conversation_id: str) -> Conversation:
        with self._transaction(write=False) as tx:
            return self._owned_conversation(tx, user_id, conversation_id)

    def list_conversations(
        self,
        user_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        archived: bool | None = False,
    ) -> ConversationPage:
        check_limit(limit)
        where = ["user_id = ?", "deleted_at IS NULL"]
        params: list[object] = [user_id]
        if archived is not None:
            where.append("archived = ?")
            params.append(archived)
        if cursor is not None:
            updated, last_id = decode_cursor(cursor)
            ts = self._ts_in(updated)
            where.append("(updated < ? OR (updated = ? AND id < ?))")
            params += [ts, ts, last_id]
        params.append(limit + 1)
        with self._transaction(write=False) as tx:
            rows = tx.fetchall(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {' AND '.join(where)} "
                "ORDER BY updated DESC, id DESC LIMIT ?",
                params,
            )
        items = tuple(self._conversation(r) for r in rows[:limit])
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].updated, items[-1].id) if more else None
        return ConversationPage(items=items, next_cursor=next_cursor)

    def _update_conversation(
        self, user_id: str, conversation_id: str, assignments: str, params: tuple[object, ...]
    ) -> Conversation:
        _, now_db = self._now()
        with self._transaction() as tx:
            row = tx.fetchone(
                f"UPDATE conversations SET {assignments}, updated = ? "
                "WHERE id = ? AND user_id = ? AND deleted_at IS NULL "
                f"RETURNING {CONVERSATION_COLUMNS}",
                (*params, now_db, conversation_id, user_id),
            )
        if row is None:
            raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")
        return self._conversation(row)

    def rename_conversation(self, user_id: str, conversation_id: str, title: str) -> Conversation:
        check_text(title, "title", max_len=_TITLE_MAX)
        return self._update_conversation(user_id, conversation_id, "title = ?", (title,))

    def title_if_untitled(self, user_id: str, conversation_id: str, title: str) -> bool:
        """Give an untitled conversation ``title`` (an automatic one); False when it has a
        title by then, so a rename by its owner always wins. ``updated`` is left alone:
        naming a conversation is no activity in it."""
        check_text(title, "title", max_len=_TITLE_MAX)
        with self._transaction() as tx:
            return tx.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND user_id = ? "
                "AND title = '' AND deleted_at IS NULL",
                (title, conversation_id, user_id)) > 0

    def set_archived(self, user_id: str, conversation_id: str, archived: bool) -> Conversation:
        return self._update_conversation(
            user_id, conversation_id, "archived = ?", (bool(archived),)
        )

    def set_system_prompt(
        self, user_id: str, conversation_id: str, system_prompt: str | None
    ) -> Conversation:
        if system_prompt is not None:
            check_text(system_prompt, "system_prompt", max_len=1_000_000)
        return self._update_conversation(
            user_id, conversation_id, "system_prompt = ?", (system_prompt,)
        )

    def delete_conversation(self, user_id: str, conversation_id: str) -> None:
        _, now_db = self._now()
        with self._transaction() as tx:
            changed = tx.execute(
                "UPDATE conversations SET deleted_at = ?, share_token = NULL, "
                "share_leaf_message_id = NULL, share_created = NULL "
                "WHERE id = ? AND user_id = ? AND deleted_at IS NULL",
                (now_db, conversation_id, user_id),
            )
        if changed == 0:
            raise NotFound(f"conversation {conversation_id!r} not found", param="conversation_id")

    def search_conversations(self, user_id: str, query: str, *, limit: int = 20) -> list[SearchHit]:
        check_text(query, "query", max_len=1000, allow_empty=False)
        check_limit(limit, maximum=100)
        pattern = f"%{escape_like(query)}%"
        like = f"{self.like_operator} ? ESCAPE '\\'"
        cols = ", ".join(f"c.{c.strip()}" for c in CONVERSATION_COLUMNS.split(","))
        with self._transaction(write=False) as tx:
            rows = tx.fetchall(
                f"SELECT {cols} FROM conversations c "
                "WHERE c.user_id = ? AND c.deleted_at IS NULL "
                f"AND (c.title {like} OR EXISTS (SELECT 1 FROM messages m "
                f"WHERE m.conversation_id = c.id AND m.content {like})) "
                "ORDER BY c.updated DESC, c.id DESC LIMIT ?",
                (user_id, pattern, pattern, limit),
            )
            hits = []
            for row in rows:
                conversation = self._conversation(row)
                matches = tx.fetchall(
                    "SELECT id, content FROM messages "
                    f"WHERE conversation_id = ? AND content {like} ORDER BY seq LIMIT 20",
                    (conversation.id, pattern),
                )
                title_matched = query.lower() in conversation.title.lower()
                snippet = (
                    _snippet(str(matches[0]["content"]), query) if matches else conversation.title
                )
                hits.append(
                    SearchHit(
                        conversation=conversation,
                        title_matched=title_matched,
                        message_ids=tuple(str(m["id"]) for m in matches),
                        snippet=snippet,
                    )
                )
        return hits
