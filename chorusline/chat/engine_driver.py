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

from chorusline.actors import Actor, ActorDead, AskTimeout, ExitReason, Trace
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


@dataclass(frozen=True)
class Abort:
    """End a request now (its owner's Stop, the console's abort): its stream gets a
    final chunk with ``finish_reason: "abort"``. Answers whether it was in flight."""

    request_id: str
    #: Who asked, for the timeline: ``owner`` or ``admin``.
    by: str = "admin"


@dataclass
class _InFlight:
    request: GenerationRequest
    stream: TokenStream
    prompt_tokens: int
    generated: list[int] = field(default_factory=list)
    open: set[int] = field(default_factory=set)
    trace: Trace | None = None
    #: When the current phase (queue, prefill, decode) began, in trace milliseconds.
    phase_ms: float = 0.0
    steps: int = 0


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

    async def on_stop(self, reason: ExitReason) -> None:
        """No incarnation after this one knows these streams (the in-flight table dies
        with it, and rest_for_one restarts the worker and its KV cache too), so each ends
        now with a 503 the client may retry under its ``Idempotency-Key``; left open, its
        reader would wait out ``max_turn_seconds`` (found by ``chorusline chaos``)."""
        for flight in self.inflight.values():
            flight.stream.fail(EngineRestarted("the engine driver restarted mid-request"))
        self.inflight.clear()

    async def receive(self, message: Any) -> Any:
        if isinstance(message, GenerationRequest):
            return self._submit(message)
        if isinstance(message, Cancel):
            self._cancel(message.request_id)
            return None
        if isinstance(message, Abort):
            return self._abort(message.request_id, message.by)
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
            self.context.system.recorder.record(
                "overloaded", self.context.path, request_id=message.request_id,
                retry_after=round(retry, 3), queue_depth=len(self.waiting))
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
        flight = _InFlight(message, stream, len(message.prompt_token_ids),
                           open=set(range(message.params.n)))
        self.inflight[request_id] = flight
        self._queued(flight, self.context.system.recorder.trace(request_id))
        self.waiting[request_id] = len(message.prompt_token_ids)
        self.admits.append(message)
        self._wake.set()
        return stream

    def _queued(self, flight: _InFlight, trace: Trace | None) -> None:
        flight.trace, flight.steps = trace, 0
        if trace is not None:
            trace.mark("admission", self.context.path, queue_depth=len(self.waiting))
            trace.state, trace.prompt_tokens = "queued", flight.prompt_tokens
            flight.phase_ms = trace.now_ms()

    def _abort(self, request_id: str, by: str) -> bool:
        flight = self.inflight.get(request_id)
        if flight is None:
            return False
        self.context.system.recorder.record("request_aborted", self.context.path,
                                            request_id=request_id, by=by)
        for index in sorted(flight.open):
            flight.stream.push(Chunk(index=index, text="", token_ids=[], logprobs=[],
                                     finish_reason="abort",
                                     prompt_tokens=flight.prompt_tokens,
                                     completion_tokens=len(flight.generated)))
        self._cancel(request_id)
        return True

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
            for admitted in step.admit:
                self._phase(admitted.request_id, "queue", "prefill")
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

    def _phase(self, request_id: str, ended: str, begins: str, **detail: Any) -> None:
        """Close the request's current phase as a span and start the next."""
        flight = self.inflight.get(request_id)
        trace = None if flight is None else flight.trace
        if flight is None or trace is None:
            return
        trace.add(ended, self.context.path, flight.phase_ms, **detail)
        trace.state, flight.phase_ms, flight.steps = begins, trace.now_ms(), 0

    def _fan_out(self, result: StepResult, elapsed: float, step: Step) -> None:
        previous = self.stats
        if (result.stats is not None and previous is not None
                and result.stats.preemptions > previous.preemptions):
            self.context.system.recorder.record(
                "preempted", self.context.path,
                count=result.stats.preemptions - previous.preemptions)
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
            if flight.trace is not None:
                self._traced(flight, out.index, bool(out.new_token_ids),
                             out.finish_reason is not None)
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

    def _traced(self, flight: _InFlight, index: int, token: bool, finished: bool) -> None:
        """One step's progress on the request's trace (choice 0 speaks for the request)."""
        trace = flight.trace
        assert trace is not None
        if index != 0:
            return
        flight.steps += 1
        trace.generated_tokens = len(flight.generated) or trace.generated_tokens + token
        if trace.state == "prefill" and token:
            trace.first_token(self.context.path)
            self._phase(flight.request.request_id, "prefill", "decode", steps=flight.steps)
        if finished:
            name = "decode" if trace.state == "decode" else "prefill"
            self._phase(flight.request.request_id, name, "streaming", steps=flight.steps)

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
            if flight.trace is not None:
                flight.trace.mark("requeued", self.context.path,
                                  generated=len(flight.generated))
                self._queued(flight, flight.trace)
        if self.admits:
            self.context.system.recorder.record("requeued", self.context.path,
                                                requests=len(self.admits))
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
