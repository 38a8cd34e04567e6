"""Which tokenizer a GGUF file needs, and how a raw-text prompt starts.

Two vocabularies are served: SmolLM2's byte-level BPE (``tokenizer.BpeTokenizer``, on
tiktoken) and Gemma 3's SentencePiece BPE with byte fallback
(``sentencepiece.SentencePieceTokenizer``, on Hugging Face ``tokenizers``). Past the
loader the rest of the system (prompt assembly, streaming, grammars, billing) sees either
only through ``protocols.TokenizerLike``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from chorusline.runtime.sentencepiece import SentencePieceTokenizer
    from chorusline.runtime.tokenizer import BpeTokenizer

    Tokenizer: TypeAlias = BpeTokenizer | SentencePieceTokenizer


class Vocabulary:
    """The decoding half both tokenizers share: each id's vocabulary entry and the bytes
    it adds to the output stream (``_pieces``, ``_bytes``, set by the subclass), which
    streaming concatenates token by token."""

    _pieces: list[str]
    _bytes: list[bytes]

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        table = self._bytes
        return b"".join(table[i] for i in ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text for `ids`; incomplete UTF-8 sequences become U+FFFD (Python's rules, as HF
        for whole tokens)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self._bytes[token_id]

    def id_to_piece(self, token_id: int) -> str:
        """The vocabulary entry as the model file spells it ('Ġthe', '▁the', '<0x0A>')."""
        return self._pieces[token_id]

    def piece_to_id(self, piece: str) -> int:
        return self._piece_index[piece]

    @cached_property
    def _piece_index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self._pieces)}


def tokenizer_from_gguf(metadata: Mapping[str, Any]) -> Tokenizer:
    """The tokenizer ``tokenizer.ggml.model`` names: ``llama`` (SentencePiece BPE) or
    otherwise byte-level BPE (which refuses what it cannot express)."""
    if metadata.get("tokenizer.ggml.model") == "llama":
        from chorusline.runtime.sentencepiece import SentencePieceTokenizer
        return SentencePieceTokenizer.from_gguf_metadata(metadata)
    from chorusline.runtime.tokenizer import BpeTokenizer
    return BpeTokenizer.from_gguf_metadata(metadata)


def prompt_prefix(tokenizer: object) -> list[int]:
    """The ids a raw-text prompt starts with: ``[bos]`` where the vocabulary says to add it
    (Gemma: ``tokenizer.ggml.add_bos_token``), else nothing (SmolLM2, or a tokenizer that
    says nothing about either)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    add = getattr(tokenizer, "add_bos_token", False)
    return [bos] if isinstance(bos, int) and add is True else []
