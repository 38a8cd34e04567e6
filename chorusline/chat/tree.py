"""The application's supervision tree, written down in one place.

    /chat                    one_for_one   (critical: if it escalates, the service stops)
      engine                 rest_for_one
        driver               permanent     engine driver: admission, step loop, fan-out
        gpu-worker           permanent     thread actor: model + KV cache + engine
      embedder               one_for_one   (only when an embedding model is served)
        worker               permanent     batches embedding requests into forwards
      buckets                dynamic       one BucketActor per API key, passivated idle
      conversations          dynamic       one ConversationActor per id, passivated idle
      sessions               dynamic       one SessionActor per active API key

Why these strategies (see docs/architecture.md for the drawing):
- engine is rest_for_one with the driver first: a worker crash restarts only the
  worker (the driver keeps its in-flight table and re-queues it), while a driver
  crash also restarts the worker, whose engine holds requests nobody tracks any more.
- the three dynamic supervisors are independent (one_for_one): a crashed conversation
  or session touches no other, and their state lives in the store, so a restart (or a
  passivation) loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from chorusline.chat.deps import DRIVER_KEY, WORKER_KEY
from chorusline.chat.embedder import EMBEDDER_KEY, Embedder, EncoderLike
from chorusline.chat.engine_driver import AdmissionLimits, EngineDriver
from chorusline.chat.gpu_worker import EngineLike, GpuWorker
from chorusline.supervisors import (
    ChildSpec,
    Intensity,
    Strategy,
    dynamic_supervisor_spec,
    supervisor_spec,
)


def chat_tree(
    engine_factory: Callable[[], EngineLike], limits: AdmissionLimits | None = None,
    embedding_factory: Callable[[], EncoderLike] | None = None,
) -> ChildSpec:
    engine = supervisor_spec(
        "engine",
        [
            ChildSpec(
                factory=lambda: EngineDriver(WORKER_KEY, limits),
                name="driver",
                register_as=DRIVER_KEY,
            ),
            ChildSpec(
                factory=lambda: GpuWorker(engine_factory),
                name="gpu-worker",
                register_as=WORKER_KEY,
                shutdown_timeout=30.0,
            ),
        ],
        strategy=Strategy.REST_FOR_ONE,
        intensity=Intensity(max_restarts=5, period=60.0),
    )
    # Its own supervisor, like the engine's: crashes of the embedder count against this
    # intensity, not /chat's, so they cannot stop the chat service.
    embedder: list[ChildSpec] = []
    if embedding_factory is not None:
        make_model = embedding_factory
        embedder.append(supervisor_spec("embedder", [ChildSpec(
            factory=lambda: Embedder(make_model), name="worker", register_as=EMBEDDER_KEY,
            shutdown_timeout=30.0)], intensity=Intensity(max_restarts=5, period=60.0)))
    return supervisor_spec(
        "chat",
        [
            engine,
            *embedder,
            dynamic_supervisor_spec("buckets"),
            dynamic_supervisor_spec("conversations", max_children=100_000),
            dynamic_supervisor_spec("sessions", max_children=100_000),
        ],
        strategy=Strategy.ONE_FOR_ONE,
        critical=True,
    )
