"""OpenAI's ``/v1/embeddings`` wire format: the request body parsed and checked, and
the response body built. Framework-free (no web, no numpy): vectors arrive as raw
little-endian float32 bytes, which is exactly what ``encoding_format="base64"`` sends,
so the base64 answer is the bytes themselves and the float answer decodes the same
bytes: both formats give bit-identical vectors.

Every check names its field in ``param`` (OpenAI's 400 shape), so a client learns which
input is wrong; which token ids and lengths the model accepts is the chat layer's to
check, since only it knows the model.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chorusline.protocols.errors import InvalidRequest
from chorusline.protocols.openai_fields import end_user, reject_unknown

ALLOWED_FIELDS = frozenset({"input", "model", "encoding_format", "dimensions", "user"})
ENCODING_FORMATS = ("float", "base64")
#: OpenAI's limits: at most 2048 inputs per request, a ``user`` of at most 256 characters.
MAX_INPUTS = 2048
MAX_USER_CHARS = 256

EncodingFormat = Literal["float", "base64"]


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    #: Always a list: texts, or lists of token ids (never a mix).
    inputs: list[str] | list[list[int]]
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None
    user: str | None = None


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    reject_unknown(body, ALLOWED_FIELDS)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter (a string)", param="model")
    if "input" not in body:
        raise InvalidRequest("you must provide an input parameter", param="input")
    fmt = body.get("encoding_format")
    if fmt is None:
        fmt = "float"
    if fmt not in ENCODING_FORMATS:
        raise InvalidRequest(f"encoding_format must be 'float' or 'base64', not {fmt!r}",
                             param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(
            dimensions, int) or dimensions < 1):
        raise InvalidRequest("dimensions must be a positive integer", param="dimensions")
    user = end_user(body)
    encoding: EncodingFormat = "base64" if fmt == "base64" else "float"
    return EmbeddingRequest(model, parse_input(body["input"]), encoding, dimensions, user)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_input(value: Any) -> list[str] | list[list[int]]:
    """A string, a list of strings, a list of token ids or a list of such lists, as a
    list of texts or a list of id lists; empty strings and empty lists are refused."""
    one_ids = isinstance(value, list) and bool(value) and all(_is_id(v) for v in value)
    if isinstance(value, str) or one_ids:
        value = [value]
    if not isinstance(value, list):
        raise InvalidRequest("input must be a string, an array of strings, an array of "
                             "token ids or an array of token-id arrays", param="input")
    if not value:
        raise InvalidRequest("input must not be empty", param="input")
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"input may hold at most {MAX_INPUTS} items, got {len(value)}",
                             param="input")
    if all(isinstance(v, str) for v in value):
        for i, text in enumerate(value):
            if not text:
                raise InvalidRequest(f"input[{i}] is an empty string", param="input")
        return list(value)
    for i, ids in enumerate(value):
        if not isinstance(ids, list) or not all(_is_id(t) for t in ids):
            raise InvalidRequest(f"input[{i}] is neither a string like the others nor an "
                                 f"array of token ids (integers)", param="input")
        if not ids:
            raise InvalidRequest(f"input[{i}] is an empty array", param="input")
    return [list(ids) for ids in value]


def _floats(raw: bytes) -> list[float]:
    vector = array("f", raw)
    if sys.byteorder != "little":
        vector.byteswap()
    return vector.tolist()


def embedding_response(vectors: Sequence[bytes], encoding_format: EncodingFormat,
                       model: str, prompt_tokens: int) -> dict[str, Any]:
    """The response body; each vector is little-endian float32 bytes."""
    encode = ((lambda raw: base64.b64encode(raw).decode("ascii"))
              if encoding_format == "base64" else _floats)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(raw)}
                 for i, raw in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
