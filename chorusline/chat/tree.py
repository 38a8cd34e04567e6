"""The application's supervision tree, written down in one place.

    /chat                    one_for_one   (critical: if it escalates, the service stops)
      router                 permanent     resolves a request's model, lists fallbacks
      engines                one_for_one   one subtree per served model
        <model>              rest_for_one  (e.g. smollm2-135m-instruct, gemma-3-270m)
          driver             permanent     engine driver: admission, step loop, fan-out
          gpu-worker         permanent     thread actor: model + KV cache + engine
      embedder               one_for_one   (only when an embedding model is served)
        worker               permanent     batches embedding requests into forwards
      buckets                dynamic       one BucketActor per API key, passivated idle
      conversations          dynamic       one ConversationActor per id, passivated idle
      sessions               dynamic       one SessionActor per active API key

Why these strategies (see docs/architecture.md for the drawing):
- each model's subtree is rest_for_one with the driver first: a worker crash restarts
  only the worker (the driver keeps its in-flight table and re-queues it), while a
  driver crash also restarts the worker, whose engine holds requests nobody tracks any
  more.
- the models' subtrees sit side by side under ``engines`` (one_for_one, its own
  intensity): one model's crash, restart or restart storm never touches another's
  streams, and a subtree that exceeds its intensity is restarted whole by ``engines``
  while the router sends its requests to their fallbacks. Only a storm across models
  that exhausts ``engines`` itself reaches ``/chat``.
- the three dynamic supervisors are independent (one_for_one): a crashed conversation
  or session touches no other, and their state lives in the store, so a restart (or a
  passivation) loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chorusline.chat.embedder import EMBEDDER_KEY, Embedder, EncoderLike
from chorusline.chat.engine_driver import AdmissionLimits, EngineDriver
from chorusline.chat.gpu_worker import EngineLike, GpuWorker
from chorusline.chat.router import ROUTER_KEY, ModelRouter
from chorusline.chat.served import ServedModel, ServedModels
from chorusline.supervisors import (
    ChildSpec,
    Intensity,
    Strategy,
    dynamic_supervisor_spec,
    supervisor_spec,
)

#: One served model and what makes a fresh engine for it (per worker start).
EngineSpec = tuple[ServedModel, Callable[[], EngineLike]]


def model_subtree(model: ServedModel, engine_factory: Callable[[], EngineLike],
                  limits: AdmissionLimits | None) -> ChildSpec:
    return supervisor_spec(
        model.name,
        [
            ChildSpec(
                factory=lambda: EngineDriver(model.worker_key, limits),
                name="driver",
                register_as=model.driver_key,
            ),
            ChildSpec(
                factory=lambda: GpuWorker(engine_factory),
                name="gpu-worker",
                register_as=model.worker_key,
                shutdown_timeout=30.0,
            ),
        ],
        strategy=Strategy.REST_FOR_ONE,
        intensity=Intensity(max_restarts=5, period=60.0),
    )


def chat_tree(
    models: ServedModels, engines: Sequence[EngineSpec],
    limits: AdmissionLimits | None = None,
    embedding_factory: Callable[[], EncoderLike] | None = None,
) -> ChildSpec:
    subtrees = [model_subtree(model, factory, limits) for model, factory in engines]
    # Its own supervisor, like the engines': crashes of the embedder count against this
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
            ChildSpec(factory=lambda: ModelRouter(models), name="router",
                      register_as=ROUTER_KEY),
            supervisor_spec("engines", subtrees,
                            intensity=Intensity(max_restarts=10, period=60.0)),
            *embedder,
            dynamic_supervisor_spec("buckets"),
            dynamic_supervisor_spec("conversations", max_children=100_000),
            dynamic_supervisor_spec("sessions", max_children=100_000),
        ],
        strategy=Strategy.ONE_FOR_ONE,
        critical=True,
    )
