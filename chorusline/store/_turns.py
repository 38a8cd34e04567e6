"""Idempotent turns: a retried request finds its original turn instead of a new one.

The key row and the user message are written in one transaction, and the key is
inserted first with ``ON CONFLICT DO NOTHING``: on PostgreSQL a concurrent duplicate
blocks on the unique index until the first transaction ends and then sees its row; on
SQLite writers are serialised anyway. Either way exactly one user message exists per
key. A fingerprint of the request catches a key reused for a different question.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from chorusline.protocols import InvalidRequest, NotFound
from chorusline.store._checks import check_text
from chorusline.store._sql import MESSAGE_COLUMNS, Row, SqlStore, Tx
from chorusline.store.models import (
    ACTIVE_LEAF,
    Message,
    MessageStatus,
    ParentRef,
    Role,
    Turn,
)

_TURN_COLUMNS = (
    "key, conversation_id, request_hash, user_message_id, assistant_message_id, response"
)


def request_fingerprint(conversation_id: str, content: str, parent: ParentRef) -> str:
    parent_repr = "<active-leaf>" if parent is ACTIVE_LEAF else parent
    raw = json.dumps([conversation_id, content, parent_repr]).encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()


class TurnsMixin(SqlStore):
    def _turn(self, tx: Tx, row: Row, *, replayed: bool) -> Turn:
        conversation_id = str(row["conversation_id"])
        assistant_id = row["assistant_message_id"]
        response = self._json_out(row["response"])
        return Turn(
            idempotency_key=str(row["key"]),
            conversation_id=conversation_id,
            user_message=self._message_in(tx, conversation_id, str(row["user_message_id"])),
            assistant_message=None
            if assistant_id is None
            else self._message_in(tx, conversation_id, str(assistant_id)),
            response=response if isinstance(response, dict) else None,
            replayed=replayed,
        )

    def _claim_key(self, tx: Tx, user_id: str, key: str, conversation_id: str,
                   fingerprint: str) -> Turn | None:
        """None when ``key`` is new (this transaction now holds it); else the turn the
        key started, if this request is the one it was used for."""
        _, now_db = self._now()
        fresh = tx.fetchone(
            "INSERT INTO idempotency_keys (user_id, key, conversation_id, request_hash, "
            "created) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, key) DO NOTHING "
            "RETURNING key",
            (user_id, key, conversation_id, fingerprint, now_db),
        )
        if fresh is not None:
            return None
        row = tx.fetchone(
            f"SELECT {_TURN_COLUMNS} FROM idempotency_keys WHERE user_id = ? AND key = ?",
            (user_id, key),
        )
        assert row is not None  # keys are only deleted by purge, never mid-turn
        if row["request_hash"] != fingerprint:
            raise InvalidRequest("idempotency key was already used for a different request",
                                 param="idempotency_key")
        return self._turn(tx, row, replayed=True)

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
        check_text(idempotency_key, "idempotency_key", max_len=255, allow_empty=False)
        check_text(content, "content", max_len=10_000_000)
        fingerprint = request_fingerprint(conversation_id, content, parent)
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            seen = self._claim_key(tx, user_id, idempotency_key, conversation_id, fingerprint)
            if seen is not None:
                return seen
            message = self._insert_message(
                tx,
                conversation_id,
                role=Role.USER,
                content=content,
                parent=parent,
                status=MessageStatus.COMPLETE,
                request_id=request_id,
            )
            tx.execute(
                "UPDATE idempotency_keys SET user_message_id = ? WHERE user_id = ? AND key = ?",
                (message.id, user_id, idempotency_key),
            )
        return Turn(
            idempotency_key=idempotency_key,
            conversation_id=conversation_id,
            user_message=message,
            assistant_message=None,
            response=None,
            replayed=False,
        )

    def claim_reply(
        self,
        user_id: str,
        idempotency_key: str,
        *,
        model: str | None = None,
        request_id: str | None = None,
    ) -> tuple[Message, bool]:
        with self._transaction() as tx:
            row = tx.fetchone(
                f"SELECT {_TURN_COLUMNS} FROM idempotency_keys WHERE user_id = ? AND key = ?"
                + self._for_update,
                (user_id, idempotency_key),
            )
            if row is None or row["user_message_id"] is None:
                raise NotFound("unknown idempotency key", param="idempotency_key")
            conversation_id = str(row["conversation_id"])
            current = row["assistant_message_id"]
            if current is not None:
                reply = self._message_in(tx, conversation_id, str(current))
                if not reply.failed_unseen:
                    return reply, False
                # It failed before anyone saw it: reopen it as the new draft (same id and
                # seq, so the conversation keeps its gap-free sequence).
                row = tx.fetchone(
                    "UPDATE messages SET finish_reason = NULL, model = ?, request_id = ? "
                    f"WHERE id = ? AND conversation_id = ? RETURNING {MESSAGE_COLUMNS}",
                    (model, request_id, reply.id, conversation_id),
                )
                assert row is not None
                return self._message(row), True
            draft = self._insert_message(
                tx,
                conversation_id,
                role=Role.ASSISTANT,
                content="",
                parent=str(row["user_message_id"]),
                status=MessageStatus.INCOMPLETE,
                model=model,
                request_id=request_id,
            )
            tx.execute(
                "UPDATE idempotency_keys SET assistant_message_id = ? "
                "WHERE user_id = ? AND key = ?",
                (draft.id, user_id, idempotency_key),
            )
            return draft, True

    def record_turn_result(
        self,
        user_id: str,
        idempotency_key: str,
        *,
        assistant_message_id: str | None = None,
        response: dict[str, Any] | None = None,
    ) -> Turn:
        try:
            response_json = None if response is None else json.dumps(response)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest("response must be JSON-serialisable", param="response") from exc
        with self._transaction() as tx:
            row = tx.fetchone(
                f"SELECT {_TURN_COLUMNS} FROM idempotency_keys WHERE user_id = ? AND key = ?",
                (user_id, idempotency_key),
            )
            if row is None:
                raise NotFound("unknown idempotency key", param="idempotency_key")
            if assistant_message_id is not None:
                self._message_in(tx, str(row["conversation_id"]), assistant_message_id)
            row = tx.fetchone(
                "UPDATE idempotency_keys SET "
                "assistant_message_id = COALESCE(?, assistant_message_id), "
                "response = COALESCE(?, response) "
                f"WHERE user_id = ? AND key = ? RETURNING {_TURN_COLUMNS}",
                (assistant_message_id, response_json, user_id, idempotency_key),
            )
            assert row is not None
            return self._turn(tx, row, replayed=False)

    def purge_idempotency_keys(self, older_than: datetime) -> int:
        with self._transaction() as tx:
            return tx.execute(
                "DELETE FROM idempotency_keys WHERE created < ?", (self._ts_in(older_than),)
            )
