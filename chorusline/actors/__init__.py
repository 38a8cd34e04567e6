"""The actor kernel: trio actors with mailboxes, asks, monitors, a registry, thread actors,
fault injection and statistics. Generic: no LLM code, no torch/quart/redis/psycopg.

One actor model: subclass ``Actor`` (or ``SyncActor``) for a trio task, ``ThreadActor``
for blocking work on its own thread; the class decides where it runs."""

from chorusline.actors.actor import Actor, ActorContext, SyncActor
from chorusline.actors.dead_letters import DeadLetter, DeadLetters
from chorusline.actors.errors import (
    ActorDead,
    ActorError,
    ActorStartFailed,
    ActorSystemCrashed,
    AskTimeout,
    InjectedFault,
    MailboxFull,
    NameTaken,
)
from chorusline.actors.faults import FaultInjector, FaultPlan
from chorusline.actors.mailbox import MailboxConfig, Overflow
from chorusline.actors.messages import (
    KILLED,
    NORMAL,
    PASSIVATED,
    SHUTDOWN,
    ChildExit,
    ExitKind,
    ExitReason,
    StartChild,
    Terminated,
)
from chorusline.actors.recorder import Event, FlightRecorder, Span, Subscription, Trace
from chorusline.actors.ref import DEFAULT_ASK_TIMEOUT, ActorRef
from chorusline.actors.registry import Registry
from chorusline.actors.spec import ActorSpec
from chorusline.actors.stats import ActorKind, ActorState, ActorStatistics
from chorusline.actors.system import ActorSystem, open_actor_system
from chorusline.actors.thread_actor import ThreadActor

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "KILLED",
    "NORMAL",
    "PASSIVATED",
    "SHUTDOWN",
    "Actor",
    "ActorContext",
    "ActorDead",
    "ActorError",
    "ActorKind",
    "ActorRef",
    "ActorSpec",
    "ActorStartFailed",
    "ActorState",
    "ActorStatistics",
    "ActorSystem",
    "ActorSystemCrashed",
    "AskTimeout",
    "ChildExit",
    "DeadLetter",
    "DeadLetters",
    "Event",
    "ExitKind",
    "ExitReason",
    "FaultInjector",
    "FaultPlan",
    "FlightRecorder",
    "InjectedFault",
    "MailboxConfig",
    "MailboxFull",
    "NameTaken",
    "Overflow",
    "Registry",
    "Span",
    "StartChild",
    "Subscription",
    "SyncActor",
    "Terminated",
    "ThreadActor",
    "Trace",
    "open_actor_system",
]
