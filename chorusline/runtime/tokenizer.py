"""A byte-level BPE tokenizer on top of `tiktoken`, built from the model's own vocabulary.

Token counts drive budgets and billing, so encoding must match the model's reference
tokenizer id for id.  tiktoken merges the adjacent pair whose concatenation has the lowest
rank; HF merges by merge-list position.  For GPT-2 style vocabularies those agree when
ranks follow merge order, which in SmolLM2 is simply the token id, so we use ids as ranks
when the vocabulary allows it and otherwise map ranks back to ids after encoding.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import tiktoken

from chorusline.runtime.tokenizing import Vocabulary

_CONTRACTIONS = r"'s|'t|'re|'ve|'m|'ll|'d"
# GPT-2's byte-level rule, as HF `ByteLevel(use_regex=True)` applies it.
GPT2_PATTERN = _CONTRACTIONS + r"| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# HF `Digits(individual_digits=True)` then GPT-2's rule, fused into one regex: each numeric
# character stands alone, and because the digit split happens first a run of whitespace
# before a digit ends its piece there, hence the `(?![^\s\p{N}])` lookahead.
DIGITS_GPT2_PATTERN = (
    r"\p{N}|" + _CONTRACTIONS + r"| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"
)
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# llama.cpp's `tokenizer.ggml.pre` names -> the pre-tokenisation they stand for.
GGUF_PRE_PATTERNS = {
    "gpt2": GPT2_PATTERN,
    "gpt-2": GPT2_PATTERN,
    "smollm": DIGITS_GPT2_PATTERN,
    "llama3": LLAMA3_PATTERN,
    "llama-v3": LLAMA3_PATTERN,
    "llama-bpe": LLAMA3_PATTERN,
}
_GGUF_CONTROL, _GGUF_USER_DEFINED = 3, 4
_DROPPED = -1  # rank_to_id entry for bytes the vocabulary cannot represent


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, inverted."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def piece_to_bytes(piece: str) -> bytes:
    decoder = byte_decoder()
    return bytes(decoder[ch] for ch in piece)


class BpeTokenizer(Vocabulary):
    """Encode/decode with exactly the model's BPE; special tokens only when asked for."""

    def __init__(
        self,
        pieces: Sequence[str],
        merges: Iterable[tuple[str, str]],
        special_tokens: Mapping[str, int],
        pattern: str,
        *,
        eos_token_id: int | None = None,
        bos_token_id: int | None = None,
        name: str = "chorusline-bpe",
    ) -> None:
        self._pieces = list(pieces)
        self.special_tokens: dict[str, int] = dict(special_tokens)
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id
        self.pattern = pattern
        special_ids = set(self.special_tokens.values())
        self._bytes = [
            p.encode("utf-8") if i in special_ids else piece_to_bytes(p)
            for i, p in enumerate(self._pieces)
        ]
        ranks, self._rank_to_id = _bpe_ranks(self._pieces, self._bytes, merges, special_ids)
        self._first_unknown_rank = max([len(self._pieces), *(i + 1 for i in special_ids)])
        special_ranks = {
            tok: (i if self._rank_to_id is None else _append(self._rank_to_id, i))
            for tok, i in self.special_tokens.items()
        }
        self._encoding = tiktoken.Encoding(
            name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special_ranks
        )


    @property
    def encoding(self) -> tiktoken.Encoding:
        """The underlying tiktoken encoding (ranks are token ids when `ids_are_ranks`)."""
        return self._encoding

    @property
    def ids_are_ranks(self) -> bool:
        return self._rank_to_id is None

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        """Token ids for `text`; special-token text is plain text unless `allow_special`."""
        if allow_special:
            ranks: list[int] = self._encoding.encode(text, allowed_special="all")
        else:
            ranks = self._encoding.encode_ordinary(text)
        table = self._rank_to_id
        if table is None:
            # Ranks past the vocabulary are bytes it lacks; the reference drops them.
            if ranks and max(ranks) >= self._first_unknown_rank:
                return [r for r in ranks if r < self._first_unknown_rank]
            return ranks
        return [i for r in ranks if (i := table[r]) != _DROPPED]

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping[str, Any]) -> BpeTokenizer:
        """Build from llama.cpp's `tokenizer.ggml.*` keys (BPE / `gpt2` vocabularies)."""
        kind = metadata.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ValueError(f"unsupported GGUF tokenizer model {kind!r} (supported: gpt2 BPE)")
        pre = str(metadata.get("tokenizer.ggml.pre", "gpt2"))
        if pre not in GGUF_PRE_PATTERNS:
            raise ValueError(f"unsupported GGUF pre-tokenizer {pre!r}")
        pieces = [str(t) for t in metadata["tokenizer.ggml.tokens"]]
        types = list(metadata.get("tokenizer.ggml.token_type") or [])
        special = {
            pieces[i]: i
            for i, t in enumerate(types)
            if int(t) in (_GGUF_CONTROL, _GGUF_USER_DEFINED)
        }
        merges = [_split_merge(m) for m in metadata.get("tokenizer.ggml.merges") or []]
        eos = metadata.get("tokenizer.ggml.eos_token_id")
        bos = metadata.get("tokenizer.ggml.bos_token_id")
        return cls(
            pieces,
            merges,
            special,
            GGUF_PRE_PATTERNS[pre],
            eos_token_id=int(eos) if eos is not None else None,
            bos_token_id=int(bos) if bos is not None else None,
        )

    @classmethod
    def from_hf_dir(cls, directory: Path) -> BpeTokenizer:
        """Build from a Hugging Face `tokenizer.json` (+ `tokenizer_config.json` for eos)."""
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json in {directory}")
        data = json.loads(path.read_text(encoding="utf-8"))
        config_path = directory / "tokenizer_config.json"
        config: dict[str, Any] = {}
        if config_path.is_file():
            config = json.loads(config_path.read_text(encoding="utf-8"))
        return cls.from_hf_json(data, config)

    @classmethod
    def from_hf_json(
        cls, data: Mapping[str, Any], config: Mapping[str, Any] | None = None
    ) -> BpeTokenizer:
        model = data.get("model") or {}
        if model.get("type") != "BPE" or model.get("byte_fallback"):
            raise ValueError("only byte-level BPE tokenizer.json files are supported")
        vocab: dict[str, int] = dict(model["vocab"])
        added = {t["content"]: int(t["id"]) for t in data.get("added_tokens") or []}
        size = max([*vocab.values(), *added.values()]) + 1
        pieces = [""] * size
        for piece, i in [*vocab.items(), *added.items()]:
            pieces[i] = piece
        merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
        cfg = config or {}
        eos = _token_id(cfg.get("eos_token"), added, vocab)
        bos = _token_id(cfg.get("bos_token"), added, vocab)
        return cls(
            pieces,
            [_split_merge(m) for m in merges],
            added,
            hf_pre_tokenizer_pattern(data.get("pre_tokenizer")),
            eos_token_id=eos,
            bos_token_id=bos,
        )


def hf_pre_tokenizer_pattern(pre: Mapping[str, Any] | None) -> str:
    """The single regex equivalent to a tokenizer.json byte-level pre-tokenizer chain."""
    steps: list[Mapping[str, Any]] = []
    if pre is not None:
        steps = list(pre.get("pretokenizers", [])) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if not steps or steps[-1].get("type") != "ByteLevel":
        raise ValueError(f"unsupported pre-tokenizer chain {kinds}: must end in ByteLevel")
    last = steps[-1]
    if last.get("add_prefix_space"):
        raise ValueError("ByteLevel(add_prefix_space=True) is not supported")
    head = steps[:-1]
    if not head and last.get("use_regex", True):
        return GPT2_PATTERN
    if (
        len(head) == 1
        and head[0].get("type") == "Digits"
        and head[0].get("individual_digits")
        and last.get("use_regex", True)
    ):
        return DIGITS_GPT2_PATTERN
    if len(head) == 1 and head[0].get("type") == "Split" and not last.get("use_regex", True):
        regex = (head[0].get("pattern") or {}).get("Regex")
        if isinstance(regex, str) and head[0].get("behavior") == "Isolated":
            return regex
    raise ValueError(f"unsupported pre-tokenizer chain {kinds}")


def _split_merge(merge: str) -> tuple[str, str]:
    left, sep, right = merge.partition(" ")
    if not sep:
        raise ValueError(f"malformed BPE merge {merge!r}")
    return left, right


def _token_id(value: Any, added: Mapping[str, int], vocab: Mapping[str, int]) -> int | None:
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str):
        return None
    return added.get(value, vocab.get(value))


def _append(table: list[int], token_id: int) -> int:
    table.append(token_id)
    return len(table) - 1


def _bpe_ranks(
    pieces: Sequence[str],
    token_bytes: Sequence[bytes],
    merges: Iterable[tuple[str, str]],
    special_ids: set[int],
) -> tuple[dict[bytes, int], list[int] | None]:
    """tiktoken ranks for the vocabulary, and a rank->id table when ids can't be ranks.

    Only single bytes and merge results are mergeable: other entries can't be produced by
    the reference BPE, so they must not be produced here either.  tiktoken needs a rank for
    every byte, but vocabularies may lack some (SmolLM2 has no 0xF5..0xFF); the reference
    drops such bytes, so they get ranks past every id and `BpeTokenizer.encode` drops them.
    """
    index = {p: i for i, p in enumerate(pieces) if i not in special_ids}
    order = sorted(i for i in index.values() if len(token_bytes[i]) == 1)
    seen = set(order)
    singles = len(order)
    for left, right in merges:
        merged = index.get(left + right)
        if merged is None:
            raise ValueError(f"merge {left!r} + {right!r} produces no vocabulary entry")
        if merged not in seen:
            seen.add(merged)
            order.append(merged)
    present = {token_bytes[i] for i in order[:singles]}
    missing = [bytes([b]) for b in range(256) if bytes([b]) not in present]
    # Single-byte ranks never matter (a pair is always longer), so only merge order must hold.
    if all(a < b for a, b in itertools.pairwise(order[singles:])):
        ranks = {token_bytes[i]: i for i in order}
        beyond = max([len(pieces), *(i + 1 for i in special_ids)])
        ranks.update({b: beyond + j for j, b in enumerate(missing)})
        return ranks, None
    ranks = {token_bytes[i]: rank for rank, i in enumerate(order)}
    ranks.update({b: len(order) + j for j, b in enumerate(missing)})
    return ranks, [*order, *([_DROPPED] * len(missing))]
