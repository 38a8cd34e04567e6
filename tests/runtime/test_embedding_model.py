"""The packaged all-MiniLM-L6-v2 through our loader and encoder, against
sentence-transformers loading the very same files (no network)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from chorusline.runtime import (
    DEFAULT_EMBEDDING_MODEL,
    EmbeddingModel,
    default_embedding_model_dir,
    shared_embedding_model,
)

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "river", "mountain",
         "server", "request", "actor", "supervisor", "token", "vector", "embedding", "cache",
         "latency", "throughput", "garden", "coffee", "library", "window", "bicycle",
         "ocean", "theorem", "proof", "kernel", "thread"]
UNICODE = ["naïve café", "Größe straße", "日本語のテキストです", "中文句子测试", "한국어 문장",
           "Ελληνικά γράμματα", "русский текст", "עברית", "العربية", "emoji 🚀🔥✨",
           "ﬁligree ligature", "e\u0301 combining accent", "Zalgo z\u0335a\u0336l",
           "ẞ capital sharp s", "Ωmega ≤ ≥ ≠ ∞", "tab\tseparated\tvalues"]
CODE = ["def f(x):\n    return x ** 2", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "SELECT id, name FROM users WHERE age > 30 ORDER BY name;",
        "const add = (a, b) => a + b;", "#include <stdio.h>\nint main(void) { return 0; }",
        "<div class=\"x\">hello</div>", "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
        "git commit -m 'fix: handle None'", "x = [i for i in range(10) if i % 2]",
        "fn main() { println!(\"hi\"); }"]


def varied_strings(count: int = 200) -> list[str]:
    """Short, long, unicode, code, numbers, punctuation and whitespace, mixed."""
    rng = random.Random(20260101)
    makers = [
        lambda: rng.choice(WORDS),
        lambda: " ".join(rng.choices(WORDS, k=rng.randint(3, 12))).capitalize() + ".",
        lambda: " ".join(rng.choices(WORDS, k=rng.randint(80, 170))),
        lambda: rng.choice(UNICODE) + " " + " ".join(rng.choices(WORDS, k=rng.randint(0, 6))),
        lambda: rng.choice(CODE),
        lambda: " ".join(str(rng.randint(-10**6, 10**9)) for _ in range(rng.randint(1, 20))),
        lambda: f"{rng.uniform(-1e3, 1e3):.4f} and {rng.randint(0, 99)}% of 3.14e-10",
        lambda: "".join(rng.choices("!?.,;:-()[]{}<>@#$%^&*_+=~`|\\/'\"", k=rng.randint(1, 40))),
        lambda: rng.choice([" ", "   ", "\n", "\t \n ", "  padded  ", "\u00a0nbsp"]),
        lambda: "ALL CAPS " + " ".join(rng.choices(WORDS, k=5)).upper() + "!!!",
    ]
    return [makers[i % len(makers)]() for i in range(count)]


@pytest.fixture(scope="module")
def model() -> EmbeddingModel:
    return shared_embedding_model()


def test_reads_the_models_own_configuration(model: EmbeddingModel) -> None:
    assert model.name == DEFAULT_EMBEDDING_MODEL
    assert (model.dimensions, model.max_seq_length, model.vocab_size) == (384, 256, 30522)
    assert model.config.pooling == "pooling_mode_mean_tokens"
    assert model.config.normalize


def test_matches_sentence_transformers_on_varied_strings(
        model: EmbeddingModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = varied_strings()
    rows = model.tokenize(texts)
    assert max(len(r) for r in rows) <= model.max_seq_length  # no truncation involved
    assert max(len(r) for r in rows) > 150 and min(len(r) for r in rows) == 2
    ours = model.embed(rows)  # mixed lengths in batches: padding is exercised
    reference = SentenceTransformer(str(default_embedding_model_dir()), device="cpu")
    theirs = reference.encode(texts, convert_to_numpy=True, batch_size=64)
    assert ours.shape == theirs.shape == (200, 384) and ours.dtype == np.float32
    cosine = (ours * theirs).sum(axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cosine.min() >= 0.9999, [texts[i] for i in np.argsort(cosine)[:3]]
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_token_ids_of_a_text_give_the_texts_vector(model: EmbeddingModel) -> None:
    text = "Supervised actors keep serving when a worker crashes."
    (with_specials,) = model.tokenize([text])
    assert with_specials[0] == model.cls_id and with_specials[-1] == model.sep_id
    content = with_specials[1:-1]
    assert model.wrap(content) == with_specials
    np.testing.assert_array_equal(model.embed([model.wrap(content)]),
                                  model.embed([with_specials]))


def test_order_is_kept_however_the_batch_is_cut(model: EmbeddingModel) -> None:
    rows = model.tokenize(varied_strings(24))
    whole = model.embed(rows)
    cut = model.embed(rows, max_forward_tokens=64)  # many small forwards, sorted by length
    np.testing.assert_allclose(cut, whole, atol=1e-5)
    np.testing.assert_allclose(model.embed([rows[7]])[0], whole[7], atol=1e-5)


def test_tokenizer_does_not_truncate(model: EmbeddingModel) -> None:
    (row,) = model.tokenize(["word " * 400])
    assert len(row) == 402


def test_extraction_happens_once() -> None:
    first = default_embedding_model_dir()
    assert (first / ".complete").exists() and (first / "model.safetensors").exists()
    assert default_embedding_model_dir() == first
    assert isinstance(first, Path)
