"""Tokenizer: id-for-id agreement with the model's reference Hugging Face tokenizer.

The reference is the `smollm_reference_tokenizer` fixture (see conftest.py): SmolLM2's own
`tokenizer.json` pipeline rebuilt with `tokenizers` from the GGUF metadata.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tokenizers import AddedToken, Tokenizer as HFTokenizer, models, pre_tokenizers

from chorusline.runtime.loader import LoadedModel
from chorusline.runtime.tokenizer import (
    DIGITS_GPT2_PATTERN,
    GPT2_PATTERN,
    BpeTokenizer,
    hf_pre_tokenizer_pattern,
)

FRAGMENTS = [
    "Hello", "world", " the", "The quick brown fox", "jumps over", "lazy dog.", "don't",
    "I'm", "we're", "they've", "you'll", "she'd", "IT'S", "'s", "O'Neil", "rock'n'roll",
    "def f(x):\n    return x**2", "for (int i = 0; i < n; ++i) {", "}", "=>", "!==", "::",
    "#include <stdio.h>", "SELECT * FROM t WHERE id=42;", "\t", "\n", "\r\n", "\n\n\n",
    "   ", "  ", " ", "\t\t  \n", "\u00a0", "\u3000", "\u2028", "123", "3.14159", "2024-11-22",
    "1,000,000", "0x1F", "v1.2.3", "٣٤٥", "Ⅻ", "½", "²", "¹²³", "café", "naïve", "Ünïcödé",
    "straße", "Ελληνικά", "русский текст", "עברית", "العربية", "हिन्दी", "ภาษาไทย",
    "日本語のテキスト", "中文字符", "한국어", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🤖✨",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<|im_start|>user\n",
    "<|im", "|>", "<|", "user", "assistant", "system", "$", "€100", "£", "100%", "a+b=c",
    "e.g.", "U.S.A.", "...", "\u2014", "\u2013", "“quoted”", "«guillemets»", "¿Qué?", "¡Hola!",
    "https://example.com/path?q=1&r=2", "user@example.com", "C:\\Windows\\System32",
    "__init__", "snake_case_name", "camelCaseName", "ALLCAPS", "MiXeD", "x" * 40, "ab" * 15,
    "\u200b", "\ufeff", "\x00", "\x07", "\x1b[31m", "\U00010348", "\U0001f600\U0001f601",
    "\U0001d518\U0001d52b\U0001d526", "\ufb01", "Å", "Å", "é", "é",
]  # fmt: skip
SEPARATORS = ["", " ", "  ", "\n", "\t", " \n ", "", ""]


def generated_strings(count: int = 1200) -> list[str]:
    """Deterministic mixes of fragments, random code points and whitespace runs."""
    rng = random.Random(20261122)
    texts = list(FRAGMENTS)
    while len(texts) < count:
        parts = []
        for _ in range(rng.randint(1, 8)):
            roll = rng.random()
            if roll < 0.7:
                parts.append(rng.choice(FRAGMENTS))
            elif roll < 0.85:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
            else:
                parts.append(
                    "".join(
                        chr(rng.choice([rng.randint(32, 0x2FF), rng.randint(0x370, 0xFFFF)]))
                        for _ in range(rng.randint(1, 6))
                    ).replace("\ud800", "")
                )
            parts.append(rng.choice(SEPARATORS))
        text = "".join(parts)
        texts.append("".join(ch for ch in text if not 0xD800 <= ord(ch) <= 0xDFFF))
    return texts


@pytest.fixture(scope="module")
def reference(smollm_reference_tokenizer: HFTokenizer) -> HFTokenizer:
    return smollm_reference_tokenizer


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return generated_strings()


def test_smollm_facts(smollm: LoadedModel) -> None:
    tok = smollm.tokenizer
    assert tok.ids_are_ranks  # SmolLM2's ids follow merge order
    assert tok.pattern == DIGITS_GPT2_PATTERN
    assert tok.vocab_size == 49152
    assert tok.special_tokens["<|im_start|>"] == 1
    assert tok.special_tokens["<|im_end|>"] == tok.eos_token_id == 2
    assert len(tok.special_tokens) == 17
    assert tok.id_to_piece(tok.piece_to_id("Ġthe")) == "Ġthe"
    assert tok.token_bytes(tok.piece_to_id("Ġthe")) == b" the"


def test_specials_allowed_match_reference(
    smollm: LoadedModel, reference: HFTokenizer, texts: list[str]
) -> None:
    assert len(texts) >= 1000
    mismatches = [
        t for t in texts
        if smollm.tokenizer.encode(t, allow_special=True)
        != reference.encode(t, add_special_tokens=False).ids
    ]  # fmt: skip
    assert mismatches == []


def test_specials_as_text_match_reference(
    smollm: LoadedModel, reference: HFTokenizer, texts: list[str]
) -> None:
    reference.encode_special_tokens = True
    try:
        expected = [reference.encode(t, add_special_tokens=False).ids for t in texts]
    finally:
        reference.encode_special_tokens = False
    got = [smollm.tokenizer.encode(t) for t in texts]
    assert [t for t, a, b in zip(texts, got, expected, strict=True) if a != b] == []
    assert smollm.tokenizer.encode("<|im_start|>") != [1]


def test_decode_round_trip_and_matches_reference(
    smollm: LoadedModel, reference: HFTokenizer, texts: list[str]
) -> None:
    tok = smollm.tokenizer
    for text in texts:
        ids = tok.encode(text, allow_special=True)
        assert tok.decode(ids) == reference.decode(ids, skip_special_tokens=False)
        # Round trip holds unless the text has a byte the vocabulary lacks (reference drops it).
        if all(tok.encode(ch) for ch in set(text)):
            assert tok.decode(ids) == text
            assert tok.decode_bytes(ids) == text.encode("utf-8")


def test_bytes_missing_from_vocab_are_dropped_like_reference(
    smollm: LoadedModel, reference: HFTokenizer
) -> None:
    text = "a\x04b\U00040000c"  # 0x04 and 0xF1 lead byte are not in SmolLM2's vocabulary
    assert smollm.tokenizer.encode(text) == reference.encode(text, add_special_tokens=False).ids


def test_decode_partial_utf8_is_replacement(smollm: LoadedModel) -> None:
    tok = smollm.tokenizer
    ids = tok.encode("😀")
    assert len(ids) > 1
    assert tok.decode(ids[:1]) == "\ufffd" * len(tok.token_bytes(ids[0]).decode("utf-8", "replace"))
    assert b"".join(tok.token_bytes(i) for i in ids) == "😀".encode()


def test_from_hf_dir_matches_tokenizers(tiny_hf_dir: Path) -> None:
    tok = BpeTokenizer.from_hf_dir(tiny_hf_dir)
    ref = HFTokenizer.from_file(str(tiny_hf_dir / "tokenizer.json"))
    for text in generated_strings(300):
        assert tok.encode(text, allow_special=True) == ref.encode(text).ids, text
    assert tok.eos_token_id == 2


def test_non_monotonic_vocab_uses_rank_table() -> None:
    """A vocabulary whose ids don't follow merge order still encodes like HF BPE."""
    bytes_ = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    from chorusline.runtime.tokenizer import byte_decoder

    all_bytes = sorted(byte_decoder(), key=lambda ch: byte_decoder()[ch])
    merges = [("a", "b"), ("ab", "c"), ("c", "d")]
    pieces = ["<s>", "cd", "abc", *all_bytes, "ab"]  # merge results deliberately out of order
    tok = BpeTokenizer(pieces, merges, {"<s>": 0}, GPT2_PATTERN)
    assert not tok.ids_are_ranks
    ref = HFTokenizer(models.BPE(vocab={p: i for i, p in enumerate(pieces)}, merges=merges))
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    ref.add_special_tokens([AddedToken("<s>", special=True, normalized=False)])
    for text in ["abcd", "abc cd", "cdab", "<s>abcd", *bytes_]:
        assert tok.encode(text, allow_special=True) == ref.encode(text).ids, text


def test_pre_tokenizer_chains() -> None:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert hf_pre_tokenizer_pattern(byte_level) == GPT2_PATTERN
    digits = {"type": "Digits", "individual_digits": True}
    chain = {"type": "Sequence", "pretokenizers": [digits, byte_level]}
    assert hf_pre_tokenizer_pattern(chain) == DIGITS_GPT2_PATTERN
    split = {"type": "Split", "pattern": {"Regex": r"\p{N}{1,3}|\S+|\s+"}, "behavior": "Isolated"}
    no_regex = {**byte_level, "use_regex": False}
    assert hf_pre_tokenizer_pattern({"type": "Sequence", "pretokenizers": [split, no_regex]}) == (
        r"\p{N}{1,3}|\S+|\s+"
    )
    with pytest.raises(ValueError, match="unsupported"):
        hf_pre_tokenizer_pattern({"type": "Metaspace"})


def test_unsupported_gguf_tokenizer() -> None:
    with pytest.raises(ValueError, match="unsupported GGUF tokenizer"):
        BpeTokenizer.from_gguf_metadata({"tokenizer.ggml.model": "llama"})
    with pytest.raises(ValueError, match="pre-tokenizer"):
        BpeTokenizer.from_gguf_metadata({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "x"})
