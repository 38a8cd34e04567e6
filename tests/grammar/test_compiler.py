"""Compiling grammars: refusals that name the feature, the cache, matchers and masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chorusline.grammar import GrammarCompiler, allowed_bitmask
from chorusline.protocols import Grammar, InvalidGrammar

PERSON = {"type": "object", "properties": {"name": {"type": "string"},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def schema(value: object) -> Grammar:
    return Grammar("json_schema", json.dumps(value))


@pytest.mark.parametrize(("grammar", "named"), [
    (schema({"type": "array", "uniqueItems": True}), "uniqueItems"),
    (schema({"if": {"type": "string"}, "then": {"minLength": 1}}), '"if"'),
    (schema({"not": {"type": "string"}}), '"not"'),
    (schema({"$ref": "#/$defs/missing"}), "/$defs/missing"),
    (schema({"type": "sound"}), "sound"),
    (Grammar("json_schema", "{not json"), "key must be a string"),
    (Grammar("lark", "start: (("), "Expected token"),
])
def test_a_grammar_that_cannot_be_compiled_is_a_400_naming_why(
    compiler: GrammarCompiler, grammar: Grammar, named: str
) -> None:
    with pytest.raises(InvalidGrammar) as caught:
        compiler.check(grammar, "response_format")
    assert caught.value.http_status == 400
    assert caught.value.param == "response_format"
    assert named in caught.value.message


def test_the_refusal_names_the_parameter_it_came_from(compiler: GrammarCompiler) -> None:
    with pytest.raises(InvalidGrammar) as caught:
        compiler.check(schema({"not": {}}), "tools")
    assert caught.value.param == "tools"
    assert "tools' parameter schemas" in caught.value.message


def test_compiled_grammars_are_cached_by_key(compiler: GrammarCompiler) -> None:
    grammar = schema({**PERSON, "title": "cached"})
    assert not compiler.cached(grammar)
    first = compiler.compile(grammar)
    assert compiler.cached(grammar)
    assert compiler.compile(Grammar(grammar.kind, grammar.source)) is first


def test_a_small_cache_forgets_the_least_recently_used(chat_model: object) -> None:
    from chorusline.runtime import LoadedModel

    assert isinstance(chat_model, LoadedModel)
    small = GrammarCompiler(chat_model.tokenizer, eos_token_ids=[2],
                            vocab_size=chat_model.config.vocab_size, cache_size=2)
    grammars = [schema({"type": "integer", "title": str(i)}) for i in range(3)]
    for grammar in grammars:
        small.check(grammar)
    assert [small.cached(g) for g in grammars] == [False, True, True]


def test_a_matcher_takes_a_valid_document_and_refuses_a_wrong_one(
    compiler: GrammarCompiler, chat_model: object
) -> None:
    tokenizer = compiler.tokenizer
    matcher = compiler.matcher(schema(PERSON))
    assert matcher.consume(tokenizer.encode('{"name": "Ada", "age": 36}'))
    assert matcher.accepting
    wrong = compiler.matcher(schema(PERSON))
    assert not wrong.consume(tokenizer.encode('{"age": "old"}'))


def test_batched_masks_equal_one_row_at_a_time(compiler: GrammarCompiler) -> None:
    tokenizer = compiler.tokenizer
    grammars = [schema(PERSON), Grammar("json_object"), schema({"type": "boolean"})]
    prefixes = ['{"name": "A', "{", ""]
    matchers = [compiler.matcher(g, tokenizer.encode(p) if p else ())
                for g, p in zip(grammars, prefixes, strict=True)]
    together = allowed_bitmask(matchers, compiler.vocab_size)
    alone = np.concatenate([allowed_bitmask([m], compiler.vocab_size) for m in matchers])
    assert (together == alone).all()
    bits = np.unpackbits(together.view(np.uint8), bitorder="little").reshape(3, -1)
    allowed = [set(np.flatnonzero(row)) for row in bits]
    true_token = tokenizer.encode("true")[0]
    assert true_token in allowed[2] and len(allowed[2]) < 100
    assert tokenizer.encode("}")[0] in allowed[1]  # {} is an object
    assert all(len(row) < compiler.vocab_size for row in allowed)
