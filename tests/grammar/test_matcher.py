"""Whatever token a constrained sequence picks among those allowed, it ends valid.

No model: a random walk through the allowed tokens is a harsher test than a model's
likely choices, because it tries the unlikely tokens too. For random schemas from the
supported subset (``tests/grammar/schemas.py``: objects with required and optional
properties, bounded strings, enums and patterns, bounded integers, numbers, booleans,
null, arrays with minItems/maxItems, nesting, anyOf), every walk that the grammar lets
finish must validate.
"""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from chorusline.grammar import GrammarCompiler, allowed_bitmask
from chorusline.protocols import Grammar
from tests.grammar.schemas import schemas

EOS = 2
MAX_STEPS = 400

_BLANK: dict[int, np.ndarray] = {}


def blank_tokens(compiler: GrammarCompiler) -> np.ndarray:
    """Which tokens are whitespace only (or empty), once per compiler."""
    if id(compiler) not in _BLANK:
        tokenizer = compiler.tokenizer
        blank = np.zeros(compiler.vocab_size, dtype=bool)
        for token in range(compiler.vocab_size):
            blank[token] = not tokenizer.token_bytes(token).strip()
        _BLANK[id(compiler)] = blank
    return _BLANK[id(compiler)]


def walk(compiler: GrammarCompiler, grammar: Grammar, seed: int) -> str | None:
    """A random valid token sequence, as text; None if it did not end in time."""
    rnd = random.Random(seed)
    tokenizer = compiler.tokenizer
    blank = blank_tokens(compiler)
    matcher = compiler.matcher(grammar)
    out = b""
    for _ in range(MAX_STEPS):
        if matcher.finished:
            return out.decode()
        mask = allowed_bitmask([matcher], compiler.vocab_size)
        bits = np.unpackbits(mask.view(np.uint8), bitorder="little")[: compiler.vocab_size]
        allowed = bits.astype(bool)
        if allowed[EOS] and (allowed.sum() == 1 or rnd.random() < 0.3):
            return out.decode()
        allowed[EOS] = False
        # Whitespace-only tokens are allowed almost anywhere; taking them only when
        # nothing else is keeps the walk moving through the document.
        solid = np.flatnonzero(allowed & ~blank)
        token = int(rnd.choice(solid if solid.size else np.flatnonzero(allowed)))
        assert matcher.consume([token])
        out += tokenizer.token_bytes(token)
    return None


WALKS: list[bool] = []


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(schema=schemas, seed=st.integers(0, 2**32))
def walks_validate(compiler: GrammarCompiler, schema: dict[str, Any], seed: int) -> None:
    text = walk(compiler, Grammar("json_schema", json.dumps(schema)), seed)
    WALKS.append(text is not None)
    if text is None:
        return  # long strings can outrun the step bound; validity is what is checked
    jsonschema.validate(json.loads(text), schema)


def test_every_walk_the_grammar_allows_validates(compiler: GrammarCompiler) -> None:
    """The property, and that it is not vacuous: nearly every walk ended and was checked."""
    WALKS.clear()
    walks_validate(compiler)
    assert len(WALKS) >= 200
    assert sum(WALKS) >= 0.8 * len(WALKS), WALKS


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32))
def test_json_object_walks_are_objects(compiler: GrammarCompiler, seed: int) -> None:
    text = walk(compiler, Grammar("json_object"), seed)
    if text is not None:
        assert isinstance(json.loads(text), dict)
