"""Read-only share links and whole-conversation export.

The export carries the conversation's feedback too (so ``SharingMixin`` builds on
``FeedbackMixin``). A share link pins the leaf of the active branch at the moment it was made; since
messages on a path never change once final, the linked view is a stable snapshot
without copying rows. Only complete user and assistant messages are shown: a share must
not publish the system prompt, a blocked reply or a half-streamed draft.
"""

from __future__ import annotations

import secrets
from typing import Any

from chorusline.protocols import NotFound
from chorusline.store._feedback import FeedbackMixin
from chorusline.store._sql import MESSAGE_COLUMNS
from chorusline.store.models import (
    Message,
    MessageStatus,
    Role,
    SharedConversation,
    SharedMessage,
)

EXPORT_FORMAT = "chorusline.conversation.v1"


def _shared_messages(path: list[Message]) -> tuple[SharedMessage, ...]:
    return tuple(
        SharedMessage(role=m.role, content=m.content, created=m.created,
                      tool_calls=m.tool_calls, tool_call_id=m.tool_call_id)
        for m in path
        if m.role is not Role.SYSTEM and m.status is MessageStatus.COMPLETE
    )


def _message_dict(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "seq": m.seq,
        "parent_message_id": m.parent_message_id,
        "role": m.role.value,
        "content": m.content,
        "status": m.status.value,
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "finish_reason": m.finish_reason,
        "model": m.model,
        "request_id": m.request_id,
        "created": m.created.isoformat(),
        # OpenAI's shape; ``arguments`` is the JSON text the model wrote, verbatim.
        "tool_calls": [call.wire() for call in m.tool_calls],
        "tool_call_id": m.tool_call_id,
    }


class SharingMixin(FeedbackMixin):
    def share_conversation(self, user_id: str, conversation_id: str) -> SharedConversation:
        """A link to a snapshot of the conversation as it is now (its active branch,
        finished messages only). Sharing again issues a new link with a fresh snapshot
        and revokes the old one: whoever holds the old link never sees messages written
        after the owner shared it, and the owner has one link to think about."""
        _, now_db = self._now()
        token = secrets.token_urlsafe(24)
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            path = self._branch(tx, conversation_id, None)
            tx.execute(
                "UPDATE conversations SET share_token = ?, share_leaf_message_id = ?, "
                "share_created = ? WHERE id = ?",
                (token, path[-1].id if path else None, now_db, conversation_id),
            )
        return self.get_shared(token)

    def revoke_share(self, user_id: str, conversation_id: str) -> None:
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            tx.execute(
                "UPDATE conversations SET share_token = NULL, share_leaf_message_id = NULL, "
                "share_created = NULL WHERE id = ?",
                (conversation_id,),
            )

    def get_shared(self, token: str) -> SharedConversation:
        if not isinstance(token, str) or not token:
            raise NotFound("share not found", param="token")
        with self._transaction(write=False) as tx:
            row = tx.fetchone(
                "SELECT id, title, share_leaf_message_id, share_created FROM conversations "
                "WHERE share_token = ? AND deleted_at IS NULL",
                (token,),
            )
            if row is None:
                raise NotFound("share not found", param="token")
            leaf = row["share_leaf_message_id"]
            path = [] if leaf is None else self._branch(tx, str(row["id"]), str(leaf))
        return SharedConversation(
            token=token,
            title=str(row["title"]),
            messages=_shared_messages(path),
            created=self._ts_out(row["share_created"]),
        )

    def export_conversation(self, user_id: str, conversation_id: str) -> dict[str, Any]:
        with self._transaction(write=False) as tx:
            c = self._owned_conversation(tx, user_id, conversation_id)
            rows = tx.fetchall(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            )
            messages = [self._message(r) for r in rows]
            active = self._branch(tx, conversation_id, None)
            feedback = self._feedback_rows(tx, conversation_id)
        return {
            "format": EXPORT_FORMAT,
            "conversation": {
                "id": c.id,
                "title": c.title,
                "system_prompt": c.system_prompt,
                "model": c.model,
                "archived": c.archived,
                "shared": c.share_token is not None,
                "parent_conversation_id": c.parent_conversation_id,
                "branch_point_message_id": c.branch_point_message_id,
                "created": c.created.isoformat(),
                "updated": c.updated.isoformat(),
            },
            "active_leaf_message_id": active[-1].id if active else None,
            "messages": [_message_dict(m) for m in messages],
            "feedback": [{"message_id": f.message_id, "rating": f.rating.value,
                          "comment": f.comment, "created": f.created.isoformat(),
                          "updated": f.updated.isoformat()} for f in feedback],
        }
