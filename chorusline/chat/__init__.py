"""The chat product: the supervised cast of actors, storage, rate limits, moderation."""

from chorusline.chat.context import Assembled, assemble
from chorusline.chat.conversation import ConversationActor
from chorusline.chat.deps import SCHEDULER_KEY, WORKER_KEY, ChatDeps
from chorusline.chat.gpu_worker import EngineLike, GpuWorker
from chorusline.chat.moderation import Moderator, Policy, Verdict
from chorusline.chat.ratelimit import Decision, Tier, TierConfigError, Tiers
from chorusline.chat.reply_pump import ConversationInterrupted
from chorusline.chat.scheduler_actor import AdmissionLimits, EngineRestarted, SchedulerActor, Submit
from chorusline.chat.service import ChatService, ChatSettings, open_chat_service, open_store
from chorusline.chat.session import ChatRequest, Principal, SessionActor
from chorusline.chat.store import (
    Conversation,
    ConversationPage,
    Message,
    MessageStatus,
    Role,
    SqliteStore,
    Store,
    StoreUnavailable,
)
from chorusline.chat.stream import Chunk, SlowConsumer, TokenStream
from chorusline.chat.tree import chat_tree
from chorusline.chat.turn import TurnHandle, TurnRequest

__all__ = [
    "SCHEDULER_KEY",
    "WORKER_KEY",
    "AdmissionLimits",
    "Assembled",
    "ChatDeps",
    "ChatRequest",
    "ChatService",
    "ChatSettings",
    "Chunk",
    "Conversation",
    "ConversationActor",
    "ConversationInterrupted",
    "ConversationPage",
    "Decision",
    "EngineLike",
    "EngineRestarted",
    "GpuWorker",
    "Message",
    "MessageStatus",
    "Moderator",
    "Policy",
    "Principal",
    "Role",
    "SchedulerActor",
    "SessionActor",
    "SlowConsumer",
    "SqliteStore",
    "Store",
    "StoreUnavailable",
    "Submit",
    "Tier",
    "TierConfigError",
    "Tiers",
    "TokenStream",
    "TurnHandle",
    "TurnRequest",
    "Verdict",
    "assemble",
    "chat_tree",
    "open_chat_service",
    "open_store",
]
