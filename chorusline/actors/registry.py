"""Named actors and keyed lookup with at-most-one-live-actor-per-key spawning.

``get_or_spawn`` is the way to reach per-key actors (one per conversation, per rate-limit
bucket): concurrent callers for one key share a single spawn in flight, and a spawned
child re-binds its key on every restart (``ActorSpec`` with ``register_as``), so a key
never maps to two live actors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from typing import TYPE_CHECKING

import trio

from chorusline.actors.errors import NameTaken
from chorusline.actors.messages import StartChild
from chorusline.actors.ref import DEFAULT_ASK_TIMEOUT, ActorRef

if TYPE_CHECKING:
    from chorusline.actors.spec import ActorSpec
    from chorusline.actors.system import ActorSystem


class Registry:
    def __init__(self, system: ActorSystem) -> None:
        self._system = system
        self._refs: dict[Hashable, ActorRef] = {}
        self._spawning: dict[Hashable, trio.Event] = {}
        self._registered: dict[Hashable, trio.Event] = {}

    def register(self, key: Hashable, ref: ActorRef) -> None:
        current = self._refs.get(key)
        if current is not None and current.is_alive and current is not ref:
            raise NameTaken(f"{key!r} is registered to live actor {current.path}")
        self._refs[key] = ref
        waiting = self._registered.pop(key, None)
        if waiting is not None:
            waiting.set()

    async def wait_for(self, key: Hashable) -> ActorRef:
        """The live actor for ``key``, waiting while there is none (e.g. while its
        supervisor restarts it). Callers bound the wait with their own cancel scope."""
        while True:
            ref = self.lookup(key)
            if ref is not None:
                return ref
            event = self._registered.setdefault(key, trio.Event())
            await event.wait()

    def unregister(self, key: Hashable, ref: ActorRef | None = None) -> None:
        current = self._refs.get(key)
        if current is not None and (ref is None or current is ref):
            del self._refs[key]

    def lookup(self, key: Hashable) -> ActorRef | None:
        ref = self._refs.get(key)
        if ref is None:
            return None
        if not ref.is_alive:
            del self._refs[key]
            return None
        return ref

    def keys(self) -> list[Hashable]:
        return [key for key, ref in list(self._refs.items()) if ref.is_alive]

    async def get_or_spawn(
        self,
        key: Hashable,
        spec: ActorSpec,
        *,
        under: ActorRef | None = None,
        timeout: float = DEFAULT_ASK_TIMEOUT,
    ) -> ActorRef:
        """The live actor for ``key``, spawning it from ``spec`` (under ``under``, a
        supervisor, or the root) if there is none. At most one spawn per key runs at a
        time; the others wait for it and get its ref."""
        while True:
            ref = self.lookup(key)
            if ref is not None:
                return ref
            pending = self._spawning.get(key)
            if pending is None:
                break
            await pending.wait()
        done = self._spawning[key] = trio.Event()
        try:
            spec = dataclasses.replace(spec, register_as=key)
            try:
                if under is None:
                    ref = await self._system.spawn(spec)
                else:
                    ref = await under.ask(StartChild(spec), timeout=timeout)
            except NameTaken:
                # A live actor already holds the name: its supervisor is restarting the
                # key's actor right now, and the new incarnation binds the key once it
                # has started. Wait for that instead of making a second one.
                with trio.fail_after(timeout):
                    return await self.wait_for(key)
            self.register(key, ref)
            return ref
        finally:
            del self._spawning[key]
            done.set()
