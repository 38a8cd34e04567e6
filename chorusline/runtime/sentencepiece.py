"""A SentencePiece-style BPE tokenizer (Gemma 3) on top of Hugging Face `tokenizers`.

Token counts drive budgets and billing, so encoding must match the reference tokenizer id
for id.  The byte-level tokenizer next door (`tokenizer.py`) rides on tiktoken, which cannot
express this vocabulary: SentencePiece BPE starts from characters, not bytes, merges by the
vocabulary's own preference order, and only falls back to `<0xXX>` byte tokens for a
character the vocabulary lacks.  A byte-level rank table has no notion of that fallback, so
we build the same BPE model with byte fallback in `tokenizers` that transformers builds from
a Gemma GGUF, and keep the decoding side (bytes per token) in a plain table.

The GGUF carries no merges.  They are rebuilt from the vocabulary the way transformers'
GGUF loader does it for Gemma (`gemma_tokenizer` + `generate_merges`): every split of a
token into two vocabulary entries is a merge, ordered by the token's position in the file
(Gemma's scores do not follow merge order; positions do), then by longer left part first.
Tokens made only of spaces are stored as real spaces but looked up as runs of '▁', so they
are respelled first, as transformers does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE

from chorusline.runtime.tokenizing import Vocabulary

SPACE = "\u2581"  # SentencePiece's visible space, '▁'
_GGUF_CONTROL, _GGUF_USER_DEFINED = 3, 4
_REQUIRED_KEYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type")


def hf_spelling(piece: str) -> str:
    """The spelling the BPE model looks a piece up by: all-whitespace pieces with a space
    are stored as real spaces in Gemma GGUFs but the normalizer produces '▁' runs."""
    return SPACE * len(piece) if " " in piece and not piece.strip() else piece


def derive_merges(vocab: Mapping[str, int]) -> list[tuple[str, str]]:
    """Merges implied by the vocabulary, in exactly transformers' order for Gemma GGUFs.

    `generate_merges` sorts all (left, right) splits by (token position, len(left),
    len(right)) best first; that key is unique per split, so emitting tokens in position
    order and splits longest-left first reproduces it without the 500k-entry sort.
    """
    merges: list[tuple[str, str]] = []
    append = merges.append
    for piece, _ in sorted(vocab.items(), key=lambda item: item[1]):
        for cut in range(len(piece) - 1, 0, -1):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                append((left, right))
    return merges


def _piece_bytes(piece: str) -> bytes:
    """What HF's decoder (Replace '▁'->' ', ByteFallback, Fuse) makes of one piece."""
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            return bytes([int(piece[3:5], 16)])
        except ValueError:
            pass
    return piece.replace(SPACE, " ").encode("utf-8")


class SentencePieceTokenizer(Vocabulary):
    """Encode/decode with exactly the reference BPE; control tokens only when asked for.

    `special_tokens` holds the control tokens (what HF marks `special=True`).  Gemma's
    user-defined tokens are newline/tab/space runs and HTML tags: the reference always
    matches them whole, in both modes, and they are ordinary text when generated, so they
    are matched here too but kept out of `special_tokens` (which callers treat as
    "no text" in logprobs and as non-text in grammars).
    """

    def __init__(
        self,
        pieces: Sequence[str],
        token_types: Sequence[int],
        *,
        eos_token_id: int | None = None,
        bos_token_id: int | None = None,
        unk_token_id: int | None = None,
        pad_token_id: int | None = None,
        add_bos_token: bool = True,
    ) -> None:
        if len(token_types) != len(pieces):
            raise ValueError(
                f"{len(pieces)} tokens but {len(token_types)} token types in the vocabulary")
        self._pieces = list(pieces)
        self.eos_token_id = eos_token_id
        self.bos_token_id = bos_token_id
        self.add_bos_token = add_bos_token
        spelled = [hf_spelling(p) for p in self._pieces]
        vocab = {p: i for i, p in enumerate(spelled)}
        control = {i for i, t in enumerate(token_types) if int(t) == _GGUF_CONTROL}
        # GemmaTokenizer makes its bos/eos/unk/pad tokens special whatever the file says.
        named = (bos_token_id, eos_token_id, unk_token_id, pad_token_id)
        control |= {i for i in named if i is not None}
        user = [i for i, t in enumerate(token_types)
                if int(t) == _GGUF_USER_DEFINED and i not in control]
        self.special_tokens: dict[str, int] = {self._pieces[i]: i for i in sorted(control)}
        unk = self._pieces[unk_token_id] if unk_token_id is not None else "<unk>"
        model = BPE(vocab=vocab, merges=derive_merges(vocab), unk_token=unk,
                    fuse_unk=True, byte_fallback=True, dropout=None)
        # Both share one model; they differ only in whether control-token text is matched,
        # which `tokenizers` decides per Tokenizer, not per call (a per-call toggle would
        # race between threads).
        self._special = _pipeline(model)
        self._plain = _pipeline(model)
        for tok in (self._special, self._plain):
            # Same spelling rule as transformers: control tokens as stored, user-defined
            # ones only if the respelled vocabulary still has them (space runs do not).
            tok.add_special_tokens([AddedToken(self._pieces[i], normalized=False, special=True)
                                    for i in sorted(control)])
            tok.add_tokens([AddedToken(self._pieces[i], normalized=False, special=False)
                            for i in user if self._pieces[i] in vocab])
        self._plain.encode_special_tokens = True
        self._bytes = [_piece_bytes(p) for p in spelled]


    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        """Token ids for `text`, never with BOS/EOS: the caller decides about BOS."""
        tok = self._special if allow_special else self._plain
        ids: list[int] = tok.encode(text, add_special_tokens=False).ids
        return ids

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping[str, Any]) -> SentencePieceTokenizer:
        """Build from llama.cpp's `tokenizer.ggml.*` keys (Gemma-style `llama` vocabularies)."""
        kind = metadata.get("tokenizer.ggml.model")
        if kind != "llama":
            raise ValueError(
                f"unsupported GGUF tokenizer model {kind!r} "
                "(SentencePieceTokenizer supports 'llama', i.e. SentencePiece BPE)")
        missing = [k for k in _REQUIRED_KEYS if metadata.get(k) is None]
        if missing:
            raise ValueError(f"GGUF tokenizer metadata lacks {', '.join(missing)}")
        # llama.cpp assumes a space prefix when the key is absent (Llama 2 style); this
        # pipeline has none, so such a vocabulary would be tokenized wrongly.
        if metadata.get("tokenizer.ggml.add_space_prefix", True):
            raise ValueError("SentencePiece vocabularies with add_space_prefix are not supported "
                             "(only Gemma-style vocabularies without a space prefix)")
        pieces = [str(t) for t in metadata["tokenizer.ggml.tokens"]]
        types = [int(t) for t in metadata["tokenizer.ggml.token_type"]]

        def token_id(name: str) -> int | None:
            value = metadata.get(f"tokenizer.ggml.{name}_token_id")
            return int(value) if value is not None else None

        return cls(
            pieces,
            types,
            eos_token_id=token_id("eos"),
            bos_token_id=token_id("bos"),
            unk_token_id=token_id("unknown"),
            pad_token_id=token_id("padding"),
            add_bos_token=bool(metadata.get("tokenizer.ggml.add_bos_token", True)),
        )


def _pipeline(model: BPE) -> Tokenizer:
    """GemmaTokenizer's pipeline: spaces become '▁' and the whole text is one BPE word
    (its split on ' ' never fires after that normalizer, but it is kept for parity)."""
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous", invert=False)
    return tok
