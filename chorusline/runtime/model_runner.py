"""Turns a scheduler step into flat tensors, runs the model, returns the logits that sample.

The flat batch is ordered [single-token chunks | longer chunks] so that decodes form one
attention group with no query padding (see ``attention``). Only the last token of a chunk
that samples reaches the LM head. On CUDA, decode-only steps replay captured CUDA graphs,
keyed by (padded batch size, padded block-table width), because at decode a 135M model is
bound by kernel-launch overhead rather than by arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from chorusline.runtime.attention import AttentionGroup, AttentionMetadata, build_group
from chorusline.runtime.kv_cache import KVCache
from chorusline.runtime.model import LlamaModel
from chorusline.runtime.scheduler import ScheduledChunk, SchedulerOutput

_GRAPH_BATCHES = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)


@dataclass
class StepResult:
    """Logits ``[S, V]`` (fp32), one row per chunk in ``sample_chunks``, same order."""

    logits: torch.Tensor
    sample_chunks: list[ScheduledChunk]


class ModelRunner:
    def __init__(self, model: LlamaModel, kv_cache: KVCache, *, cuda_graphs: bool = True) -> None:
        self.model = model
        self.kv_cache = kv_cache
        self.device = model.device
        self._graphs: _DecodeGraphs | None = None
        if cuda_graphs and self.device.type == "cuda":
            self._graphs = _DecodeGraphs(model, kv_cache)

    @torch.inference_mode()
    def execute(self, step: SchedulerOutput) -> StepResult:
        self.kv_cache.copy_blocks(list(step.blocks_to_copy))
        decodes = [c for c in step.chunks if c.num_tokens == 1]
        others = [c for c in step.chunks if c.num_tokens > 1]
        chunks = decodes + others
        sample_chunks = [c for c in chunks if c.sample]
        if not sample_chunks and not chunks:
            return StepResult(torch.empty(0, self.model.config.vocab_size), [])
        if self._graphs is not None and not others and self._graphs.fits(decodes):
            logits = self._graphs.run(decodes)
            if len(sample_chunks) != len(decodes):  # a 1-token mid-prompt chunk samples nothing
                keep = [i for i, c in enumerate(decodes) if c.sample]
                logits = logits[torch.tensor(keep, device=logits.device)]
            return StepResult(logits, sample_chunks)

        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        sample_rows: list[int] = []
        for c in chunks:
            ids.extend(c.token_ids)
            positions.extend(c.positions)
            slots.extend(c.slot_mapping)
            if c.sample:
                sample_rows.append(len(ids) - 1)
        dev = self.device
        cache = self.kv_cache
        groups = []
        if decodes:
            groups.append(_group(0, decodes, cache, dev))
        if others:
            groups.append(_group(len(decodes), others, cache, dev))
        meta = AttentionMetadata(_long(slots, dev), groups, self.model.scale)
        logits = self.model.forward(_long(ids, dev), _long(positions, dev), meta, cache,
                                    _long(sample_rows, dev))
        return StepResult(logits, sample_chunks)


def _long(values: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64).to(device, non_blocking=True)


def _group(start: int, chunks: Sequence[ScheduledChunk], cache: KVCache,
           device: torch.device) -> AttentionGroup:
    return build_group(start, [c.num_tokens for c in chunks], [c.start for c in chunks],
                       [c.block_table for c in chunks], cache.block_size, cache.null_block,
                       device)


class _DecodeGraphs:
    """CUDA graphs of the decode forward pass, captured lazily per shape bucket.

    Inputs live in static buffers; padding rows write their K/V into the null block and
    attend to it only, so they never touch a real sequence's cache.
    """

    def __init__(self, model: LlamaModel, cache: KVCache) -> None:
        self.model = model
        self.cache = cache
        self.max_width = -(-model.config.max_position_embeddings // cache.block_size)
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]]
        self._graphs = {}
        self._pool: Any = None

    def fits(self, chunks: Sequence[ScheduledChunk]) -> bool:
        return 0 < len(chunks) <= _GRAPH_BATCHES[-1]

    def run(self, chunks: Sequence[ScheduledChunk]) -> torch.Tensor:
        n = len(chunks)
        batch = next(b for b in _GRAPH_BATCHES if b >= n)
        needed = max(-(-c.context_len // self.cache.block_size) for c in chunks)
        width = 1
        while width < needed:
            width *= 2
        width = min(width, self.max_width)
        key = (batch, width)
        if key not in self._graphs:
            self._graphs[key] = self._capture(batch, width)
        graph, buf = self._graphs[key]
        self._fill(buf, chunks, batch, width)
        graph.replay()
        return buf["logits"][:n].clone()

    def _fill(self, buf: dict[str, torch.Tensor], chunks: Sequence[ScheduledChunk],
              batch: int, width: int) -> None:
        cache = self.cache
        pad = batch - len(chunks)
        null_slot = cache.null_block * cache.block_size
        ids = [c.token_ids[0] for c in chunks] + [0] * pad
        pos = [c.start for c in chunks] + [0] * pad
        slots = [c.slot_mapping[0] for c in chunks] + [null_slot] * pad
        tables = [list(c.block_table) for c in chunks] + [[cache.null_block]] * pad
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
