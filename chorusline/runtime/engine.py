"""The synchronous engine: requests in, per-step token and text deltas out.

It glues the scheduler (what runs), the model runner (the maths), the sampler and the
detokenizer together and owns nothing else. It is deliberately synchronous and
single-threaded: the actor that hosts it decides when to step, and every public method is
called between steps, so there is no locking. All request validation happens in
``add_request``, so a bad request is refused with a protocol error instead of failing deep
inside torch during a step that serves other users too.

The engine keeps each request's ``GenerationRequest`` as it arrived (frozen, the same value
the chat layer minted) and derives what the sequences need from it once, in
``add_request``; a step reads the request's parameters from there rather than from copies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from chorusline.grammar import GrammarCompiler
from chorusline.protocols import (
    ContextTooLong,
    EngineStats,
    GenerationRequest,
    InvalidRequest,
    RequestOutput,
    SamplingParams,
    TokenLogprob,
    check_prompt_tokens,
)
from chorusline.runtime.block_manager import (
    BlockManager,
    BlockUsage,
    local_blocks_needed,
    local_blocks_per_seq,
)
from chorusline.runtime.config import ModelConfig
from chorusline.runtime.constraints import Constraints, GrammarDetokenizer
from chorusline.runtime.deadlines import DeadlineQueue
from chorusline.runtime.decoder import build_decoder
from chorusline.runtime.device import select_device, select_dtype
from chorusline.runtime.engine_config import EngineConfig
from chorusline.runtime.kv_cache import KVCache, blocks_for_budget, split_budget
from chorusline.runtime.model_runner import ModelRunner
from chorusline.runtime.packing import fast_paths
from chorusline.runtime.sampler import SampledToken, Sampler, SampleRow, make_generator
from chorusline.runtime.scheduler import Scheduler, SchedulerConfig, SchedulerOutput
from chorusline.runtime.sequence import SequenceGroup, SequenceStatus, TokenSequence


class ModelSource(Protocol):
    """What the engine needs from ``loader.LoadedModel``."""

    config: ModelConfig
    weights: dict[str, torch.Tensor]

    @property
    def tokenizer(self) -> Any: ...


@dataclass(eq=False)
class _Live:
    """A request being served: the caller's request unchanged, plus per-choice state.

    ``detoks`` and ``generators`` are indexed by choice (``TokenSequence.index``);
    ``open`` holds the choices whose end has not been reported yet, and the request is
    forgotten when it empties.
    """

    request: GenerationRequest
    seqs: tuple[TokenSequence, ...]
    #: ``stop_token_ids`` plus the model's EOS ids unless ``ignore_eos``.
    stop_ids: frozenset[int]
    detoks: tuple[GrammarDetokenizer, ...]
    generators: tuple[torch.Generator | None, ...]
    open: set[int]


class Engine:
    def __init__(self, model: ModelSource, config: EngineConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` is what request deadlines are compared with (a ``time.monotonic``
        reading by default; tests inject their own)."""
        self.config = config = config or EngineConfig()
        self.model_config = mc = model.config
        self.tokenizer = model.tokenizer
        self.device = select_device(config.device)
        if config.cpu_threads is not None:
            torch.set_num_threads(config.cpu_threads)
        self.dtype = select_dtype(self.device, config.dtype)
        self.token_budget = config.max_num_batched_tokens or (
            2048 if self.device.type == "cuda" else 512)
        self.max_model_len = min(config.max_model_len or mc.max_position_embeddings,
                                 mc.max_position_embeddings)
        self.block_size = config.block_size or (16 if self.device.type == "cuda" else 8)
        step_tokens = max(self.token_budget, config.max_num_seqs)
        #: Keys a sliding-window layer sees, if those layers have a pool of their own.
        self.window = (mc.sliding_window if config.local_kv_pool and mc.sliding_window
                       and any(mc.is_sliding(i) for i in range(mc.num_hidden_layers))
                       else None)
        num_local: int | None = None
        if self.window is None:
            num_blocks = config.num_blocks or blocks_for_budget(
                mc, self.block_size, self.dtype, config.kv_cache_bytes)
        else:
            needed = config.num_local_blocks or local_blocks_needed(
                self.window, self.block_size, config.max_num_seqs, step_tokens)
            least = config.num_local_blocks or local_blocks_per_seq(
                self.window, self.block_size, 1)
            if config.num_blocks:
                num_blocks = config.num_blocks
                num_local = max(least, min(needed, num_blocks))
            else:
                num_blocks, num_local = split_budget(mc, self.block_size, self.dtype,
                                                     config.kv_cache_bytes, needed, least)
        packed, fused = fast_paths(self.device, self.dtype, config.packed_weights,
                                   config.fused_kernels)
        self.model = build_decoder(mc, model.weights, device=self.device, dtype=self.dtype,
                                   packed=packed, fused=fused,
                                   max_positions=self.max_model_len)
        self.kv_cache = KVCache(mc, num_blocks, self.block_size, self.dtype, self.device,
                                num_local_blocks=num_local)
        self.block_manager = BlockManager(num_blocks, self.block_size,
                                          config.enable_prefix_caching,
                                          sliding_window=None if num_local is None
                                          else self.window, num_local_blocks=num_local)
        self.scheduler = Scheduler(SchedulerConfig(
            max_num_batched_tokens=step_tokens,
            max_num_seqs=config.max_num_seqs,
            max_model_len=self.max_model_len,
        ), self.block_manager)
        self.runner = ModelRunner(self.model, self.kv_cache, cuda_graphs=config.cuda_graphs)
        self.sampler = Sampler(self.device, config.seed)
        eos = set(mc.eos_token_ids)
        tok_eos = getattr(self.tokenizer, "eos_token_id", None)
        if isinstance(tok_eos, int):
            eos.add(tok_eos)
        self._eos = frozenset(eos)
        eos_ids = sorted(eos, key=lambda t: t != tok_eos)  # the tokenizer's own first
        self.constraints = Constraints(
            lambda: GrammarCompiler(self.tokenizer, eos_token_ids=eos_ids,
                                    vocab_size=mc.vocab_size),
            mc.vocab_size, self.tokenizer.token_bytes, self.device)
        self._clock = clock
        self._requests: dict[str, _Live] = {}
        self._deadlines = DeadlineQueue[_Live](
            lambda live: self._requests.get(live.request.request_id) is live)
        self._aborted: list[RequestOutput] = []
        self._steps = 0
        self._generated = 0
        self._prompt_tokens = 0
        self._last_step_ms = 0.0

    # -- requests ------------------------------------------------------------------------

    def add_request(self, request: GenerationRequest) -> None:
        """Queue a request. Raises a protocol error (never a torch one) if it is invalid.

        A ``deadline`` that has already passed is accepted: the next step reports the
        request finished with ``"timeout"``.
        """
        request_id, prompt, params = request.request_id, request.prompt_token_ids, request.params
        if request_id in self._requests:
            raise InvalidRequest(f"request id {request_id!r} is already running")
        if not prompt:
            raise InvalidRequest("the prompt is empty", param="prompt")
        vocab = self.model_config.vocab_size
        check_prompt_tokens(prompt, vocab)
        params.check_vocab(vocab)
        room = self.max_model_len - len(prompt)
        if room < 1:
            raise ContextTooLong(f"the prompt has {len(prompt)} tokens; the context "
                                 f"window is {self.max_model_len}", param="messages")
        if params.max_tokens is not None and params.max_tokens > room:
            raise ContextTooLong(f"{len(prompt)} prompt tokens + max_tokens "
                                 f"{params.max_tokens} exceed the context window of "
                                 f"{self.max_model_len}", param="max_tokens")
        stop_ids = frozenset(params.stop_token_ids) | (frozenset() if params.ignore_eos
                                                       else self._eos)
        group = SequenceGroup.create(request_id, prompt, params.n,
                                     max_tokens=params.max_tokens or room,
                                     stop_token_ids=stop_ids, priority=request.priority,
                                     tenant=request.tenant)
        detoks = tuple(GrammarDetokenizer(self.tokenizer.token_bytes, params.stop)
                       for _ in group.seqs)
        # InvalidGrammar before the request is queued; switches off the stop strings of
        # choices that are constrained already (a grammar cannot be cut by them).
        self.constraints.add(request, detoks)
        try:
            self.scheduler.add(group)
        except ValueError as exc:
            self.constraints.remove(request_id, params.n)
            raise ContextTooLong(str(exc), param="messages") from exc
        live = _Live(
            request, tuple(group.seqs), stop_ids, detoks,
            # Distinct, reproducible streams for the n choices of one seeded request.
            tuple(None if params.seed is None else
                  make_generator(params.seed + seq.index * 0x9E3779B97F4A7C15, self.device)
                  for seq in group.seqs),
            {seq.index for seq in group.seqs})
        self._requests[request_id] = live
        if request.deadline is not None:
            self._deadlines.push(request.deadline, live)

    def abort(self, request_id: str) -> bool:
        """End a request now; its blocks are free on return. Reported by the next step."""
        live = self._requests.get(request_id)
        if live is None:
            return False
        self._aborted.extend(self._close(live, SequenceStatus.FINISHED_ABORTED))
        return True

    def has_unfinished(self) -> bool:
        return bool(self._aborted) or self.scheduler.has_unfinished()

    def stats(self) -> EngineStats:
        """KV blocks are counted over both pools when there is a local one (the block
        map lists them in the same order); `kv_pools` has each pool on its own."""
        pools = self.kv_pools()
        total = sum(u.total for u in pools.values())
        used = sum(u.used for u in pools.values())
        return EngineStats(self.scheduler.num_running, self.scheduler.num_waiting,
                           total, used, used / total, self._steps,
                           self._generated, self.scheduler.max_seq_len,
                           self._prompt_tokens, self.scheduler.num_preemptions,
                           self._last_step_ms)

    def kv_pools(self) -> dict[str, BlockUsage]:
        """Block usage per pool: ``global``, and ``local`` where sliding-window layers
        have a pool of their own (its blocks cost only those layers' bytes)."""
        pools = {"global": self.block_manager.usage()}
        local = self.block_manager.local_usage()
        if local is not None:
            pools["local"] = local
        return pools

    def block_map(self) -> dict[str, Any]:
        """Every KV block's state and reference count, for the console's block map."""
        return self.block_manager.block_map()

    # -- stepping ------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> list[RequestOutput]:
        """Run one model step: schedule, run the model, sample, postprocess.

        Returns an output for every choice that advanced or ended: aborts since the last
        step, requests whose deadline has passed, then this step's tokens.
        """
        outputs, self._aborted = self._aborted, []
        for live in self._deadlines.pop_due(self._clock):  # blocks freed before planning
            outputs.extend(self._close(live, SequenceStatus.FINISHED_TIMEOUT))
        plan = self.scheduler.schedule()
        if plan.is_empty:
            return outputs
        began = time.perf_counter()
        forward = self.runner.execute(plan)
        allowed = self.constraints.mask([(s.request_id, s.index) for s in forward.seqs])
        sampled = self.sampler(forward.logits, [self._sample_row(s) for s in forward.seqs],
                               allowed)
        outputs.extend(self._postprocess(plan, forward.seqs, sampled))
        self._prompt_tokens += sum(len(sl.token_ids) for sl in plan.slices
                                   if len(sl.token_ids) > 1 or not sl.sample_seqs)
        self._last_step_ms = (time.perf_counter() - began) * 1000.0
        return outputs

    def _close(self, live: _Live, status: SequenceStatus) -> list[RequestOutput]:
        """End the request's open choices with ``status``; their outputs carry no token.

        A timed-out choice releases the text held back for a possible stop string, as a
        length limit does; an aborted one has no reader left to show it to.
        """
        request = live.request
        del self._requests[request.request_id]
        self.constraints.remove(request.request_id, request.params.n)
        self.scheduler.abort(request.request_id, status)
        timeout = status is SequenceStatus.FINISHED_TIMEOUT
        return [RequestOutput(request.request_id, i, [],
                              live.detoks[i].flush() if timeout else "", status.finish_reason,
                              len(request.prompt_token_ids),
                              len(live.seqs[i].output_token_ids))
                for i in sorted(live.open)]

    def _sample_row(self, seq: TokenSequence) -> SampleRow:
        live = self._requests[seq.request_id]
        return SampleRow(live.request.params, seq.output_token_ids, live.generators[seq.index])

    def _postprocess(self, plan: SchedulerOutput, seqs: list[TokenSequence],
                     sampled: list[SampledToken]) -> list[RequestOutput]:
        self._steps += 1
        self._generated += len(sampled)
        finished = self.scheduler.on_step_finished(
            plan, {s.seq_id: t.token_id for s, t in zip(seqs, sampled, strict=True)})
        done = {s.seq_id: s.status for s in finished}
        return [self._emit(s, t, done.get(s.seq_id))
                for s, t in zip(seqs, sampled, strict=True)]

    def _emit(self, seq: TokenSequence, tok: SampledToken,
              status: SequenceStatus | None) -> RequestOutput:
        live = self._requests[seq.request_id]
        detok = live.detoks[seq.index]
        token = tok.token_id
        complete = self.constraints.advance(seq.request_id, seq.index, token)
        # An EOS is never text: a stop token, or (under ignore_eos) the end a grammar took.
        stop_token = ((status is SequenceStatus.FINISHED_STOPPED and token in live.stop_ids)
                      or (complete and token in self._eos))
        text = "" if stop_token else detok.add([token])
        if status is None and complete:
            self.scheduler.finish(seq.seq_id, SequenceStatus.FINISHED_STOPPED)
            status = SequenceStatus.FINISHED_STOPPED  # the grammar is complete
        reason = status.finish_reason if status is not None else None
        if detok.stopped:
            if status is None:
                self.scheduler.finish(seq.seq_id, SequenceStatus.FINISHED_STOPPED)
            reason = "stop"
        elif reason is not None:
            text += detok.flush()
        logprobs = None
        if live.request.params.logprobs and tok.logprob is not None:
            logprobs = [TokenLogprob(token, tok.logprob, tok.top_logprobs)]
        out = RequestOutput(seq.request_id, seq.index, [token], text, reason,
                            len(live.request.prompt_token_ids), len(seq.output_token_ids),
                            logprobs)
        if reason is not None:
            live.open.discard(seq.index)
            if not live.open:
                del self._requests[seq.request_id]
                self.constraints.remove(seq.request_id, live.request.params.n)
        return out

    def generate(self, requests: Mapping[str, Sequence[int]],
                 params: SamplingParams | None = None) -> dict[str, list[int]]:
        """Run requests to completion (tests, benchmarks); returns choice-0 token ids."""
        for rid, prompt in requests.items():
            self.add_request(GenerationRequest(rid, tuple(prompt), params or SamplingParams()))
        tokens: dict[str, list[int]] = {rid: [] for rid in requests}
        while self.has_unfinished():
            for out in self.step():
                if out.index == 0:
                    tokens[out.request_id].extend(out.new_token_ids)
        return tokens


__all__ = ["Engine", "EngineConfig"]
