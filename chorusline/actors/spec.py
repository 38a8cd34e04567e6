"""How to start an actor: the kernel's part of a child spec.

Supervisors extend this with restart policy; the kernel only needs the factory, the
name and the runtime knobs that belong to the actor's cell.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chorusline.actors.mailbox import MailboxConfig

if TYPE_CHECKING:
    from chorusline.actors.actor import Actor
    from chorusline.actors.thread_actor import ThreadActor


@dataclass(frozen=True)
class ActorSpec:
    """``factory`` builds a fresh actor for every (re)start, so no state leaks across.

    It returns an ``Actor`` (run as a trio task) or a ``ThreadActor`` (run on its own OS
    thread): the actor's class decides, so a spec cannot disagree with its factory. The
    factory runs on the event loop; keep it cheap (heavy set-up goes in ``on_start``).
    ``idle_timeout`` passivates the actor (normal stop, reason ``passivated``) after that
    many seconds without a message (trio actors).
    ``shutdown_timeout`` bounds ``on_stop``; past it the actor is cancelled. ``mailbox``
    overrides the actor class's default. ``register_as`` binds every incarnation to that
    key in the system registry. ``critical`` (top level only) makes an abnormal exit
    bring the whole actor system down, as an OTP application's top supervisor does.
    """

    factory: Callable[[], Actor | ThreadActor]
    name: str | None = None
    mailbox: MailboxConfig | None = None
    idle_timeout: float | None = None
    shutdown_timeout: float = 5.0
    critical: bool = False
    register_as: Hashable | None = None
