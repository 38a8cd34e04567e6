"""Constrained decoding in the engine: output inside the grammar whatever the model says.

The tiny random model says nothing sensible, which makes it a good adversary: without the
mask its output is byte noise, with it every finished reply must parse. The real model
checks the same on answers a user would ask for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from chorusline.protocols import GenerationRequest, Grammar, InvalidGrammar, SamplingParams
from chorusline.runtime import Engine, EngineConfig, LoadedModel, load_model
from tests.grammar.schemas import top_level_objects

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 12},
    "age": {"type": "integer", "minimum": 0, "maximum": 130},
    "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
    "required": ["name", "age", "tags"], "additionalProperties": False}
SCHEMA = Grammar("json_schema", json.dumps(PERSON))
PROMPT = (5, 17, 42, 99, 7)


@pytest.fixture(scope="module")
def tiny(tiny_hf_dir: Path) -> LoadedModel:
    return load_model(tiny_hf_dir, progress=False)


@pytest.fixture
def engine(tiny: LoadedModel) -> Engine:
    return Engine(tiny, EngineConfig(num_blocks=256, block_size=4, device="cpu",
                                     dtype=torch.float32, seed=0))


def run(engine: Engine, requests: dict[str, SamplingParams],
        prompt: tuple[int, ...] = PROMPT,
        change: Callable[[GenerationRequest], GenerationRequest] | None = None,
        ) -> dict[tuple[str, int], tuple[str, str | None, list[int]]]:
    for rid, params in requests.items():
        request = GenerationRequest(rid, prompt, params)
        engine.add_request(change(request) if change else request)
    out: dict[tuple[str, int], tuple[str, str | None, list[int]]] = {}
    while engine.has_unfinished():
        for o in engine.step():
            text, _, ids = out.get((o.request_id, o.index), ("", None, []))
            out[(o.request_id, o.index)] = (text + o.new_text, o.finish_reason,
                                            ids + o.new_token_ids)
    return out


def test_random_weights_still_write_valid_json(engine: Engine) -> None:
    params = {f"s{i}": SamplingParams(temperature=1.0, seed=i, max_tokens=200,
                                      grammar=SCHEMA) for i in range(4)}
    params["obj"] = SamplingParams(temperature=1.0, seed=9, max_tokens=200,
                                   grammar=Grammar("json_object"))
    out = run(engine, params)
    for (rid, _), (text, reason, _) in out.items():
        if reason == "length":
            continue  # the only way it may stop short
        assert reason == "stop", (rid, text)
        value = json.loads(text)
        if rid == "obj":
            assert isinstance(value, dict)
        else:
            jsonschema.validate(value, PERSON)
    assert sum(r == "stop" for _, r, _ in out.values()) >= 3


def test_unconstrained_neighbours_are_untouched(engine: Engine, tiny: LoadedModel) -> None:
    free = SamplingParams(temperature=0, max_tokens=12)
    alone = run(Engine(tiny, EngineConfig(num_blocks=256, block_size=4, device="cpu",
                                          dtype=torch.float32)), {"free": free})
    mixed = run(engine, {"free": free, "json": SamplingParams(temperature=0, max_tokens=40,
                                                              grammar=SCHEMA)})
    assert mixed[("free", 0)] == alone[("free", 0)]


def test_n_choices_and_seeds(engine: Engine, tiny: LoadedModel) -> None:
    params = SamplingParams(temperature=1.0, seed=3, n=2, max_tokens=200, grammar=SCHEMA)
    first = run(engine, {"r": params})
    again = run(Engine(tiny, EngineConfig(num_blocks=256, block_size=4, device="cpu",
                                          dtype=torch.float32)), {"r": params})
    assert first == again
    assert first[("r", 0)][2] != first[("r", 1)][2]


def test_a_small_budget_is_a_length_finish(engine: Engine) -> None:
    text, reason, _ = run(engine, {"r": SamplingParams(temperature=0, max_tokens=3,
                                                       grammar=SCHEMA)})[("r", 0)]
    assert reason == "length"
    assert text.startswith("{")


def test_stop_strings_do_not_cut_constrained_text(engine: Engine) -> None:
    text, reason, _ = run(engine, {"r": SamplingParams(temperature=0, max_tokens=200,
                                                       stop=['"'], grammar=SCHEMA)})[("r", 0)]
    assert reason in ("stop", "length")
    assert '"name"' in text


def test_a_continuation_goes_on_inside_the_grammar(engine: Engine, tiny: LoadedModel) -> None:
    params = SamplingParams(temperature=0, max_tokens=200, grammar=SCHEMA)
    whole = run(engine, {"r": params})[("r", 0)]
    cut = whole[2][:5]
    fresh = Engine(tiny, EngineConfig(num_blocks=256, block_size=4, device="cpu",
                                      dtype=torch.float32))
    rest = run(fresh, {"r": params}, change=lambda r: r.continued(cut))[("r", 0)]
    assert cut + rest[2] == whole[2]  # greedy: the same reply, resumed mid-way
    assert rest[1] == whole[1]


def test_a_grammar_the_engine_cannot_compile_is_refused(engine: Engine) -> None:
    bad = Grammar("json_schema", json.dumps({"not": {}}))
    with pytest.raises(InvalidGrammar):
        engine.add_request(GenerationRequest("r", PROMPT, SamplingParams(grammar=bad)))
    assert not engine.has_unfinished()


def test_a_trigger_frees_the_reply_until_it_appears(chat_model: LoadedModel) -> None:
    engine = Engine(chat_model, EngineConfig(kv_cache_bytes=32 << 20))
    tokenizer, template = chat_model.tokenizer, chat_model.chat_template
    prompt = tuple(tokenizer.encode(template.render([{"role": "user", "content":
        "What is the capital of France? Answer in JSON."}]),
        allow_special=True))
    free = run(engine, {"r": SamplingParams(temperature=0, max_tokens=24)}, prompt)
    assert '"city":' in free[("r", 0)][0]  # what the model says unconstrained
    lyon = Grammar("lark", 'start: " \\"Lyon\\"}"', trigger='"city":')
    text, reason, _ = run(engine, {"r": SamplingParams(temperature=0, max_tokens=24,
                                                       grammar=lyon)}, prompt)[("r", 0)]
    assert text.split('"city":')[0] == free[("r", 0)][0].split('"city":')[0]
    assert text.endswith('"city": "Lyon"}') and reason == "stop"


def test_the_real_model_answers_in_the_schema(chat_model: LoadedModel) -> None:
    engine = Engine(chat_model, EngineConfig(kv_cache_bytes=32 << 20))
    tokenizer, template = chat_model.tokenizer, chat_model.chat_template
    prompt = tuple(tokenizer.encode(template.render([{"role": "user", "content":
        "Describe Ada Lovelace as JSON."}]), allow_special=True))
    started = time.monotonic()
    text, reason, _ = run(engine, {"r": SamplingParams(temperature=0, max_tokens=120,
                                                       grammar=SCHEMA)}, prompt)[("r", 0)]
    assert time.monotonic() - started < 600  # a hang guard, not a speed
    assert reason == "stop", text
    jsonschema.validate(json.loads(text), PERSON)


GO = Grammar("lark", 'start: "xyz;abc;def"', trigger="<go>")


def test_a_continuation_past_its_trigger_keeps_no_stop_strings(engine: Engine,
                                                                tiny: LoadedModel) -> None:
    """The trigger was in the output before a restart: the replay starts the matcher and
    the stop strings stay off, so ``;`` inside the constrained text cannot cut it."""
    encode = tiny.tokenizer.encode
    (semicolon,) = encode(";")
    # The bias makes free text say ";" at once; constrained text must say what it must.
    params = SamplingParams(temperature=0, max_tokens=40, stop=[";"], grammar=GO,
                            logit_bias={semicolon: 100.0})
    out = run(engine, {"after": params, "before": params},
              change=lambda r: r.continued(encode("Sure <go>x" if r.request_id == "after"
                                                  else "Sure <g")))
    assert out[("after", 0)][:2] == ("yz;abc;def", "stop")
    assert out[("before", 0)][:2] == ("", "stop")  # before the trigger the stop applies


def test_ignore_eos_still_ends_where_the_grammar_does(engine: Engine) -> None:
    """EOS is only allowed where the grammar accepts; under ``ignore_eos`` it still ends
    the reply there (``stop``), and its ``<|im_end|>`` never reaches the text."""
    optional = Grammar("lark", 'start: "ab" "c"?')
    out = run(engine, {f"{ignore}{bias}": SamplingParams(
        temperature=0, max_tokens=20, ignore_eos=ignore, logit_bias={2: bias},
        grammar=optional) for ignore in (False, True) for bias in (100.0, -100.0)})
    for (rid, _), (text, reason, ids) in out.items():
        wants_eos = rid.endswith("100.0") and not rid.endswith("-100.0")
        assert (text, reason) == ("ab" if wants_eos else "abc", "stop"), rid
        assert (ids[-1] == 2) == wants_eos


ANSWERS: list[str | None] = []


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(top_level_objects, min_size=8, max_size=8), seed=st.integers(0, 2**16))
def model_answers_validate(engine: Engine, prompt: tuple[int, ...],
                           batch: list[dict[str, Any]], seed: int) -> None:
    params = {f"s{i}": SamplingParams(temperature=1.0, seed=seed + i, max_tokens=96,
                                      grammar=Grammar("json_schema", json.dumps(schema)))
              for i, schema in enumerate(batch)}
    for (rid, _), (text, reason, _) in run(engine, params, prompt).items():
        ANSWERS.append(text if reason == "stop" else None)
        if reason != "stop":
            assert reason == "length"  # the only way to stop short of the grammar's end
            continue
        jsonschema.validate(json.loads(text), batch[int(rid[1:])])


def test_the_real_model_answers_random_schemas(chat_model: LoadedModel) -> None:
    """Random schemas, sampled at temperature 1: whatever the model wants to say, each
    reply the grammar ends is valid, and most replies end inside the token budget."""
    engine = Engine(chat_model, EngineConfig(kv_cache_bytes=32 << 20))
    tokenizer, template = chat_model.tokenizer, chat_model.chat_template
    prompt = tuple(tokenizer.encode(template.render([{"role": "user", "content":
        "Describe your favourite animal as JSON."}]), allow_special=True))
    ANSWERS.clear()
    model_answers_validate(engine, prompt)
    assert len(ANSWERS) >= 16
    assert sum(a is not None for a in ANSWERS) >= 0.75 * len(ANSWERS), ANSWERS
