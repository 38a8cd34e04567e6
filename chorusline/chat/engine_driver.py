"""The engine driver: admission control, the step loop, and token fan-out.

(Not a scheduler: deciding which sequences run in a step is ``runtime.Scheduler``'s job,
inside the engine. This actor decides what reaches the engine, drives its steps and
hands their tokens out.) It receives each ``GenerationRequest`` itself as a message and
answers with the request's ``TokenStream``.

It sits between the many conversation actors and the single GPU worker. Requests are
admitted here (a bounded queue of waiting requests and prompt tokens, see
``AdmissionLimits``; beyond it a request is refused at once with a retry-after hint) and
handed to the worker in batches, one
``Step`` message per engine step. Each step's reply is fanned out to the per-request
streams. Batching, preemption and block management stay inside the engine, next to the KV
cache they describe, on the worker's thread: moving them here would cost a thread hop per
step for block tables that only the worker uses.

If the GPU worker dies, in-flight single-choice requests are re-queued as continuations
(prompt plus the tokens already streamed), so their readers see the stream carry on once
the supervisor has restarted the worker; multi-choice requests fail with ``EngineRestarted``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import trio

from chorusline.actors import Actor, ActorDead, AskTimeout
from chorusline.chat.gpu_worker import Step, StepResult
from chorusline.chat.stream import Chunk, TokenStream
from chorusline.protocols import (
    EngineRestarted,
    EngineStats,
    GenerationRequest,
    InvalidRequest,
    Overloaded,
)


@dataclass(frozen=True)
class AdmissionLimits:
    """When the engine queue refuses a request at once (503 with ``Retry-After``).

    The rule: a request is admitted while the prompt tokens waiting ahead of it, itself
    included, would be prefilled within ``max_queue_seconds`` at the engine's measured
    prefill rate (refined after every step), and while the queue holds fewer than
    ``max_waiting_requests`` requests and ``max_waiting_tokens`` tokens. A request that
    finds the queue empty is always admitted, so no prompt the context window accepts is
    starved. A client therefore waits in the queue for at most about that long, or is
    told at once to come back (``Retry-After`` = the queue's expected drain time).
    """

    max_waiting_requests: int = 256
    max_waiting_tokens: int = 128 * 1024
    max_queue_seconds: float = 30.0
    step_timeout: float = 120.0
    max_pending_chars: int = 64 * 1024


@dataclass(frozen=True)
class Cancel:
    request_id: str


@dataclass
class _InFlight:
    request: GenerationRequest
    stream: TokenStream
    prompt_tokens: int
    generated: list[int] = field(default_factory=list)
    open: set[int] = field(default_factory=set)


class EngineDriver(Actor):
    expected_errors = (Overloaded, InvalidRequest)

    def __init__(self, worker_key: Hashable, limits: AdmissionLimits | None = None) -> None:
        self.worker_key = worker_key
        self.limits = limits or AdmissionLimits()
        self.admits: list[GenerationRequest] = []
        self.aborts: list[str] = []
        self.inflight: dict[str, _InFlight] = {}
        self.waiting: dict[str, int] = {}
        self.stats: EngineStats | None = None
        self.requeued = 0
        self.refused = 0
        self.steps = 0
        #: Sequences that produced a token per step: the batch sizes operators tune for.
        self.last_batch = 0
        self.max_batch = 0
        self.batched = 0
        self.prefill_rate = 1000.0  # prompt tokens/s, refined as steps complete
        self._wake = trio.Event()

    async def on_start(self) -> None:
        self.context.start_soon(self._drive, name=f"{self.context.path}:drive")

    async def receive(self, message: Any) -> Any:
        if isinstance(message, GenerationRequest):
            return self._submit(message)
        if isinstance(message, Cancel):
            self._cancel(message.request_id)
            return None
        return await super().receive(message)

    # -- admission ------------------------------------------------------------------------
    def _submit(self, message: GenerationRequest) -> TokenStream:
        limits = self.limits
        waiting_tokens = sum(self.waiting.values())
        queued = waiting_tokens + len(message.prompt_token_ids)
        rate = max(self.prefill_rate, 1.0)
        if self.waiting and (
            len(self.waiting) >= limits.max_waiting_requests
            or queued > limits.max_waiting_tokens
            or queued / rate > limits.max_queue_seconds
        ):
            self.refused += 1
            retry = min(60.0, max(1.0, waiting_tokens / rate))
            raise Overloaded("the engine queue is full; retry later", retry_after=retry)
        request_id = message.request_id
        if request_id in self.inflight:
            raise InvalidRequest(f"request id {request_id!r} is already being generated")
        me = self.context.self_ref
        stream = TokenStream(
            request_id,
            choices=message.params.n,
            max_pending_chars=self.limits.max_pending_chars,
            on_close=lambda rid: me.tell(Cancel(rid)),
        )
        self.inflight[request_id] = _InFlight(
            message, stream, len(message.prompt_token_ids), open=set(range(message.params.n))
        )
        self.waiting[request_id] = len(message.prompt_token_ids)
        self.admits.append(message)
        self._wake.set()
        return stream

    def _cancel(self, request_id: str) -> None:
        self.waiting.pop(request_id, None)
        if self.inflight.pop(request_id, None) is None:
            return
        queued = [a for a in self.admits if a.request_id != request_id]
        if len(queued) != len(self.admits):
            self.admits = queued
        else:
            self.aborts.append(request_id)
        self._wake.set()

    # -- the step loop --------------------------------------------------------------------
    async def _drive(self) -> None:
        registry = self.context.system.registry
        while True:
            if not (self.admits or self.aborts or self.inflight):
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            worker = await registry.wait_for(self.worker_key)
            step = Step(tuple(self.admits), tuple(self.aborts))
            self.admits, self.aborts = [], []
            started = trio.current_time()
            try:
                result: StepResult = await worker.ask(step, timeout=self.limits.step_timeout)
            except (ActorDead, AskTimeout):
                if worker.is_alive:
                    self.context.system.faults.kill(worker.path)  # hung: let it restart
                # Wait for this incarnation to be gone before looking for the next one,
                # or the lookup could hand back the dying worker again.
                await worker.join()
                self._requeue_after_worker_loss()
                continue
            self.steps += 1
            self._fan_out(result, trio.current_time() - started, step)

    def _fan_out(self, result: StepResult, elapsed: float, step: Step) -> None:
        self.stats = result.stats
        self.last_batch = len(result.outputs)
        self.max_batch = max(self.max_batch, self.last_batch)
        self.batched += self.last_batch
        for request_id, error in result.refused:
            flight = self.inflight.pop(request_id, None)
            self.waiting.pop(request_id, None)
            if flight is not None:
                flight.stream.fail(error)
        admitted_tokens = sum(len(a.prompt_token_ids) for a in step.admit)
        if admitted_tokens and elapsed > 0:
            self.prefill_rate = 0.8 * self.prefill_rate + 0.2 * (admitted_tokens / elapsed)
        for out in result.outputs:
            flight = self.inflight.get(out.request_id)
            if flight is None:
                continue
            self.waiting.pop(out.request_id, None)
            single = flight.request.params.n == 1
            if single:
                # Counted here, not by the engine, so that a continuation after a worker
                # restart keeps counting from the tokens already streamed.
                flight.generated.extend(out.new_token_ids)
            flight.stream.push(
                Chunk(
                    index=out.index,
                    text=out.new_text,
                    token_ids=list(out.new_token_ids),
                    logprobs=list(out.logprobs or []),
                    finish_reason=out.finish_reason,
                    prompt_tokens=flight.prompt_tokens,
                    completion_tokens=len(flight.generated) if single else out.completion_tokens,
                )
            )
            if out.finish_reason is not None:
                flight.open.discard(out.index)
                if not flight.open:
                    del self.inflight[out.request_id]

    def _requeue_after_worker_loss(self) -> None:
        """Continue every single-choice request from where its stream got to."""
        self.admits = []
        self.aborts = []
        for request_id, flight in list(self.inflight.items()):
            params = flight.request.params
            if params.n != 1:
                del self.inflight[request_id]
                self.waiting.pop(request_id, None)
                flight.stream.fail(EngineRestarted("the engine restarted mid-request"))
                continue
            self.admits.append(flight.request.continued(flight.generated))
            self.requeued += 1
        self._wake.set()

    def introspect(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "queue_depth": len(self.waiting),
            "inflight": len(self.inflight),
            "steps": self.steps,
            "requeued": self.requeued,
            "refused": self.refused,
            "prefill_rate": round(self.prefill_rate, 1),
            "running": 0 if stats is None else stats.num_running,
            "kv_usage": 0.0 if stats is None else stats.kv_usage,
            "last_batch_size": self.last_batch,
            "max_batch_size": self.max_batch,
            "mean_batch_size": round(self.batched / self.steps, 3) if self.steps else 0.0,
        }
