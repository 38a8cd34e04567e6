"""The embedder actor on the real all-MiniLM-L6-v2: batching of queued requests into one
forward, and let-it-crash with a restart that serves the next request."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import numpy as np
import pytest
import trio

from chorusline.actors import ActorRef, ActorSystem, open_actor_system
from chorusline.chat.embedder import (
    EMBEDDER_KEY,
    Embedder,
    EmbedderStats,
    EmbedRows,
    GetEmbedderStats,
    Pending,
)
from chorusline.protocols import ServiceUnavailable
from chorusline.runtime import EmbeddingModel, shared_embedding_model
from chorusline.supervisors import ChildSpec, Intensity, supervisor_spec

TEXTS = [f"request number {i} about {topic}" for i, topic in
         enumerate(["cats", "tax law", "compilers", "rain", "jazz", "tennis", "soup", "GPUs"]
                   * 3)]


class GatedModel:
    """The real model, counting forwards; a forward waits for ``gate`` once ``hold`` is
    set, and raises once ``fail`` is set (the crash a bug in a forward would be)."""

    def __init__(self, model: EmbeddingModel) -> None:
        self.model = model
        self.forwards: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.hold = False
        self.fail = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)

    def embed(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        self.entered.set()
        if self.hold:
            assert self.gate.wait(timeout=120)
        if self.fail:
            self.fail = False
            raise RuntimeError("a bug in the forward")
        self.forwards.append(len(batch))
        return self.model.embed(batch)


@pytest.fixture(scope="module")
def model() -> EmbeddingModel:
    return shared_embedding_model()


@asynccontextmanager
async def embedder(gated: GatedModel) -> AsyncIterator[ActorSystem]:
    async with open_actor_system("test-embedder") as system:
        tree = await system.spawn(supervisor_spec("embedder", [ChildSpec(
            factory=lambda: Embedder(lambda: gated), name="worker",
            register_as=EMBEDDER_KEY)], intensity=Intensity(max_restarts=5, period=60.0)))
        try:
            yield system
        finally:
            gated.gate.set()
            await system.stop(tree)


def rows_for(model: EmbeddingModel, text: str) -> EmbedRows:
    return EmbedRows(tuple(tuple(row) for row in model.tokenize([text])))


async def test_requests_queued_behind_a_forward_share_the_next_one(
        model: EmbeddingModel) -> None:
    gated = GatedModel(model)
    gated.hold = True
    async with embedder(gated) as system:
        ref = await system.registry.wait_for(EMBEDDER_KEY)
        first: Pending = await ref.ask(rows_for(model, TEXTS[0]))
        await trio.to_thread.run_sync(gated.entered.wait)  # the first forward is running
        # Every ask is answered at once (queued), so all of these wait for the forward.
        rest: list[Pending] = [await ref.ask(rows_for(model, t)) for t in TEXTS[1:]]
        stats: EmbedderStats = await ref.ask(GetEmbedderStats())
        assert stats.queued == len(TEXTS) - 1
        gated.gate.set()
        vectors = [await p.result() for p in [first, *rest]]
        assert gated.forwards == [1, len(TEXTS) - 1]  # 24 requests, 2 forwards
        stats = await ref.ask(GetEmbedderStats())
        assert (stats.requests, stats.forwards, stats.queued) == (len(TEXTS), 2, 0)
    expected = model.embed(model.tokenize(TEXTS))
    np.testing.assert_allclose(np.concatenate(vectors), expected, atol=1e-5)


async def test_a_request_too_big_for_the_batch_goes_alone(model: EmbeddingModel) -> None:
    gated = GatedModel(model)
    gated.hold = True
    async with open_actor_system("test-embedder") as system:
        ref = await system.spawn(ChildSpec(
            factory=lambda: Embedder(lambda: gated, max_batch_inputs=4), name="worker"))
        first: Pending = await ref.ask(rows_for(model, "warm up"))
        await trio.to_thread.run_sync(gated.entered.wait)
        many = EmbedRows(tuple(tuple(r) for r in model.tokenize(TEXTS[:6])))
        queued = [await ref.ask(rows_for(model, "a")), await ref.ask(many),
                  await ref.ask(rows_for(model, "b"))]
        gated.gate.set()
        await first.result()
        shapes = [(await p.result()).shape for p in queued]
        await system.stop(ref)
    assert shapes == [(1, 384), (6, 384), (1, 384)]
    assert gated.forwards == [1, 1, 6, 1]  # in order; the big one never shares


async def test_a_crashing_forward_fails_its_requests_and_a_fresh_embedder_serves_the_next(
        model: EmbeddingModel) -> None:
    gated = GatedModel(model)
    async with embedder(gated) as system:
        old: ActorRef = await system.registry.wait_for(EMBEDDER_KEY)
        gated.fail = True
        doomed: Pending = await old.ask(rows_for(model, "this forward crashes"))
        with pytest.raises(ServiceUnavailable, match="restarted"):
            await doomed.result()
        reason = await old.join()
        assert not reason.is_normal
        new = await system.registry.wait_for(EMBEDDER_KEY)
        assert new is not old
        served: Pending = await new.ask(rows_for(model, "the next one works"))
        vector = await served.result()
    assert vector.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)
