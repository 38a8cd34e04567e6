"""``ActorRef``: the only handle the outside world has on an actor.

A ref names one incarnation of an actor. It compares and hashes by identity, so two refs
are equal only if they are the same object, and a restarted actor has a new ref (look it
up again by name, or ask its supervisor). Once the incarnation is dead every ``tell``
lands in dead letters and every ``ask`` fails with ``ActorDead`` at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chorusline.actors.messages import ExitReason

if TYPE_CHECKING:
    from chorusline.actors.cell import Cell
    from chorusline.actors.stats import ActorStatistics

DEFAULT_ASK_TIMEOUT = 5.0


class ActorRef:
    __slots__ = ("__weakref__", "cell")

    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    @property
    def path(self) -> str:
        return self.cell.path

    @property
    def name(self) -> str:
        return self.cell.name

    @property
    def is_alive(self) -> bool:
        return not self.cell.dead

    @property
    def exit_reason(self) -> ExitReason | None:
        return self.cell.exit_reason

    def tell(self, message: Any) -> None:
        """Fire and forget; never blocks. A full BACKPRESSURE or REJECT mailbox raises
        ``MailboxFull`` (use ``send`` to wait for room)."""
        self.cell.enqueue(message)

    async def send(self, message: Any) -> None:
        """Like ``tell`` but waits for room in a full BACKPRESSURE mailbox.

        When there is room it returns without a checkpoint, like trio's ``send_nowait``:
        the fast path is a queue append.
        """
        await self.cell.enqueue_wait(message)

    async def ask(self, message: Any, *, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send and wait for the reply. Raises ``ActorDead`` if the actor is or dies,
        ``AskTimeout`` (a ``trio.TooSlowError``) after ``timeout`` seconds, or the
        ``expected_errors`` exception the actor raised for this message."""
        return await self.cell.ask(message, timeout)

    async def join(self) -> ExitReason:
        """Wait until the actor is dead and return why."""
        return await self.cell.wait_dead()

    def statistics(self) -> ActorStatistics:
        return self.cell.statistics()

    def __repr__(self) -> str:
        state = "alive" if not self.cell.dead else "dead"
        return f"<ActorRef {self.cell.path} {state}>"
