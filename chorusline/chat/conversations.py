"""``Conversations``: conversation management for one caller, as a typed async facade.

The web routes, the CLI and embedding applications manage conversations through this and
never see the store: each method takes the caller's ``Principal`` and asks the store with
``principal.user_id`` only, so another user's conversation is a ``NotFound`` exactly like
a missing one, whichever door the caller came in by. Every store call runs on a worker
thread through ``Db`` (ParamSpec-typed, so mypy checks each call's arguments), so the
event loop never waits on a disk or a socket.

Turns are not here: a turn needs the actors (rate limits, moderation, the engine), so it
goes through ``ChatService.chat``; this covers what needs no actor.
"""

from __future__ import annotations

import builtins
from typing import Any

from chorusline.chat.db import Db
from chorusline.chat.principal import Principal
from chorusline.protocols import InvalidRequest
from chorusline.store import (
    Conversation,
    ConversationPage,
    Feedback,
    Message,
    Rating,
    SearchHit,
    SharedConversation,
    Store,
    User,
)

#: The most conversations (or search hits) one page may hold.
MAX_PAGE = 100


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be an integer between 1 and {MAX_PAGE}",
                             param="limit")
    return limit


class Conversations:
    """One door to every conversation operation that needs no actor (``builtins.list``
    in annotations: ``list`` here is the listing method)."""

    def __init__(self, db: Db, store: Store) -> None:
        self._db = db
        self._store = store

    # -- conversations ---------------------------------------------------------------

    async def create(self, principal: Principal, *, title: str = "",
                     system_prompt: str | None = None,
                     model: str | None = None) -> Conversation:
        return await self._db(self._store.create_conversation, principal.user_id,
                              title=title, system_prompt=system_prompt, model=model)

    async def list(self, principal: Principal, *, limit: int = 20, cursor: str | None = None,
                   archived: bool | None = False) -> ConversationPage:
        """Newest first; ``archived=None`` lists both kinds. Pass the last page's
        ``next_cursor`` as ``cursor`` for the next one (opaque; stable under inserts)."""
        return await self._db(self._store.list_conversations, principal.user_id,
                              limit=_limit(limit), cursor=cursor, archived=archived)

    async def get(self, principal: Principal, conversation_id: str) -> Conversation:
        return await self._db(self._store.get_conversation, principal.user_id,
                              conversation_id)

    async def rename(self, principal: Principal, conversation_id: str,
                     title: str) -> Conversation:
        return await self._db(self._store.rename_conversation, principal.user_id,
                              conversation_id, title)

    async def archive(self, principal: Principal, conversation_id: str,
                      archived: bool = True) -> Conversation:
        """Archive (or, with ``archived=False``, bring back) a conversation."""
        return await self._db(self._store.set_archived, principal.user_id,
                              conversation_id, archived)

    async def set_system_prompt(self, principal: Principal, conversation_id: str,
                                system_prompt: str | None) -> Conversation:
        return await self._db(self._store.set_system_prompt, principal.user_id,
                              conversation_id, system_prompt)

    async def delete(self, principal: Principal, conversation_id: str) -> None:
        """Soft delete: it vanishes from every read and its share link stops working."""
        await self._db(self._store.delete_conversation, principal.user_id, conversation_id)

    async def search(self, principal: Principal, query: str, *,
                     limit: int = 20) -> builtins.list[SearchHit]:
        """Case-insensitive substring match on titles and message text; a blank query
        (it would match nearly everything) is an ``InvalidRequest``."""
        return await self._db(self._store.search_conversations, principal.user_id, query,
                              limit=_limit(limit))

    async def branch(self, principal: Principal, conversation_id: str, message_id: str, *,
                     title: str | None = None) -> Conversation:
        """A new conversation holding the path root..``message_id``."""
        return await self._db(self._store.branch_to_new_conversation, principal.user_id,
                              conversation_id, message_id, title=title)

    # -- messages --------------------------------------------------------------------

    async def messages(self, principal: Principal, conversation_id: str, *,
                       tree: bool = False) -> builtins.list[Message]:
        """The active branch, root first; with ``tree`` every message of every branch
        by ``seq`` (``parent_message_id`` links them)."""
        read = self._store.get_message_tree if tree else self._store.get_active_branch
        return await self._db(read, principal.user_id, conversation_id)

    async def switch_branch(self, principal: Principal, conversation_id: str,
                            message_id: str) -> builtins.list[Message]:
        """Show and continue the branch through ``message_id`` (down to its newest
        message); the new active branch, root first. A reload shows the same branch,
        and the next turn continues it."""
        return await self._db(self._store.set_active_branch, principal.user_id,
                              conversation_id, message_id)

    async def message(self, principal: Principal, conversation_id: str,
                      message_id: str) -> Message:
        return await self._db(self._store.get_message, principal.user_id, conversation_id,
                              message_id)

    # -- feedback --------------------------------------------------------------------

    async def rate(self, principal: Principal, conversation_id: str, message_id: str,
                   rating: Rating, comment: str | None = None) -> Feedback:
        """Thumbs up or down on an assistant message (replacing an earlier rating)."""
        return await self._db(self._store.set_feedback, principal.user_id, conversation_id,
                              message_id, rating, comment)

    async def unrate(self, principal: Principal, conversation_id: str,
                     message_id: str) -> bool:
        return await self._db(self._store.delete_feedback, principal.user_id,
                              conversation_id, message_id)

    async def feedback(self, principal: Principal,
                       conversation_id: str) -> builtins.list[Feedback]:
        return await self._db(self._store.list_feedback, principal.user_id, conversation_id)

    # -- sharing and export ----------------------------------------------------------

    async def share(self, principal: Principal, conversation_id: str) -> SharedConversation:
        """A new read-only link to a snapshot of the conversation now; an older link of
        the same conversation is revoked."""
        return await self._db(self._store.share_conversation, principal.user_id,
                              conversation_id)

    async def revoke_share(self, principal: Principal, conversation_id: str) -> None:
        await self._db(self._store.revoke_share, principal.user_id, conversation_id)

    async def get_shared(self, token: str) -> SharedConversation:
        """No principal: the unguessable token is the capability. ``NotFound`` for an
        unknown, revoked or deleted share."""
        return await self._db(self._store.get_shared, token)

    async def export(self, principal: Principal, conversation_id: str) -> dict[str, Any]:
        """The conversation and its whole message tree as JSON-serialisable data."""
        return await self._db(self._store.export_conversation, principal.user_id,
                              conversation_id)

    # -- the user's custom instructions (added to every conversation's prompt) ----------

    async def custom_instructions(self, principal: Principal) -> str | None:
        user = await self._db(self._store.get_user, principal.user_id)
        return user.custom_instructions

    async def set_custom_instructions(self, principal: Principal,
                                      instructions: str | None) -> User:
        return await self._db(self._store.set_custom_instructions, principal.user_id,
                              instructions)
