"""Inference runtime: plain synchronous Python and torch (no trio, no pykka).

Names are exported lazily (PEP 562): the block manager and scheduler are pure Python and
must stay importable without torch, so ``import chorusline.runtime`` loads nothing heavy
until a torch-backed name (``Engine``, ``load_model``...) is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # pure Python
    "BlockManager": "block_manager",
    "BlockUsage": "block_pool",
    # KV sizing (pure Python but for the dtype's element size, read lazily)
    "local_blocks_needed": "block_pool",
    "local_blocks_per_seq": "block_pool",
    "NoFreeBlocksError": "block_pool",
    "Scheduler": "scheduler",
    "SchedulerConfig": "scheduler",
    "SchedulerOutput": "batch",
    "ScheduledSlice": "batch",
    "TokenSequence": "sequence",
    "SequenceGroup": "sequence",
    "SequenceStatus": "sequence",
    "ModelConfig": "config",
    # torch-backed
    "AttentionMetadata": "attention",
    "build_group": "attention",
    "KVCache": "kv_cache",
    "pack_grid": "grid",
    "load_kernels": "grid_kernels",
    "ChatTemplate": "chat_template",
    "Engine": "engine",
    "EngineConfig": "engine_config",
    "LoadedModel": "loader",
    "default_model_path": "loader",
    "gemma_model_path": "loader",
    "prompt_prefix": "tokenizing",
    "tokenizer_from_gguf": "tokenizing",
    "open_gguf": "gguf_weights",
    "blocks_for_budget": "kv_cache",
    "bytes_per_block": "kv_cache",
    "pool_bytes_per_block": "kv_cache",
    "split_budget": "kv_cache",
    "load_model": "loader",
    "WeightCache": "weight_cache",
    "cache_root": "weight_cache",
    "dequantize": "dequant",
    "dequantize_to_torch": "dequant",
    "select_device": "device",
    "select_dtype": "device",
    "BertConfig": "encoder",
    "BertEncoder": "encoder",
    "DEFAULT_EMBEDDING_MODEL": "embedding_model",
    "EmbeddingModel": "embedding_model",
    "default_embedding_model_dir": "embedding_model",
    "load_embedding_model": "embedding_model",
    "shared_embedding_model": "embedding_model",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from chorusline.runtime.attention import (
        AttentionMetadata as AttentionMetadata,
        build_group as build_group,
    )
    from chorusline.runtime.batch import (
        ScheduledSlice as ScheduledSlice,
        SchedulerOutput as SchedulerOutput,
    )
    from chorusline.runtime.block_manager import BlockManager as BlockManager
    from chorusline.runtime.block_pool import (
        BlockUsage as BlockUsage,
        NoFreeBlocksError as NoFreeBlocksError,
        local_blocks_needed as local_blocks_needed,
        local_blocks_per_seq as local_blocks_per_seq,
    )
    from chorusline.runtime.chat_template import ChatTemplate as ChatTemplate
    from chorusline.runtime.config import ModelConfig as ModelConfig
    from chorusline.runtime.dequant import (
        dequantize as dequantize,
        dequantize_to_torch as dequantize_to_torch,
    )
    from chorusline.runtime.device import (
        select_device as select_device,
        select_dtype as select_dtype,
    )
    from chorusline.runtime.embedding_model import (
        DEFAULT_EMBEDDING_MODEL as DEFAULT_EMBEDDING_MODEL,
        EmbeddingModel as EmbeddingModel,
        default_embedding_model_dir as default_embedding_model_dir,
        load_embedding_model as load_embedding_model,
        shared_embedding_model as shared_embedding_model,
    )
    from chorusline.runtime.encoder import BertConfig as BertConfig, BertEncoder as BertEncoder
    from chorusline.runtime.engine import Engine as Engine
    from chorusline.runtime.engine_config import EngineConfig as EngineConfig
    from chorusline.runtime.gguf_weights import open_gguf as open_gguf
    from chorusline.runtime.grid import pack_grid as pack_grid
    from chorusline.runtime.grid_kernels import load_kernels as load_kernels
    from chorusline.runtime.kv_cache import (
        KVCache as KVCache,
        blocks_for_budget as blocks_for_budget,
        bytes_per_block as bytes_per_block,
        pool_bytes_per_block as pool_bytes_per_block,
        split_budget as split_budget,
    )
    from chorusline.runtime.loader import (
        LoadedModel as LoadedModel,
        default_model_path as default_model_path,
        gemma_model_path as gemma_model_path,
        load_model as load_model,
    )
    from chorusline.runtime.scheduler import (
        Scheduler as Scheduler,
        SchedulerConfig as SchedulerConfig,
    )
    from chorusline.runtime.sequence import (
        SequenceGroup as SequenceGroup,
        SequenceStatus as SequenceStatus,
        TokenSequence as TokenSequence,
    )
    from chorusline.runtime.tokenizing import (
        prompt_prefix as prompt_prefix,
        tokenizer_from_gguf as tokenizer_from_gguf,
    )
    from chorusline.runtime.weight_cache import WeightCache as WeightCache, cache_root as cache_root


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chorusline.runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"chorusline.runtime.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
