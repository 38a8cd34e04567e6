"""The GPU worker: a thread actor that owns the model, the KV cache and the engine.

Engine steps are long, blocking torch calls, so they run on this actor's own thread and
never on the event loop. The engine driver drives it with one ``Step`` message per
engine step; the message carries the admissions and aborts decided since the last step,
and the reply carries the whole batch's tokens, so the cost of crossing threads is paid
once per step, not once per token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from chorusline.actors import ExitReason, ThreadActor
from chorusline.protocols import ChoruslineError, EngineStats, GenerationRequest, RequestOutput


class EngineLike(Protocol):
    """What the worker needs of ``chorusline.runtime.Engine`` (tests use a fake)."""

    def add_request(self, request: GenerationRequest) -> None: ...

    def abort(self, request_id: str) -> bool: ...

    def step(self) -> list[RequestOutput]: ...

    def has_unfinished(self) -> bool: ...

    def stats(self) -> EngineStats: ...


@dataclass(frozen=True)
class Step:
    admit: tuple[GenerationRequest, ...] = ()
    abort: tuple[str, ...] = ()


@dataclass
class StepResult:
    outputs: list[RequestOutput]
    refused: list[tuple[str, ChoruslineError]] = field(default_factory=list)
    stats: EngineStats | None = None
    busy: bool = False


@dataclass(frozen=True)
class GetStats:
    pass


@dataclass(frozen=True)
class GetBlockMap:
    """The engine's KV block map (``Engine.block_map``), or None if it keeps none."""


class GpuWorker(ThreadActor):
    # Not a daemon: at interpreter exit Python would kill a daemon thread wherever it is,
    # and killing it inside a torch kernel aborts the whole process. A stopped or killed
    # worker finishes its current step and ends; exit waits for that.
    use_daemon_thread: ClassVar[bool] = False

    def __init__(self, engine_factory: Callable[[], EngineLike]) -> None:
        super().__init__()
        self._engine_factory = engine_factory
        self.engine: EngineLike | None = None

    def on_start(self) -> None:
        # Loading weights takes seconds: it happens here, on the worker's own thread.
        self.engine = self._engine_factory()

    def on_stop(self, reason: ExitReason) -> None:
        # The KV cache is the largest allocation in the process; drop it with the worker
        # rather than whenever the cycle collector next runs (a restart, or a service
        # closed by an embedding app, would otherwise hold two caches for a while).
        self.engine = None

    def receive(self, message: Any) -> Any:
        engine = self.engine
        assert engine is not None
        if isinstance(message, Step):
            return self._step(engine, message)
        if isinstance(message, GetStats):
            return engine.stats()
        if isinstance(message, GetBlockMap):
            block_map = getattr(engine, "block_map", None)  # test fakes keep no blocks
            return None if block_map is None else block_map()
        return super().receive(message)

    @staticmethod
    def _step(engine: EngineLike, message: Step) -> StepResult:
        refused: list[tuple[str, ChoruslineError]] = []
        for request_id in message.abort:
            engine.abort(request_id)
        for admit in message.admit:
            try:
                engine.add_request(admit)
            except ChoruslineError as error:
                refused.append((admit.request_id, error))
        outputs = engine.step() if engine.has_unfinished() else []
        return StepResult(outputs, refused, engine.stats(), engine.has_unfinished())
