"""``ThreadActor``: an actor whose hooks run on its own OS thread.

Blocking work (a model step, a database driver without a trio API) must not run on the
event loop. Subclassing ``ThreadActor`` instead of ``Actor`` is the whole difference:
the hooks have the same names and meaning, but are plain functions that the kernel runs
on the actor's thread (``thread_cell.py`` hosts it on a pykka thread and bridges its
replies back to trio), so the class alone decides where an actor runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from chorusline.actors.actor import ActorBase
from chorusline.actors.messages import ExitReason
from chorusline.actors.stats import ActorKind


class ThreadActor(ActorBase):
    """Override ``receive(message)``; optionally ``on_start`` and ``on_stop``.

    All three run on the actor's thread, one at a time. Keep ``__init__`` cheap (the
    factory runs on the event loop): heavy set-up such as loading weights belongs in
    ``on_start``. Exceptions in ``expected_errors`` go back to the asker; any other
    exception crashes the actor. ``introspect`` is called from the event loop while the
    thread may be working, so it should only read.

    ``use_daemon_thread``: an abandoned (killed) daemon thread does not keep the process
    alive; set it False for work that must never be cut off at interpreter exit.
    """

    kind: ClassVar[ActorKind] = ActorKind.THREAD
    use_daemon_thread: ClassVar[bool] = True

    def on_start(self) -> None:
        """Runs on the actor's thread before the first message; raising fails the spawn."""

    def receive(self, message: Any) -> Any:
        """Handle one message on the actor's thread; the return value answers an ask."""
        raise TypeError(f"{type(self).__name__} does not handle {type(message).__name__}")

    def on_stop(self, reason: ExitReason) -> None:
        """Runs once on the actor's thread after its last message (also after a crash).

        After a kill the thread finishes what it was doing first: by then the kernel has
        already declared the actor dead, and ``reason`` is ``killed``.
        """
