"""Compiling a ``Grammar`` for one tokenizer, once: validation, the cache, matchers.

The grammar engine is llguidance (chosen by measurement: ``docs/structured-outputs.md``).
It works on bytes: a token is allowed when its bytes can continue the grammar, so any
vocabulary that can say what bytes each token stands for can be constrained, which is
all ``TokenizerLike`` promises. Building its view of the vocabulary costs a few hundred
milliseconds, so a compiler is made once per tokenizer and kept.

Compiled grammars are cached by ``Grammar.key`` (bounded, least recently used): the chat
layer checks a request's grammar before any engine work, the engine compiles it again
when the request arrives, and the second is a cache hit. Every fault of a grammar
(a schema that is not JSON, an unsupported keyword, a dangling ``$ref``, Lark syntax)
leaves as ``InvalidGrammar`` with the engine's own message, which names the feature.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import llguidance

from chorusline.grammar.matcher import GrammarMatcher
from chorusline.protocols import Grammar, InvalidGrammar, TokenizerLike

#: A JSON object of any shape: what ``response_format: json_object`` asks for.
ANY_OBJECT = json.dumps({"type": "object"})
CACHE_SIZE = 256
_LIBRARY_FORMAT: dict[str, Literal["json_schema", "lark"]] = {
    "json_object": "json_schema", "json_schema": "json_schema", "lark": "lark"}


class _Vocabulary:
    """The tokenizer as llguidance's ``TokenizerWrapper`` reads it."""

    def __init__(self, tokenizer: TokenizerLike, eos_token_id: int, vocab_size: int) -> None:
        self.eos_token_id = eos_token_id
        self.bos_token_id = None
        self.special_token_ids = sorted(set(tokenizer.special_tokens.values()))
        self.tokens = [_token_bytes(tokenizer, i) for i in range(vocab_size)]
        self._tokenizer = tokenizer

    def __call__(self, text: bytes | str) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="ignore")
        return self._tokenizer.encode(text)


def _token_bytes(tokenizer: TokenizerLike, token: int) -> bytes:
    try:
        return tokenizer.token_bytes(token)
    except (IndexError, KeyError, ValueError):  # padded logits past the vocabulary
        return b""


class GrammarCompiler:
    """Compiles grammars for one tokenizer; safe to call from several threads."""

    def __init__(self, tokenizer: TokenizerLike, *, eos_token_ids: Sequence[int] = (),
                 vocab_size: int, cache_size: int = CACHE_SIZE) -> None:
        if not eos_token_ids:
            raise ValueError("a grammar needs at least one end-of-sequence token")
        self.vocab_size = vocab_size
        #: llguidance knows one EOS; the others get its verdict in every mask.
        self.eos_token_ids = tuple(eos_token_ids)
        self.tokenizer = tokenizer
        self.lltokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(
            _Vocabulary(tokenizer, self.eos_token_ids[0], vocab_size)))
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def compile(self, grammar: Grammar, param: str = "response_format") -> str:
        """The grammar in the engine's own form, or ``InvalidGrammar``."""
        with self._lock:
            if grammar.key in self._cache:
                self._cache.move_to_end(grammar.key)
                return self._cache[grammar.key]
        source = ANY_OBJECT if grammar.kind == "json_object" else grammar.source
        try:
            compiled = llguidance.grammar_from(_LIBRARY_FORMAT[grammar.kind], source)
            error = llguidance.LLMatcher.validate_grammar(compiled, self.lltokenizer)
        except (ValueError, RuntimeError, TypeError) as exc:
            error = str(exc) or type(exc).__name__
        if error:
            raise InvalidGrammar(f"the {_what(grammar, param)} cannot be used for "
                                 f"constrained decoding: {error.strip()[:400]}", param=param)
        with self._lock:
            self._cache[grammar.key] = compiled
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def check(self, grammar: Grammar, param: str = "response_format") -> None:
        self.compile(grammar, param)

    def cached(self, grammar: Grammar) -> bool:
        with self._lock:
            return grammar.key in self._cache

    def matcher(self, grammar: Grammar, prefix: Sequence[int] = ()) -> GrammarMatcher:
        """A fresh matcher at the grammar's start (for ``trigger`` grammars: the start of
        what follows the trigger), advanced over ``prefix``."""
        matcher = GrammarMatcher(llguidance.LLMatcher(self.lltokenizer,
                                                      self.compile(grammar)),
                                 self.vocab_size, self.eos_token_ids)
        matcher.consume(prefix)
        return matcher

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)


def _what(grammar: Grammar, param: str) -> str:
    if param.startswith("tools"):
        return "tools' parameter schemas"
    return "JSON schema" if grammar.kind == "json_schema" else "grammar"
