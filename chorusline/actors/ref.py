"""``ActorRef``: the only handle the outside world has on an actor.

A ref names one incarnation of an actor. It compares and hashes by identity, so two refs
are equal only if they are the same object, and a restarted actor has a new ref (look it
up again by name, or ask its supervisor). Once the incarnation is dead every ``tell``
lands in dead letters and every ``ask`` fails with ``ActorDead`` at once.

The cell behind a ref is the kernel's business (``_cell``): code outside
``chorusline.actors`` learns about an actor only through these methods, its statistics
and, for a parent, the ``ChildExit`` value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chorusline.actors.messages import ExitReason

if TYPE_CHECKING:
    from chorusline.actors.cell import Cell
    from chorusline.actors.stats import ActorStatistics

DEFAULT_ASK_TIMEOUT = 5.0


class ActorRef:
    __slots__ = ("__weakref__", "_cell")

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def path(self) -> str:
        return self._cell.path

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def is_alive(self) -> bool:
        return not self._cell.dead

    @property
    def exit_reason(self) -> ExitReason | None:
        return self._cell.exit_reason

    def tell(self, message: Any) -> None:
        """Fire and forget; never blocks. A full BACKPRESSURE or REJECT mailbox raises
        ``MailboxFull`` (use ``send`` to wait for room)."""
        self._cell.enqueue(message)

    async def send(self, message: Any) -> None:
        """Like ``tell`` but waits for room in a full BACKPRESSURE mailbox.

        When there is room it returns without a checkpoint, like trio's ``send_nowait``:
        the fast path is a queue append.
        """
        await self._cell.enqueue_wait(message)

    async def ask(self, message: Any, *, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send and wait for the reply. Raises ``ActorDead`` if the actor is or dies,
        ``AskTimeout`` (a ``trio.TooSlowError``) after ``timeout`` seconds, or the
        ``expected_errors`` exception the actor raised for this message."""
        return await self._cell.ask(message, timeout)

    async def join(self) -> ExitReason:
        """Wait until the actor is dead and return why."""
        return await self._cell.wait_dead()

    def statistics(self) -> ActorStatistics:
        return self._cell.statistics()

    def __repr__(self) -> str:
        state = "alive" if not self._cell.dead else "dead"
        return f"<ActorRef {self._cell.path} {state}>"
