"""Turns a scheduler step into flat tensors, runs the model, returns the logits that sample.

The flat batch is ordered [single-token slices | longer slices] so that decodes form one
attention group with no query padding (see ``attention``). Only the last token of a slice
that samples reaches the LM head; its logits row is then repeated once per sequence that
samples from it (a group leader completing its prompt shares that row with its ``n - 1``
siblings, which then sample on their own), so the sampler gets one row per sequence.

On CUDA, decode-only steps replay captured CUDA graphs, keyed by (padded batch size,
padded block-table width), because at decode a 135M model is bound by kernel-launch
overhead rather than by arithmetic. Models with sliding-window layers run without them
for now: their graphs would need the window's mask in a static buffer too, and no CUDA
device has been at hand to test that on.

When the KV cache has a local pool (sliding-window layers, see ``kv_cache``), the runner
also performs the step's local copies and passes every group the slices' local tables,
and the metadata the local slots, so those layers write and read their own pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from chorusline.runtime.attention import AttentionGroup, AttentionMetadata, build_group
from chorusline.runtime.batch import ScheduledSlice, SchedulerOutput
from chorusline.runtime.decoder import Decoder
from chorusline.runtime.kv_cache import KVCache
from chorusline.runtime.sequence import TokenSequence

_GRAPH_BATCHES = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)


@dataclass
class ForwardOutput:
    """What one forward pass gives the sampler: fp32 logits ``[len(seqs), V]``, row ``i``
    for ``seqs[i]``, every sequence that samples a token this step."""

    logits: torch.Tensor
    seqs: list[TokenSequence]


class ModelRunner:
    def __init__(self, model: Decoder, kv_cache: KVCache, *, cuda_graphs: bool = True) -> None:
        self.model = model
        self.kv_cache = kv_cache
        self.device = model.device
        self._graphs: _DecodeGraphs | None = None
        #: Keys a sliding-window layer sees (None: the model has no such layer).
        self.window = model.config.sliding_window if model.config.layer_types else None
        if cuda_graphs and self.device.type == "cuda" and self.window is None:
            self._graphs = _DecodeGraphs(model, kv_cache)

    @torch.inference_mode()
    def execute(self, step: SchedulerOutput) -> ForwardOutput:
        self.kv_cache.copy_blocks(list(step.blocks_to_copy))
        if step.local_blocks_to_copy:
            self.kv_cache.copy_local_blocks(list(step.local_blocks_to_copy))
        decodes = [sl for sl in step.slices if sl.num_tokens == 1]
        others = [sl for sl in step.slices if sl.num_tokens > 1]
        if not decodes and not others:
            return ForwardOutput(torch.empty(0, self.model.config.vocab_size), [])
        if self._graphs is not None and not others and self._graphs.fits(decodes):
            logits = self._graphs.run(decodes)  # a row per decode slice, sampling or not
            return ForwardOutput(
                _rows(logits, [i for i, sl in enumerate(decodes) for _ in sl.sample_seqs]),
                [seq for sl in decodes for seq in sl.sample_seqs])

        slices = decodes + others
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        local_slots: list[int] = []
        last_rows: list[int] = []  # the model gives a row per sampling slice
        seqs: list[TokenSequence] = []
        picks: list[int] = []
        for sl in slices:
            ids.extend(sl.token_ids)
            positions.extend(sl.positions)
            slots.extend(sl.slot_mapping)
            local_slots.extend(sl.local_slot_mapping)
            if sl.sample_seqs:
                last_rows.append(len(ids) - 1)
                for seq in sl.sample_seqs:
                    seqs.append(seq)
                    picks.append(len(last_rows) - 1)
        dev = self.device
        cache = self.kv_cache
        groups = []
        if decodes:
            groups.append(_group(0, decodes, cache, dev, self.window))
        if others:
            groups.append(_group(len(decodes), others, cache, dev, self.window))
        meta = AttentionMetadata(_long(slots, dev), groups, self.model.scale,
                                 _long(local_slots, dev) if cache.has_local_pool else None)
        logits = self.model.forward(_long(ids, dev), _long(positions, dev), meta, cache,
                                    _long(last_rows, dev))
        return ForwardOutput(_rows(logits, picks), seqs)


def _rows(logits: torch.Tensor, picks: list[int]) -> torch.Tensor:
    """``logits[picks]``, without a copy when ``picks`` takes every row once in order,
    as it does unless a group forks or a one-token slice in mid-prompt samples nothing."""
    if picks == list(range(logits.shape[0])):
        return logits
    return logits.index_select(0, torch.tensor(picks, dtype=torch.int64, device=logits.device))


def _long(values: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64).to(device, non_blocking=True)


def _group(start: int, slices: Sequence[ScheduledSlice], cache: KVCache,
           device: torch.device, window: int | None) -> AttentionGroup:
    local = [sl.local_block_table for sl in slices] if cache.has_local_pool else None
    return build_group(start, [sl.num_tokens for sl in slices], [sl.start for sl in slices],
                       [sl.block_table for sl in slices], cache.block_size, cache.null_block,
                       device, window=window, local_block_tables=local,
                       local_null_block=cache.local_null_block)


class _DecodeGraphs:
    """CUDA graphs of the decode forward pass, captured lazily per shape bucket.

    Inputs live in static buffers; padding rows write their K/V into the null block and
    attend to it only, so they never touch a real sequence's cache.
    """

    def __init__(self, model: Decoder, cache: KVCache) -> None:
        self.model = model
        self.cache = cache
        self.max_width = -(-model.config.max_position_embeddings // cache.block_size)
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]]
        self._graphs = {}
        self._pool: Any = None

    def fits(self, slices: Sequence[ScheduledSlice]) -> bool:
        return 0 < len(slices) <= _GRAPH_BATCHES[-1]

    def run(self, slices: Sequence[ScheduledSlice]) -> torch.Tensor:
        n = len(slices)
        batch = next(b for b in _GRAPH_BATCHES if b >= n)
        needed = max(-(-sl.context_len // self.cache.block_size) for sl in slices)
        width = 1
        while width < needed:
            width *= 2
        width = min(width, self.max_width)
        key = (batch, width)
        if key not in self._graphs:
            self._graphs[key] = self._capture(batch, width)
        graph, buf = self._graphs[key]
        self._fill(buf, slices, batch, width)
        graph.replay()
        return buf["logits"][:n].clone()

    def _fill(self, buf: dict[str, torch.Tensor], slices: Sequence[ScheduledSlice],
              batch: int, width: int) -> None:
        cache = self.cache
        pad = batch - len(slices)
        null_slot = cache.null_block * cache.block_size
        ids = [sl.token_ids[0] for sl in slices] + [0] * pad
        pos = [sl.start for sl in slices] + [0] * pad
        slots = [sl.slot_mapping[0] for sl in slices] + [null_slot] * pad
        tables = [list(sl.block_table) for sl in slices] + [[cache.null_block]] * pad
        group = build_group(0, [1] * batch, pos, tables, cache.block_size, cache.null_block,
                            torch.device("cpu"), width)
        buf["ids"].copy_(torch.tensor(ids), non_blocking=True)
        buf["pos"].copy_(torch.tensor(pos), non_blocking=True)
        buf["slots"].copy_(torch.tensor(slots), non_blocking=True)
        buf["blocks"].copy_(group.block_index, non_blocking=True)
        buf["mask"].copy_(group.mask, non_blocking=True)

    def _capture(self, batch: int, width: int) -> tuple[torch.cuda.CUDAGraph,
                                                         dict[str, torch.Tensor]]:
        dev = self.model.device
        cache = self.cache
        null_slot = cache.null_block * cache.block_size
        span = width * cache.block_size
        buf = {
            "ids": torch.zeros(batch, dtype=torch.int64, device=dev),
            "pos": torch.zeros(batch, dtype=torch.int64, device=dev),
            "slots": torch.full((batch,), null_slot, dtype=torch.int64, device=dev),
            "blocks": torch.full((batch, width), cache.null_block, dtype=torch.int64,
                                 device=dev),
            "mask": torch.zeros(batch, 1, 1, span, dtype=torch.bool, device=dev),
        }
        buf["mask"][..., 0] = True
        group = build_group(0, [1] * batch, [0] * batch, [[cache.null_block]] * batch,
                            cache.block_size, cache.null_block, dev, width)
        group.block_index = buf["blocks"]
        group.mask = buf["mask"]
        meta = AttentionMetadata(buf["slots"], [group], self.model.scale)
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside the graph, as CUDA requires
            self.model.forward(buf["ids"], buf["pos"], meta, cache, None)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            buf["logits"] = self.model.forward(buf["ids"], buf["pos"], meta, cache, None)
        self._pool = graph.pool()
        return graph, buf
