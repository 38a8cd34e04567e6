"""The embeddings door's pieces: checking inputs, charging the key, asking the embedder.

Inputs are checked and tokenised before any actor work, so every bad input is a 400
naming ``input`` (and which one) rather than a failure deep in a forward. Long inputs
are refused, not truncated, as OpenAI does: a vector of the first 256 tokens of a long
document is not a vector of that document, and a silent cut would hide that.

The charge is the key's own bucket, the one chat turns use (asked by the key's
``SessionActor``, so both share one budget): one request, and the exact input tokens,
counted as the model reads them (``[CLS]`` and ``[SEP]`` included). Its stream slot is
held while the forward runs, so a key's concurrency limit bounds its embedding calls too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from chorusline.actors import ActorDead, ActorSystem
from chorusline.chat.embedder import EMBEDDER_KEY, EmbedRows, EncoderLike, Pending
from chorusline.protocols import ContextTooLong, InvalidRequest, InvalidTokenId, ServiceUnavailable

if TYPE_CHECKING:
    import numpy as np

#: Most inputs in one request (OpenAI's limit).
MAX_INPUTS = 2048
#: How long a caller waits for its vectors before a 503 (a stuck or restarting worker).
EMBED_TIMEOUT = 120.0

Inputs = Sequence[str] | Sequence[Sequence[int]]


@dataclass(frozen=True)
class EmbedCharge:
    """Ask the key's session to admit an embedding call of ``tokens`` input tokens."""

    request_id: str
    tokens: int


@dataclass(frozen=True)
class EmbedGrant:
    """An admitted call: the rate-limit headers to send, and ``release`` (call it once
    the call is over) which settles the charge and frees the stream slot."""

    headers: dict[str, str]
    release: Callable[[], None]


@dataclass
class Embeddings:
    """``vectors`` is float32 ``[len(inputs), dimensions]``, in the inputs' order."""

    model: str
    vectors: np.ndarray
    prompt_tokens: int
    rate_headers: dict[str, str] = field(default_factory=dict)


def prepare_rows(model: EncoderLike, inputs: Inputs) -> list[tuple[int, ...]]:
    """Every input as the sequence the model reads; raises a 400 naming the first bad
    one. Strings are tokenised; id lists are text tokens (no ``[CLS]``/``[SEP]``), each
    id within the embedding model's vocabulary. Runs on a worker thread."""
    if not inputs:
        raise InvalidRequest("input must not be empty", param="input")
    if len(inputs) > MAX_INPUTS:
        raise InvalidRequest(f"input may hold at most {MAX_INPUTS} items, got {len(inputs)}",
                             param="input")
    if all(isinstance(item, str) for item in inputs):
        texts = [str(item) for item in inputs]
        for i, text in enumerate(texts):
            if not text:
                raise InvalidRequest(f"input[{i}] is an empty string", param="input")
        rows = model.tokenize(texts)
    else:
        rows = [model.wrap(_checked_ids(model.vocab_size, item, i))
                for i, item in enumerate(inputs)]
    limit = model.max_seq_length
    for i, row in enumerate(rows):
        if len(row) > limit:
            raise ContextTooLong(
                f"input[{i}] is {len(row)} tokens long ([CLS] and [SEP] included), over "
                f"{model.name}'s limit of {limit}; split it or shorten it", param="input")
    return [tuple(row) for row in rows]


def _checked_ids(vocab_size: int, item: object, index: int) -> list[int]:
    if isinstance(item, str) or not isinstance(item, Sequence):
        raise InvalidRequest(f"input[{index}] must be a list of token ids like the others",
                             param="input")
    if not item:
        raise InvalidRequest(f"input[{index}] is an empty list of token ids", param="input")
    ids: list[int] = []
    for token in item:
        if isinstance(token, bool) or not isinstance(token, int):
            raise InvalidRequest(f"input[{index}] holds {token!r}, not a token id",
                                 param="input")
        if not 0 <= token < vocab_size:
            raise InvalidTokenId(f"input[{index}] holds token id {token}, outside the "
                                 f"embedding model's vocabulary [0, {vocab_size})",
                                 param="input")
        ids.append(token)
    return ids


async def run_embedder(system: ActorSystem, rows: list[tuple[int, ...]]) -> np.ndarray:
    """Ask the embedder for ``rows`` and wait for its batch to run (a 503 on a crash)."""
    embedder = await system.registry.wait_for(EMBEDDER_KEY)
    try:
        pending: Pending = await embedder.ask(EmbedRows(tuple(rows)), timeout=30.0)
    except ActorDead as error:
        raise ServiceUnavailable("the embedding worker is restarting; retry the request"
                                 ) from error
    with trio.move_on_after(EMBED_TIMEOUT) as waited:
        return await pending.result()
    assert waited.cancelled_caught
    raise ServiceUnavailable(f"no embedding came back within {EMBED_TIMEOUT:g} s; retry")


async def checked_rows(load: Callable[[], EncoderLike], inputs: Inputs,
                       dimensions: int | None, limiter: trio.CapacityLimiter
                       ) -> list[tuple[int, ...]]:
    """``prepare_rows`` on a worker thread (tokenising is CPU work), after the model's
    first load there and the ``dimensions`` check: only the model's own size is served
    (this model has no reduced-size variants)."""

    def run() -> list[tuple[int, ...]]:
        model = load()
        if dimensions is not None and dimensions != model.dimensions:
            raise InvalidRequest(f"{model.name} only produces {model.dimensions}-dimensional "
                                 f"embeddings; dimensions={dimensions} is not supported",
                                 param="dimensions")
        return prepare_rows(model, inputs)

    return await trio.to_thread.run_sync(run, limiter=limiter)


def loaded_once(factory: Callable[[], EncoderLike]) -> Callable[[], EncoderLike]:
    """``factory``'s model, built on the first call (from any thread) and shared after:
    the door and every incarnation of the embedder use one copy of the weights."""
    lock = threading.Lock()
    loaded: list[EncoderLike] = []

    def load() -> EncoderLike:
        with lock:
            if not loaded:
                loaded.append(factory())
            return loaded[0]

    return load
