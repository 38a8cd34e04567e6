"""Batched token sampling: one call per step for every row that samples.

Order of operations (the same for every row, so the semantics are easy to state):

1. ``logprobs`` come from the *raw* model distribution (``log_softmax`` of the logits before
   any penalty, bias, temperature or grammar mask), as OpenAI and vLLM report them.
2. Presence/frequency penalties over the row's generated tokens, then ``logit_bias``, then
   a constrained row's grammar mask. All also steer greedy rows.
3. Greedy rows (``temperature == 0``) take the argmax.
4. Other rows: divide by temperature, keep the top-k logits (ties with the k-th kept), keep
   the smallest set of most likely tokens whose probability reaches ``top_p`` (renormalised
   after top-k), drop tokens below ``min_p`` times the most likely one, then draw.

Drawing uses the exponential race (``argmax(p / E)`` with ``E ~ Exp(1)``), which samples
exactly from ``p`` and needs one noise vector per row. A seeded row draws its noise from its
own ``torch.Generator``, so its tokens do not depend on which other rows share the batch;
unseeded rows share one batched draw. The fast path (all greedy, nothing to adjust, no
logprobs) is a single argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from chorusline.protocols import SamplingParams


@dataclass
class SampleRow:
    """What the sampler needs to know about one row of logits."""

    params: SamplingParams
    output_token_ids: Sequence[int]
    generator: torch.Generator | None = None


@dataclass
class SampledToken:
    token_id: int
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator for one seeded sequence; seeds are folded into torch's 64-bit range."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
    return gen


class Sampler:
    def __init__(self, device: torch.device | str = "cpu", seed: int | None = None) -> None:
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def __call__(self, logits: torch.Tensor, rows: Sequence[SampleRow],
                 allowed: torch.Tensor | None = None) -> list[SampledToken]:
        """Sample one token per row of ``logits [R, V]`` (fp32); ``allowed [R, V]``
        (constrained decoding) masks the tokens a row's grammar does not allow, after
        penalties and bias and before any choice, so it also binds greedy rows."""
        if len(rows) != logits.shape[0]:
            raise ValueError("one SampleRow per logits row is required")
        params = [r.params for r in rows]
        if all(p.greedy and not p.logit_bias and not p.has_penalties and not p.logprobs
               for p in params):
            if allowed is not None:
                logits = logits.masked_fill(~allowed, float("-inf"))
            return [SampledToken(t) for t in logits.argmax(-1).tolist()]

        logprob_rows = [i for i, p in enumerate(params) if p.logprobs]
        raw_logprobs = (logits[logprob_rows].log_softmax(-1) if logprob_rows else None)
        logits = logits.clone()
        self._apply_penalties(logits, rows)
        self._apply_bias(logits, params)
        if allowed is not None:
            logits.masked_fill_(~allowed, float("-inf"))

        chosen = torch.empty(len(rows), dtype=torch.int64, device=logits.device)
        greedy = [i for i, p in enumerate(params) if p.greedy]
        if greedy:
            chosen[greedy] = logits[greedy].argmax(-1)
        random = [i for i, p in enumerate(params) if not p.greedy]
        if random:
            probs = self._filtered_probs(logits[random], [params[i] for i in random])
            noise = self._noise(probs, [rows[i] for i in random])
            chosen[random] = (probs / noise).argmax(-1)

        token_ids: list[int] = chosen.tolist()
        out = [SampledToken(t) for t in token_ids]
        if raw_logprobs is not None:
            self._fill_logprobs(out, raw_logprobs, logprob_rows, chosen, params)
        return out

    def _apply_penalties(self, logits: torch.Tensor, rows: Sequence[SampleRow]) -> None:
        idx = [i for i, r in enumerate(rows) if r.params.has_penalties and r.output_token_ids]
        if not idx:
            return
        width = max(len(rows[i].output_token_ids) for i in idx)
        vocab = logits.shape[1]
        # Pad with an id one past the vocabulary, counted into a discarded extra column.
        padded = torch.full((len(idx), width), vocab, dtype=torch.int64)
        for j, i in enumerate(idx):
            ids = rows[i].output_token_ids
            padded[j, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.int64)
        counts = torch.zeros(len(idx), vocab + 1, dtype=logits.dtype)
        counts.scatter_add_(1, padded, torch.ones_like(padded, dtype=logits.dtype))
        counts = counts[:, :vocab].to(logits.device)
        freq = torch.tensor([rows[i].params.frequency_penalty for i in idx],
                            dtype=logits.dtype, device=logits.device)[:, None]
        pres = torch.tensor([rows[i].params.presence_penalty for i in idx],
                            dtype=logits.dtype, device=logits.device)[:, None]
        logits[idx] -= counts * freq + (counts > 0).to(logits.dtype) * pres

    @staticmethod
    def _apply_bias(logits: torch.Tensor, params: Sequence[SamplingParams]) -> None:
        row_ids: list[int] = []
        tok_ids: list[int] = []
        values: list[float] = []
        for i, p in enumerate(params):
            for tok, bias in p.logit_bias.items():
                row_ids.append(i)
                tok_ids.append(tok)
                values.append(bias)
        if row_ids:
            dev = logits.device
            logits.index_put_(
                (torch.tensor(row_ids, device=dev), torch.tensor(tok_ids, device=dev)),
                torch.tensor(values, dtype=logits.dtype, device=dev),
                accumulate=True,
            )

    @staticmethod
    def _filtered_probs(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
        dev = logits.device
        temps = torch.tensor([p.temperature for p in params], dtype=logits.dtype, device=dev)
        logits = logits / temps[:, None]
        vocab = logits.shape[1]
        top_ks = [p.top_k if 0 < p.top_k < vocab else 0 for p in params]
        if any(top_ks):
            kmax = max(top_ks)
            kth_values = logits.topk(kmax, dim=-1).values
            k_index = torch.tensor([max(k, 1) - 1 for k in top_ks], device=dev)
            threshold = kth_values.gather(1, k_index[:, None])
            no_k = torch.tensor([k == 0 for k in top_ks], device=dev)[:, None]
            logits = logits.masked_fill(~no_k & (logits < threshold), float("-inf"))
        probs = logits.softmax(-1)
        top_ps = [p.top_p for p in params]
        if any(tp < 1.0 for tp in top_ps):
            sorted_p, order = probs.sort(-1, descending=True)
            before = sorted_p.cumsum(-1) - sorted_p  # mass strictly ahead of each token
            limit = torch.tensor(top_ps, dtype=probs.dtype, device=dev)[:, None]
            # A token survives while the mass ahead of it is still short of top_p; the
            # first token always survives. Rows with top_p == 1 keep everything.
            drop_sorted = (before >= limit) & (limit < 1.0)
            drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
            probs = probs.masked_fill(drop, 0.0)
        min_ps = [p.min_p for p in params]
        if any(min_ps):
            floor = torch.tensor(min_ps, dtype=probs.dtype, device=dev)[:, None]
            probs = probs.masked_fill(probs < floor * probs.amax(-1, keepdim=True), 0.0)
        return probs / probs.sum(-1, keepdim=True)

    def _noise(self, probs: torch.Tensor, rows: Sequence[SampleRow]) -> torch.Tensor:
        noise = torch.empty_like(probs)
        shared = [i for i, r in enumerate(rows) if r.generator is None]
        if shared:
            noise[shared] = torch.empty(len(shared), probs.shape[1], dtype=probs.dtype,
                                        device=probs.device).exponential_(
                                            generator=self.generator)
        for i, r in enumerate(rows):
            if r.generator is not None:
                noise[i].exponential_(generator=r.generator)
        # exponential_ can return exactly 0 (about once per 300 rows of 49k); p / 0 would
        # be inf or NaN and hijack the argmax.
        return noise.clamp_(min=torch.finfo(noise.dtype).tiny)

    @staticmethod
    def _fill_logprobs(
        out: list[SampledToken],
        raw: torch.Tensor,
        rows: list[int],
        chosen: torch.Tensor,
        params: Sequence[SamplingParams],
    ) -> None:
        picked = raw.gather(1, chosen[rows][:, None]).squeeze(1).tolist()
        kmax = max(params[i].top_logprobs for i in rows)
        top_v: list[list[float]] = []
        top_i: list[list[int]] = []
        if kmax:
            values, indices = raw.topk(kmax, dim=-1)
            top_v, top_i = values.tolist(), indices.tolist()
        for j, i in enumerate(rows):
            out[i].logprob = picked[j]
            k = params[i].top_logprobs
            if k:
                out[i].top_logprobs = list(zip(top_i[j][:k], top_v[j][:k], strict=True))
