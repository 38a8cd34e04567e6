"""A spy around the model's tokenizer, for tests of how prompt preparation uses it."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from chorusline.runtime import LoadedModel


class SpyTokenizer:
    """The model's tokenizer, noting how many characters it was asked to encode and on
    which threads."""

    def __init__(self, model: LoadedModel) -> None:
        self.inner = model.tokenizer
        self.encoded = 0
        self.threads: set[int] = set()

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        self.encoded += len(text)
        self.threads.add(threading.get_ident())
        return self.inner.encode(text, allow_special=allow_special)

    def token_bytes(self, token_id: int) -> bytes:
        return self.inner.token_bytes(token_id)

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return self.inner.special_tokens
