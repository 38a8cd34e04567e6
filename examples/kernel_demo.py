"""The actor kernel on its own: a supervised pipeline that survives injected faults.

    .venv/bin/python examples/kernel_demo.py

Tree (rest_for_one: a child's failure restarts it and every child started after it)::

    /pipeline   Supervisor, rest_for_one
      store      SyncActor    keeps every digest (started first, so it survives)
      digester   ThreadActor  blocking work (PBKDF2) on its own OS thread
      worker     Actor        asks the digester, tells the store, answers the caller

The demo digests a few words, injects a crash into the worker, kills the thread actor,
and shows after each fault that the pipeline answers again, then prints the tree
snapshot. It exits 0 within a few seconds; ``tests/examples`` runs it and checks that.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import trio

if __package__ in (None, ""):
    # Run as a script from a checkout: make the repository importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chorusline.actors import (
    Actor,
    ActorDead,
    ActorRef,
    ActorSystem,
    SyncActor,
    ThreadActor,
    open_actor_system,
)
from chorusline.supervisors import (
    Backoff,
    ChildSpec,
    GetChild,
    Intensity,
    Strategy,
    supervisor_spec,
)

PIPELINE = "/pipeline"


class Store(SyncActor):
    """Results live here, away from the worker, so a worker crash loses no results.

    A ``SyncActor`` because it never awaits: asks to it are answered in the asker's task.
    """

    def __init__(self) -> None:
        self.digests: dict[str, str] = {}

    def handle(self, message: Any) -> Any:
        match message:
            case ("put", str(word), str(digest)):
                self.digests[word] = digest
                return None
            case "all":
                return dict(self.digests)
        return super().handle(message)


class Digester(ThreadActor):
    """Blocking, CPU-heavy work: on a thread so the trio loop keeps serving others.

    Subclassing ``ThreadActor`` is all it takes; its spec below is like any other.
    """

    def receive(self, message: Any) -> Any:
        word = str(message)
        return hashlib.pbkdf2_hmac("sha256", word.encode(), b"chorusline", 20_000).hex()[:16]


class Worker(Actor):
    """Looks its siblings up by path on every message: a restarted sibling has a new ref,
    and a path always names the live incarnation."""

    def sibling(self, name: str) -> ActorRef:
        ref = self.context.system.lookup(f"{PIPELINE}/{name}")
        if ref is None:
            raise LookupError(f"{PIPELINE}/{name} is not running")
        return ref

    async def receive(self, message: Any) -> Any:
        word = str(message)
        digest = await self.sibling("digester").ask(word, timeout=5.0)
        self.sibling("store").tell(("put", word, digest))
        return digest


def pipeline_spec() -> ChildSpec:
    return supervisor_spec(
        "pipeline",
        [
            ChildSpec(Store, name="store"),
            ChildSpec(Digester, name="digester"),
            ChildSpec(Worker, name="worker"),
        ],
        strategy=Strategy.REST_FOR_ONE,
        intensity=Intensity(max_restarts=5, period=10.0),
        backoff=Backoff(initial=0.01),
    )


async def replacement(pipeline: ActorRef, name: str, old: ActorRef) -> ActorRef:
    """The next incarnation of child ``name`` once ``old`` is dead.

    The supervisor handles a child's exit (a system message) before any queued ask, so
    one ``GetChild`` normally suffices. A second restart within the intensity window is
    delayed by the backoff (here 10 ms, growing), and the supervisor answers None until
    it is done: poll gently rather than spin.
    """
    await old.join()
    while True:
        ref: ActorRef | None = await pipeline.ask(GetChild(name))
        if ref is not None and ref is not old and ref.is_alive:
            return ref
        await trio.sleep(0.002)


def print_tree(system: ActorSystem) -> None:
    snapshot = system.snapshot()

    def walk(node: dict[str, Any], depth: int) -> None:
        if node["path"] != "/":
            print(
                f"  {'  ' * depth}{node['path']:<22} {node['kind']:<10} {node['actor_class']:<11}"
                f" {node['state']:<8} processed={node['processed']} restarts={node['restarts']}"
            )
        for child in node["children"]:
            walk(child, depth + (node["path"] != "/"))

    print("tree snapshot:")
    walk(snapshot["tree"], 0)
    print(f"dead letters: {snapshot['dead_letters']['count']}")


async def main() -> None:
    async with open_actor_system("demo") as system:
        pipeline = await system.spawn(pipeline_spec())
        worker: ActorRef = await pipeline.ask(GetChild("worker"))
        for word in ("alpha", "beta"):
            print(f"digest {word}: {await worker.ask(word)}")

        # Fault 1: the worker crashes on its next message; its supervisor restarts it.
        system.faults.crash(f"{PIPELINE}/worker")
        try:
            await worker.ask("gamma")
        except ActorDead:
            print("crash injected: worker died while handling 'gamma'")
        worker = await replacement(pipeline, "worker", worker)
        print(f"recovered: worker restarted, gamma -> {await worker.ask('gamma')}")

        # Fault 2: kill the thread actor. A thread cannot be interrupted, so the kernel
        # declares it dead at once; rest_for_one restarts it and the worker after it.
        digester: ActorRef = await pipeline.ask(GetChild("digester"))
        system.faults.kill(f"{PIPELINE}/digester")
        digester = await replacement(pipeline, "digester", digester)
        worker = await replacement(pipeline, "worker", worker)
        print(f"recovered: digester killed and restarted, delta -> {await worker.ask('delta')}")

        store: ActorRef = await pipeline.ask(GetChild("store"))
        print(f"store kept {len(await store.ask('all'))} digests across both faults")
        print_tree(system)


if __name__ == "__main__":
    trio.run(main)
