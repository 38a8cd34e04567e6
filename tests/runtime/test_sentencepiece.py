"""SentencePieceTokenizer: id-for-id agreement with transformers' Gemma 3 tokenizer.

The reference is what transformers builds from the same GGUF (`AutoTokenizer` with
`gguf_file=`): its GGUF loader is where the merge order for a merges-less Gemma file is
defined, so it is the tokenizer our token counts must agree with.  Loading the metadata
(~10 s) and the reference (~15 s) happens once per module.

The reference always matches special tokens in text; "plain" encoding corresponds to its
`split_special_tokens=True`, which leaves control-token text to the BPE but still matches
user-defined tokens (newline/tab runs, HTML tags) whole -- as llama.cpp does.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from chorusline.runtime.sentencepiece import SentencePieceTokenizer, derive_merges, hf_spelling

FRAGMENTS = [
    "Hello", "world", "the", " the", "The quick brown fox jumps over the lazy dog.",
    "It's a truth universally acknowledged", "don't", "I'm", "O'Neil", "rock'n'roll",
    "Dear Sir or Madam,", "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "Mr. Smith went to Washington.", "e.g.", "U.S.A.", "...", "?!", "!!!", "---", "***",
    "(parenthetical)", "[bracketed]", "{braced}", "\"quoted\"", "'single'", "a,b;c:d",
    "\u2014", "\u2013", "\u201cquoted\u201d", "\u00abguillemets\u00bb", "\u00bfQu\u00e9?",
    "0", "7", "42", "123", "1234567890", "3.14159", "-2.5e-10", "2024-11-22", "1,000,000",
    "0x1F", "v1.2.3", "$19.99", "\u20ac100", "100%", "a+b=c", "x^2", "\u00bd", "\u00b2",
    "\u0663\u0664\u0665", "\u216b", "caf\u00e9", "na\u00efve", "\u00dcn\u00efc\u00f6d\u00e9",
    "stra\u00dfe", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
    "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u5b57\u7b26",
    "\ud55c\uad6d\uc5b4", "\U0001f600", "\U0001f44d\U0001f3fd",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f1eb\U0001f1f7",
    "\U0001f916\u2728", "A\u030a", "\u00c5", "e\u0301",
    "def f(x):\n    return x ** 2\n", "class A:\n\tdef m(self):\n\t\tpass\n",
    "for (int i = 0; i < n; ++i) {\n  sum += a[i];\n}", "if x:\n        y()\n    else:\n",
    "#include <stdio.h>", "SELECT * FROM t WHERE id = 42;", "<div class=\"x\"></div>",
    "<table><tr><td>1</td></tr></table>", "</a>", "<li>", "[multimodal]",
    "https://example.com/path?q=1&r=2", "user@example.com", "C:\\Windows\\System32",
    "__init__", "snake_case_name", "camelCaseName", "ALLCAPS", "x" * 40, "ab" * 15,
    "\t", "\t\t", "\n", "\n\n", "\n\n\n\n", "\r\n", " \n", "\n ", "   ", "  ", " ", "\t \t",
    " " * 9, " " * 33, "\n" * 35, "\t" * 33, "\u00a0", "\u3000", "\u2028", "\u200b", "\ufeff",
    "\x00", "\x01", "\x07", "\x1b[31m", "\x7f", "\ue000", "\U000f0000", "\U00020000",
    "\U0002a6d6", "\u0378", "\U0001fae8", "\U00013000", "\u2fd5", "\uffff", "\U0010fffd",
    "\U0001d11e", "\U00010348", "\u2581", "\u2581\u2581", "a\u2581b",
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
    "<start_of_turn>user\n", "<start_of_turn>model\n", "<end_of_turn>\n", "<unused0>",
    "<unused17>", "<unused6241>", "<start_of_image>", "<end_of_image>", "<start_of",
    "_turn>", "<", ">", "</", "user", "model", "system",
]  # fmt: skip
SEPARATORS = ["", "", "", " ", " ", "  ", "\n", "\n\n", "\t", " \n ", "    "]
EDGES = ["", "", "", " ", "  ", "\n", "\t", " \n"]
PLAIN_TEXT_EXCEPTIONS = "\u2581"  # the normalizer turns '▁' into a space, in both tokenizers


def _strings() -> list[str]:
    """Deterministic mixtures of the fragments, each fragment alone, and random code points
    (most of which are missing from the vocabulary, so they need byte fallback)."""
    rng = random.Random(20250301)
    out = list(FRAGMENTS)
    for _ in range(1100):
        parts = rng.choices(FRAGMENTS, k=rng.randint(1, 7))
        body = "".join(p + rng.choice(SEPARATORS) for p in parts)
        out.append(rng.choice(EDGES) + body + rng.choice(EDGES))
    for _ in range(150):
        chars = [chr(rng.randrange(0x20, 0x30000)) for _ in range(rng.randint(1, 12))]
        out.append("".join(c for c in chars if not 0xD800 <= ord(c) < 0xE000) or "x")
    return out


STRINGS = _strings()


@pytest.fixture(scope="module")
def gguf_path(gemma_gguf_path: Path) -> Path:
    return gemma_gguf_path


@pytest.fixture(scope="module")
def metadata(gguf_path: Any) -> Mapping[str, Any]:
    from chorusline.runtime.gguf_weights import open_gguf

    return open_gguf(gguf_path).metadata


@pytest.fixture(scope="module")
def tokenizer(metadata: Mapping[str, Any]) -> SentencePieceTokenizer:
    start = time.perf_counter()
    tok = SentencePieceTokenizer.from_gguf_metadata(metadata)
    print(f"SentencePieceTokenizer.from_gguf_metadata: {time.perf_counter() - start:.2f} s")
    return tok


@pytest.fixture(scope="module")
def reference(gguf_path: Any) -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name)


@pytest.fixture(scope="module")
def reference_ids(reference: Any) -> dict[bool, list[list[int]]]:
    """Reference encodings keyed by allow_special."""
    special = reference(STRINGS, add_special_tokens=False)["input_ids"]
    plain = reference(STRINGS, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return {True: special, False: plain}


def _mismatches(got: list[Any], want: list[Any]) -> list[tuple[str, Any, Any]]:
    return [(s, g, w) for s, g, w in zip(STRINGS, got, want, strict=True) if g != w][:5]


@pytest.mark.slow  # loads the GGUF metadata and the reference (~25 s per module)
def test_model_is_the_references(metadata: Mapping[str, Any], reference: Any) -> None:
    """Same vocabulary spelling and the same 514,906 merges in the same order.  Most
    reorderings are invisible on sample text, so the list itself is compared."""
    model = json.loads(reference.backend_tokenizer.to_str())["model"]
    vocab = {hf_spelling(p): i for i, p in enumerate(metadata["tokenizer.ggml.tokens"])}
    assert vocab == model["vocab"]
    assert derive_merges(vocab) == [tuple(m) for m in model["merges"]]


@pytest.mark.slow
def test_strings_cover_the_hard_cases(tokenizer: SentencePieceTokenizer) -> None:
    assert len(STRINGS) >= 1000
    byte_ids = {i for i in range(tokenizer.vocab_size)
                if tokenizer.id_to_piece(i).startswith("<0x")}
    assert sum(bool(byte_ids & set(tokenizer.encode(s))) for s in STRINGS) > 100
    specials = set(tokenizer.special_tokens.values())
    assert sum(bool(specials & set(tokenizer.encode(s, allow_special=True)))
               for s in STRINGS) > 100


@pytest.mark.slow
@pytest.mark.parametrize("allow_special", [False, True], ids=["plain", "special"])
def test_encode_matches_reference(tokenizer: SentencePieceTokenizer,
                                  reference_ids: dict[bool, list[list[int]]],
                                  allow_special: bool) -> None:
    got = [tokenizer.encode(s, allow_special=allow_special) for s in STRINGS]
    assert _mismatches(got, reference_ids[allow_special]) == []


@pytest.mark.slow
def test_plain_encoding_treats_control_text_as_text(tokenizer: SentencePieceTokenizer) -> None:
    ids = tokenizer.encode("<start_of_turn>user\n")
    assert tokenizer.special_tokens["<start_of_turn>"] not in ids
    assert tokenizer.encode("<start_of_turn>user\n", allow_special=True)[0] == 105
    assert tokenizer.decode(ids) == "<start_of_turn>user\n"


@pytest.mark.slow
@pytest.mark.parametrize("allow_special", [False, True], ids=["plain", "special"])
def test_decode_matches_reference(tokenizer: SentencePieceTokenizer, reference: Any,
                                  reference_ids: dict[bool, list[list[int]]],
                                  allow_special: bool) -> None:
    ids_list = reference_ids[allow_special]
    want = [reference.decode(ids, skip_special_tokens=False) for ids in ids_list]
    assert _mismatches([tokenizer.decode(ids) for ids in ids_list], want) == []
    streamed = [b"".join(tokenizer.token_bytes(i) for i in ids).decode("utf-8")
                for ids in ids_list]
    assert _mismatches(streamed, want) == []
    round_trip = [w if any(c in s for c in PLAIN_TEXT_EXCEPTIONS) else s
                  for s, w in zip(STRINGS, want, strict=True)]
    assert _mismatches(want, round_trip) == []


@pytest.mark.slow
def test_token_bytes(tokenizer: SentencePieceTokenizer) -> None:
    sp = tokenizer.piece_to_id
    assert tokenizer.token_bytes(sp("\u2581the")) == b" the"
    assert tokenizer.token_bytes(sp("<0x0A>")) == b"\n"
    assert tokenizer.token_bytes(sp("<0xE2>")) == b"\xe2"
    assert tokenizer.token_bytes(sp("<start_of_turn>")) == b"<start_of_turn>"
    assert tokenizer.token_bytes(sp("  ")) == b"  "  # stored as spaces, looked up as '▁▁'
    assert tokenizer.id_to_piece(sp("\u2581the")) == "\u2581the"
    assert tokenizer.decode_bytes([sp("<0xE2>"), sp("<0x82>"), sp("<0xAC>")]) == "\u20ac".encode()


@pytest.mark.slow
def test_facts(tokenizer: SentencePieceTokenizer) -> None:
    assert tokenizer.vocab_size == 262144
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (2, 1)
    assert tokenizer.add_bos_token is True
    for name in ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"):
        assert name in tokenizer.special_tokens
    assert tokenizer.special_tokens["<bos>"] == 2
    assert tokenizer.special_tokens["<eos>"] == 1
    assert "\n" not in tokenizer.special_tokens  # user-defined, but ordinary text
    assert tokenizer.encode("Hello") == tokenizer.encode("Hello", allow_special=True) != []
    assert 2 not in tokenizer.encode("Hello")  # never adds BOS itself


@pytest.mark.slow
def test_rejects_other_tokenizer_models(metadata: Mapping[str, Any]) -> None:
    with pytest.raises(ValueError, match="unsupported GGUF tokenizer model 'gpt2'"):
        SentencePieceTokenizer.from_gguf_metadata({**metadata, "tokenizer.ggml.model": "gpt2"})


def test_rejects_incomplete_metadata() -> None:
    with pytest.raises(ValueError, match=r"lacks tokenizer\.ggml\.tokens"):
        SentencePieceTokenizer.from_gguf_metadata({"tokenizer.ggml.model": "llama"})
    with pytest.raises(ValueError, match="add_space_prefix"):
        SentencePieceTokenizer.from_gguf_metadata({
            "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a"],
            "tokenizer.ggml.token_type": [1]})


def test_merge_order_on_a_tiny_vocabulary() -> None:
    """Position first, then the longer left part: 'abc' prefers ab+c over a+bc."""
    vocab = {"a": 0, "b": 1, "c": 2, "bc": 3, "ab": 4, "abc": 5}
    assert derive_merges(vocab) == [("b", "c"), ("a", "b"), ("ab", "c"), ("a", "bc")]
