"""The synchronous engine: requests in, per-step token and text deltas out.

It glues the scheduler (what runs), the model runner (the maths), the sampler and the
detokenizer together and owns nothing else. It is deliberately synchronous and
single-threaded: the actor that hosts it decides when to step, and every public method is
called between steps, so there is no locking. All request validation happens in
``add_request``, so a bad request is refused with a protocol error instead of failing deep
inside torch during a step that serves other users too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from chorusline.protocols import ContextTooLong, InvalidRequest
from chorusline.runtime.block_manager import BlockManager
from chorusline.runtime.config import LlamaConfig
from chorusline.runtime.detokenizer import IncrementalDetokenizer
from chorusline.runtime.device import select_device, select_dtype
from chorusline.runtime.int4 import int4_supported
from chorusline.runtime.kv_cache import KVCache, blocks_for_budget
from chorusline.runtime.model import LlamaModel
from chorusline.runtime.model_runner import ModelRunner
from chorusline.runtime.sampler import SampledToken, Sampler, SampleRow, make_generator
from chorusline.runtime.sampling_params import SamplingParams, check_prompt_tokens
from chorusline.runtime.scheduler import Scheduler, SchedulerConfig
from chorusline.runtime.sequence import Sequence as Seq
from chorusline.runtime.sequence import SequenceGroup, SequenceStatus


class TokenizerLike(Protocol):
    def token_bytes(self, token_id: int) -> bytes: ...


class ModelSource(Protocol):
    """What the engine needs from ``loader.LoadedModel``."""

    config: LlamaConfig
    weights: dict[str, torch.Tensor]

    @property
    def tokenizer(self) -> Any: ...


@dataclass(frozen=True)
class EngineConfig:
    #: Tokens per KV block; None: 8 on CPU, 16 on CUDA. Prefix caching reuses whole
    #: blocks, so the block size is the granularity of reuse: the bundled model's chat
    #: template starts every prompt with the same 29-token system prompt, of which 16
    #: tokens are reusable with 16-token blocks and 24 with 8-token blocks. Measured on
    #: the 2-core AVX2 CPU (``benchmarks/service.py``'s engine-direct method, 2 waves of
    #: 32 distinct chat prompts, 32 new tokens, prefix caching on, a fresh engine per run,
    #: 3 runs each): TTFT p50 2.22-2.43 s with 16 against 1.05-1.28 s with 8, and 106-118
    #: against 118-138 output tok/s; without a shared prefix the two are within noise
    #: (batch 32: 141/141 vs 130/147 tok/s; single stream 16.4/17.3 vs 15.6/16.4). CUDA
    #: keeps 16 (not measured here; its graph buckets are sized in blocks).
    block_size: int | None = None
    #: KV cache budget; ignored when ``num_blocks`` is given.
    kv_cache_bytes: int = 512 * 1024 * 1024
    num_blocks: int | None = None
    #: Tokens computed per step; None: 512 on CPU, 2048 on CUDA. A step's prefill delays
    #: every first token it carries, and a CPU computes ~1,000 prompt tokens/s for this
    #: model, so on CPU a smaller budget lets early arrivals start streaming sooner.
    max_num_batched_tokens: int | None = None
    max_num_seqs: int = 64
    #: Context window; defaults to the model's ``max_position_embeddings``.
    max_model_len: int | None = None
    enable_prefix_caching: bool = True
    device: str | None = None
    dtype: torch.dtype | None = None
    cuda_graphs: bool = True
    seed: int | None = None
    #: torch intra-op threads for CPU work (process-wide); None leaves torch's default.
    cpu_threads: int | None = None
    #: Packed 4-bit copies of 4-bit-grid weights for small CPU steps (see ``int4``);
    #: None means wherever supported (CPU with bf16 activations).
    int4: bool | None = None


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class RequestOutput:
    """What one choice (``index``) of a request produced in one step."""

    request_id: str
    index: int
    new_token_ids: list[int]
    new_text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[TokenLogprob] | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class EngineStats:
    num_running: int
    num_waiting: int
    kv_blocks_total: int
    kv_blocks_used: int
    kv_usage: float
    steps: int
    generated_tokens: int


@dataclass
class _SeqState:
    params: SamplingParams
    detok: IncrementalDetokenizer
    stop_ids: frozenset[int]
    generator: torch.Generator | None


class Engine:
    def __init__(self, model: ModelSource, config: EngineConfig | None = None) -> None:
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
        num_blocks = config.num_blocks or blocks_for_budget(
            mc, self.block_size, self.dtype, config.kv_cache_bytes)
        supported = int4_supported(self.device, self.dtype)
        if config.int4 and not supported:
            raise ValueError("int4 weights need a CPU device, bf16 and torch's int4 CPU kernel")
        self.model = LlamaModel(mc, model.weights, device=self.device, dtype=self.dtype,
                                int4=supported if config.int4 is None else config.int4)
        self.kv_cache = KVCache(mc, num_blocks, self.block_size, self.dtype, self.device)
        self.block_manager = BlockManager(num_blocks, self.block_size,
                                          config.enable_prefix_caching)
        self.scheduler = Scheduler(SchedulerConfig(
            max_num_batched_tokens=max(self.token_budget, config.max_num_seqs),
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
        self._states: dict[int, _SeqState] = {}
        self._requests: dict[str, list[Seq]] = {}
        self._prompt_len: dict[str, int] = {}
        self._aborted: list[RequestOutput] = []
        self._steps = 0
        self._generated = 0

    # -- requests ------------------------------------------------------------------------

    def add_request(self, request_id: str, prompt_token_ids: Sequence[int],
                    params: SamplingParams | None = None, priority: int = 0,
                    tenant: str = "default") -> None:
        """Queue a request. Raises a protocol error (never a torch one) if it is invalid."""
        params = params or SamplingParams()
        if request_id in self._requests:
            raise InvalidRequest(f"request id {request_id!r} is already running")
        if not prompt_token_ids:
            raise InvalidRequest("the prompt is empty", param="prompt")
        vocab = self.model_config.vocab_size
        check_prompt_tokens(prompt_token_ids, vocab)
        params.check_vocab(vocab)
        room = self.max_model_len - len(prompt_token_ids)
        if room < 1:
            raise ContextTooLong(f"the prompt has {len(prompt_token_ids)} tokens; the context "
                                 f"window is {self.max_model_len}", param="messages")
        if params.max_tokens is not None and params.max_tokens > room:
            raise ContextTooLong(f"{len(prompt_token_ids)} prompt tokens + max_tokens "
                                 f"{params.max_tokens} exceed the context window of "
                                 f"{self.max_model_len}", param="max_tokens")
        stop_ids = frozenset(params.stop_token_ids) | (frozenset() if params.ignore_eos
                                                       else self._eos)
        group = SequenceGroup.create(request_id, list(prompt_token_ids), params.n,
                                     max_tokens=params.max_tokens or room,
                                     stop_token_ids=stop_ids, priority=priority, tenant=tenant)
        try:
            self.scheduler.add(group)
        except ValueError as exc:
            raise ContextTooLong(str(exc), param="messages") from exc
        for seq in group.seqs:
            gen = None
            if params.seed is not None:
                # Distinct, reproducible streams for the n choices of one seeded request.
                gen = make_generator(params.seed + seq.index * 0x9E3779B97F4A7C15, self.device)
            self._states[seq.seq_id] = _SeqState(
                params, IncrementalDetokenizer(self.tokenizer.token_bytes, params.stop),
                stop_ids, gen)
        self._requests[request_id] = list(group.seqs)
        self._prompt_len[request_id] = len(prompt_token_ids)

    def abort(self, request_id: str) -> bool:
        """End a request now; its blocks are free on return. Reported by the next step."""
        seqs = self._requests.pop(request_id, None)
        if seqs is None:
            return False
        self.scheduler.abort(request_id)
        prompt = self._prompt_len.pop(request_id)
        for seq in seqs:
            if self._states.pop(seq.seq_id, None) is not None:
                self._aborted.append(RequestOutput(request_id, seq.index, [], "", "abort",
                                                   prompt, len(seq.output_token_ids)))
        return True

    def has_unfinished(self) -> bool:
        return bool(self._aborted) or self.scheduler.has_unfinished()

    def stats(self) -> EngineStats:
        usage = self.block_manager.usage()
        return EngineStats(self.scheduler.num_running, self.scheduler.num_waiting,
                           usage.total, usage.used, usage.used / usage.total, self._steps,
                           self._generated)

    # -- stepping ------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> list[RequestOutput]:
        """Run one model step; returns the outputs of every choice that advanced or ended."""
        outputs, self._aborted = self._aborted, []
        plan = self.scheduler.schedule()
        if plan.is_empty:
            return outputs
        result = self.runner.execute(plan)
        seqs: list[Seq] = []
        rows: list[int] = []
        for i, chunk in enumerate(result.sample_chunks):
            for seq in chunk.sample_seqs:
                seqs.append(seq)
                rows.append(i)
        logits = result.logits
        if len(rows) != logits.shape[0]:
            logits = logits.index_select(0, torch.tensor(rows, device=logits.device))
        sample_rows = [SampleRow(self._states[s.seq_id].params, s.output_token_ids,
                                 self._states[s.seq_id].generator) for s in seqs]
        sampled = self.sampler(logits, sample_rows)
        self._steps += 1
        self._generated += len(sampled)
        finished = self.scheduler.on_step_finished(
            plan, {s.seq_id: t.token_id for s, t in zip(seqs, sampled, strict=True)})
        done = {s.seq_id: s.status for s in finished}
        outputs.extend(self._emit(s, t, done.get(s.seq_id))
                       for s, t in zip(seqs, sampled, strict=True))
        return outputs

    def _emit(self, seq: Seq, tok: SampledToken, status: SequenceStatus | None) -> RequestOutput:
        state = self._states[seq.seq_id]
        token = tok.token_id
        stop_token = status is SequenceStatus.FINISHED_STOPPED and token in state.stop_ids
        text = "" if stop_token else state.detok.add([token])
        reason = status.finish_reason if status is not None else None
        if state.detok.stopped:
            if status is None:
                self.scheduler.finish(seq.seq_id, SequenceStatus.FINISHED_STOPPED)
            reason = "stop"
        elif reason is not None:
            text += state.detok.flush()
        logprobs = None
        if state.params.logprobs and tok.logprob is not None:
            logprobs = [TokenLogprob(token, tok.logprob, tok.top_logprobs)]
        request_id = seq.request_id
        out = RequestOutput(request_id, seq.index, [token], text, reason,
                            self._prompt_len[request_id], len(seq.output_token_ids), logprobs)
        if reason is not None:
            self._finish(seq)
        return out

    def _finish(self, seq: Seq) -> None:
        del self._states[seq.seq_id]
        seqs = self._requests.get(seq.request_id)
        if seqs is not None and all(s.seq_id not in self._states for s in seqs):
            del self._requests[seq.request_id]
            del self._prompt_len[seq.request_id]

    def generate(self, requests: Mapping[str, Sequence[int]],
                 params: SamplingParams | None = None) -> dict[str, list[int]]:
        """Run requests to completion (tests, benchmarks); returns choice-0 token ids."""
        for rid, prompt in requests.items():
            self.add_request(rid, prompt, params)
        tokens: dict[str, list[int]] = {rid: [] for rid in requests}
        while self.has_unfinished():
            for out in self.step():
                if out.index == 0:
                    tokens[out.request_id].extend(out.new_token_ids)
        return tokens


__all__ = ["Engine", "EngineConfig", "EngineStats", "RequestOutput",
           "TokenLogprob"]
