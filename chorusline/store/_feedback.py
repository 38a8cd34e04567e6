"""Thumbs up / down on assistant messages, with an optional comment.

One row per message (the conversation's owner is the only one who can rate it), so
rating again replaces the rating and keeps when it was first given. Only assistant
messages can be rated: feedback is about what the model said. The rows belong to the
conversation: they are exported with it and, like its messages, are not reachable
through someone else's id (a 404, never a 403).
"""

from __future__ import annotations

from chorusline.protocols import InvalidRequest
from chorusline.store._checks import check_text
from chorusline.store._sql import Row, SqlStore, Tx
from chorusline.store.models import Feedback, Rating, Role

#: The longest comment kept (a paragraph or two; this is not a support ticket).
MAX_COMMENT = 10_000
_COLUMNS = "message_id, conversation_id, rating, comment, created, updated"


class FeedbackMixin(SqlStore):
    def _feedback(self, row: Row) -> Feedback:
        return Feedback(message_id=row["message_id"], conversation_id=row["conversation_id"],
                        rating=Rating(row["rating"]), comment=row["comment"],
                        created=self._ts_out(row["created"]),
                        updated=self._ts_out(row["updated"]))

    def set_feedback(self, user_id: str, conversation_id: str, message_id: str,
                     rating: Rating, comment: str | None = None) -> Feedback:
        if comment is not None:
            check_text(comment, "comment", max_len=MAX_COMMENT)
        _, now_db = self._now()
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            message = self._message_in(tx, conversation_id, message_id)
            if message.role is not Role.ASSISTANT:
                raise InvalidRequest("only an assistant message can be rated",
                                     param="message_id")
            row = tx.fetchone(
                f"INSERT INTO message_feedback ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (message_id) DO UPDATE SET rating = excluded.rating, "
                f"comment = excluded.comment, updated = excluded.updated RETURNING {_COLUMNS}",
                (message_id, conversation_id, Rating(rating).value, comment or None, now_db,
                 now_db))
        assert row is not None
        return self._feedback(row)

    def delete_feedback(self, user_id: str, conversation_id: str, message_id: str) -> bool:
        """Remove the rating; False if there was none."""
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            self._message_in(tx, conversation_id, message_id)
            return tx.execute("DELETE FROM message_feedback WHERE message_id = ?",
                              (message_id,)) > 0

    def list_feedback(self, user_id: str, conversation_id: str) -> list[Feedback]:
        """The conversation's ratings, oldest first."""
        with self._transaction(write=False) as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            return self._feedback_rows(tx, conversation_id)

    def _feedback_rows(self, tx: Tx, conversation_id: str) -> list[Feedback]:
        rows = tx.fetchall(
            f"SELECT {_COLUMNS} FROM message_feedback WHERE conversation_id = ? "
            "ORDER BY created, message_id", (conversation_id,))
        return [self._feedback(r) for r in rows]
