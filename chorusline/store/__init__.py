"""Durable storage of the chat service: users, keys, conversations, messages, events.

``SqliteStore`` is the embedded default; ``PostgresStore`` needs the ``psycopg`` and
``psycopg-pool`` packages and is imported lazily, so the SQLite path works without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chorusline.protocols import StoreUnavailable
from chorusline.store.base import Store
from chorusline.store.migrations import MigrationError
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
    SharedMessage,
    Turn,
    UsageEvent,
    UsageTotals,
    User,
    WebSession,
)
from chorusline.store.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from chorusline.store.postgres_store import PostgresStore

__all__ = [
    "ACTIVE_LEAF",
    "ApiKey",
    "Conversation",
    "ConversationPage",
    "Credentials",
    "Feedback",
    "IssuedApiKey",
    "Message",
    "MessageStatus",
    "MigrationError",
    "ModerationEvent",
    "ModerationStage",
    "ParentRef",
    "PostgresStore",
    "Rating",
    "Role",
    "SearchHit",
    "SharedConversation",
    "SharedMessage",
    "SqliteStore",
    "Store",
    "StoreUnavailable",
    "Turn",
    "UsageEvent",
    "UsageTotals",
    "User",
    "WebSession",
]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from chorusline.store.postgres_store import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
