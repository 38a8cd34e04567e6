"""Faults for the length of a ``with`` block: injected on entry, cleared on exit.

A plan left behind by a failed assertion would leak into whatever the test does next
(its teardown, the next test sharing a system), so the plan is cleared in a ``finally``.
The block owns its path's plan: entering one on a path that already has a plan is refused,
because the exit would silently clear the older plan too. Plain context managers, since
the injector is synchronous: usable from sync and async tests alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the plugin imports this module in every pytest run: nothing heavy
    from chorusline.actors import ActorSystem, FaultInjector
    from chorusline.chat import ChatService

    Target = ActorSystem | ChatService


def injector(target: Target) -> FaultInjector:
    """The fault injector of an actor system, or of the system a chat service runs in."""
    from chorusline.actors import ActorSystem  # loaded already: the target came from it

    system = target if isinstance(target, ActorSystem) else target.system
    return system.faults


@contextmanager
def _owned(target: Target, path: str) -> Iterator[FaultInjector]:
    faults = injector(target)
    if path in faults.active():
        raise ValueError(f"{path} already has a fault plan {faults.active()[path]}; "
                         "leaving this block would clear it too")
    try:
        yield faults
    finally:
        faults.clear(path)


@contextmanager
def crash(target: Target, path: str, *, nth: int = 1) -> Iterator[None]:
    """Crash the actor at ``path`` on its ``nth`` next message (a pattern: the ``nth``
    the matching actors handle between them), once; a crash not yet due is cancelled
    when the block ends."""
    with _owned(target, path) as faults:
        faults.crash(path, on_message=nth)
        yield


@contextmanager
def delay(target: Target, path: str, seconds: float) -> Iterator[None]:
    """Delay every message of ``path`` (each actor a pattern matches) by ``seconds``."""
    with _owned(target, path) as faults:
        faults.delay(path, seconds)
        yield


@contextmanager
def drop(target: Target, path: str, fraction: float, *,
         seed: int | None = None) -> Iterator[None]:
    """Drop ``fraction`` of ``path``'s messages (an ask then times out); ``seed`` makes
    which ones repeatable."""
    with _owned(target, path) as faults:
        faults.drop(path, fraction, seed=seed)
        yield
