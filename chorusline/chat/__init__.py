"""The chat product: a supervised cast of actors behind one door, ``ChatService``.

``open_chat_service`` starts the tree (in its own actor system or an embedding
application's) and yields the service; ``ChatService.chat`` takes one ``ChatRequest`` and
returns a ``TurnHandle`` whose ``TokenStream`` carries the reply as ``Chunk``s; its
``conversations``, ``accounts`` and ``admin`` facades do everything that needs no turn.
``open_accounts`` opens only the store, for tools that manage keys without a model.
Several models can be served side by side (``ModelSettings``, ``BUNDLED_MODELS``); a
request names one (``ChatRequest.model``) and the router picks it or its fallback. The
libraries below it are their own packages: ``chorusline.store``, ``chorusline.moderation``
and ``chorusline.ratelimit``.
"""

from chorusline.chat.accounts import Accounts, default_database_url, open_accounts
from chorusline.chat.admin import Admin
from chorusline.chat.conversations import Conversations
from chorusline.chat.engine_driver import AdmissionLimits
from chorusline.chat.gpu_worker import EngineLike
from chorusline.chat.loading import BUNDLED_MODELS, ModelSettings
from chorusline.chat.principal import Principal
from chorusline.chat.served import ModelInfo
from chorusline.chat.service import ChatService, ChatSettings, open_chat_service
from chorusline.chat.signin import PageSession
from chorusline.chat.stream import Chunk, TokenStream
from chorusline.chat.tool_calls import ToolCallParser
from chorusline.chat.turn import ChatRequest, TurnHandle
from chorusline.store import (
    ApiKey,
    Conversation,
    Feedback,
    IssuedApiKey,
    Message,
    Rating,
    UsageTotals,
    User,
)

__all__ = [
    "BUNDLED_MODELS",
    "Accounts",
    "Admin",
    "AdmissionLimits",
    "ApiKey",
    "ChatRequest",
    "ChatService",
    "ChatSettings",
    "Chunk",
    "Conversation",
    "Conversations",
    "EngineLike",
    "Feedback",
    "IssuedApiKey",
    "Message",
    "ModelInfo",
    "ModelSettings",
    "PageSession",
    "Principal",
    "Rating",
    "TokenStream",
    "ToolCallParser",
    "TurnHandle",
    "UsageTotals",
    "User",
    "default_database_url",
    "open_accounts",
    "open_chat_service",
]
