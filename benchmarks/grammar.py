"""Grammar-constrained decoding: which grammar engine, and what it costs the engine.

    flock /tmp/bench.lock .venv/bin/python benchmarks/grammar.py
        [--python /tmp/grammar-venv/bin/python] [--quick] [--json PATH]
        [--skip-libraries] [--skip-engine]

Two parts, both on the bundled SmolLM2-135M-Instruct vocabulary (49,152 tokens):

* **Library comparison.** llguidance (the project's choice) against xgrammar and
  outlines-core, on the same token bytes, the same schema and the same token sequences.
  xgrammar and outlines-core are not project dependencies, so their measurements run in
  another interpreter (``--python``, default ``/tmp/grammar-venv/bin/python`` when it
  exists) as ``--worker LIB`` subprocesses of this same file; the worker reads a spec
  file (vocabulary, schemas, token sequences) and imports neither chorusline nor torch,
  so the project's code never touches those libraries. llguidance runs through the same
  worker code in this interpreter, so all three are timed by identical loops. Rows:
  building the library's view of the vocabulary, compiling a typical schema (nested
  objects, an array of objects, enums, required and optional fields, a string pattern,
  integer bounds; median of cold compiles, caches off), the time to the first mask
  (llguidance compiles lazily, so compile alone would flatter it), per-token mask time at
  batch 1 along one valid document's tokens and per-step mask time at batch 32 along 32
  distinct valid documents, and a JSON-schema feature table. A feature counts as
  supported only if the library compiles it, accepts a valid document *and* refuses
  documents that break only that keyword; "ignored" means it compiled but let an
  invalid document through.
* **Engine throughput.** 32 concurrent greedy requests of 64 new tokens, with 0 %, 50 %
  and 100 % of them under a JSON schema, interleaved in one run (median of ``--repeats``
  rounds, so drift on the shared VM hits all three alike). The schema needs at least 16
  array entries, so no constrained reply can complete before 64 tokens; tokens/s still
  counts what was generated. The mask cost share is the time in the engine's
  ``constraints.mask`` (of which in llguidance's own mask calls, the
  ``llguidance.numpy.fill_next_token_bitmask*`` functions) over the time in
  ``Engine.step``. Only public names of chorusline are used: the timers wrap the
  engine's own attributes and the library's functions, not chorusline's modules.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

WORK = Path("/tmp/grammar-bench")
SCRATCH_PYTHON = Path("/tmp/grammar-venv/bin/python")
LIBRARIES = ("llguidance", "xgrammar", "outlines_core")
BATCH = 32
NEW_TOKENS = 64

# -- what is measured ------------------------------------------------------------------


def _closed(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


#: A schema of the kind a response_format carries: every keyword here is supported by all
#: three libraries, so compile and mask figures compare like with like.
TYPICAL_SCHEMA = _closed({
    "id": {"type": "string", "pattern": "^[a-z]{3}-[0-9]{4}$"},
    "name": {"type": "string"},
    "status": {"enum": ["active", "suspended", "closed"]},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "address": _closed({
        "street": {"type": "string"},
        "city": {"type": "string"},
        "geo": _closed({"lat": {"type": "number"}, "lon": {"type": "number"}},
                       ["lat", "lon"]),
    }, ["street", "city"]),
    "orders": {"type": "array", "items": _closed({
        "sku": {"type": "string"},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 99},
        "price": {"type": "number"},
        "express": {"type": "boolean"},
    }, ["sku", "quantity"])},
    "notes": {"type": "string"},
}, ["id", "name", "status", "age", "orders"])

_CITIES = ["Lisbon", "Oslo", "Quito", "Nairobi", "Hanoi", "Tbilisi", "Perth", "Cusco"]
_STATUS = ["active", "suspended", "closed"]


def typical_document(i: int) -> str:
    """The ``i``-th valid document (compact, in schema order, as the schema allows)."""
    doc: dict[str, Any] = {
        "id": f"{'abcdefgh'[i % 8]}{'xyz'[i % 3]}q-{1000 + 37 * i}",
        "name": f"Customer number {i} of the {_CITIES[i % 8]} branch",
        "status": _STATUS[i % 3],
        "age": 18 + (7 * i) % 80,
    }
    if i % 4 != 3:
        address: dict[str, Any] = {"street": f"{12 + i} Harbour Road",
                                   "city": _CITIES[(i + 3) % 8]}
        if i % 2 == 0:
            address["geo"] = {"lat": round(38.7 + i / 10, 4), "lon": round(-9.1 - i / 7, 4)}
        doc["address"] = address
    orders = []
    for j in range(2 + i % 3):
        order: dict[str, Any] = {"sku": f"SKU-{i:02d}{j}-{'ABCDE'[j % 5]}",
                                 "quantity": 1 + (i + j) % 9}
        if (i + j) % 2 == 0:
            order["price"] = round(4.5 + 3.25 * j + i, 2)
        if j == 1:
            order["express"] = i % 2 == 0
        orders.append(order)
    doc["orders"] = orders
    if i % 3 == 0:
        doc["notes"] = "Prefers delivery after five; ring twice."
    return json.dumps(doc, separators=(",", ":"))


def _field(sub: dict[str, Any]) -> dict[str, Any]:
    return _closed({"v": sub}, ["v"])


#: feature -> (schema, a valid document, documents that break only that keyword).
FEATURES: dict[str, tuple[dict[str, Any], str, list[str]]] = {
    "$ref / $defs": (
        {"$defs": {"p": _closed({"x": {"type": "integer"}}, ["x"])},
         **_closed({"a": {"$ref": "#/$defs/p"}, "b": {"$ref": "#/$defs/p"}}, ["a", "b"])},
        '{"a":{"x":1},"b":{"x":2}}', ['{"a":{"x":1},"b":{"x":"two"}}']),
    "anyOf": (_field({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}),
              '{"v":true}', ['{"v":"yes"}']),
    "oneOf": (_field({"oneOf": [{"type": "integer"}, {"type": "string"}]}),
              '{"v":"yes"}', ['{"v":false}']),
    "enum / const": (_closed({"c": {"enum": ["red", "green"]}, "k": {"const": 3}},
                             ["c", "k"]),
                     '{"c":"red","k":3}', ['{"c":"blue","k":3}', '{"c":"red","k":4}']),
    "pattern": (_field({"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}),
                '{"v":"ABC-12"}', ['{"v":"abc-12"}']),
    "format (date, email)": (_closed({"d": {"type": "string", "format": "date"},
                                      "e": {"type": "string", "format": "email"}},
                                     ["d", "e"]),
                             '{"d":"2024-05-01","e":"ana@example.org"}',
                             ['{"d":"yesterday","e":"ana@example.org"}',
                              '{"d":"2024-05-01","e":"not an address"}']),
    "minLength / maxLength": (_field({"type": "string", "minLength": 2, "maxLength": 4}),
                              '{"v":"abc"}', ['{"v":"a"}', '{"v":"abcdef"}']),
    "minimum / maximum": (_field({"type": "integer", "minimum": 1, "maximum": 10}),
                          '{"v":7}', ['{"v":0}', '{"v":11}']),
    "minItems / maxItems": (_field({"type": "array", "items": {"type": "integer"},
                                    "minItems": 2, "maxItems": 3}),
                            '{"v":[1,2]}', ['{"v":[1]}', '{"v":[1,2,3,4]}']),
    "additionalProperties: false": (_closed({"a": {"type": "integer"}}, ["a"]),
                                    '{"a":1}', ['{"a":1,"b":2}']),
    "uniqueItems": (_field({"type": "array", "items": {"type": "integer"},
                            "uniqueItems": True}),
                    '{"v":[1,2]}', ['{"v":[1,1]}']),
    "if / then": ({**_closed({"k": {"enum": ["a", "b"]}, "n": {"type": "integer"}},
                             ["k", "n"]),
                   "if": {"properties": {"k": {"const": "a"}}},
                   "then": {"properties": {"n": {"minimum": 10}}}},
                  '{"k":"a","n":12}', ['{"k":"a","n":1}']),
    "not": (_field({"type": "integer", "not": {"const": 5}}), '{"v":4}', ['{"v":5}']),
    "patternProperties": ({"type": "object", "patternProperties": {"^x_": {"type": "integer"}},
                           "additionalProperties": False},
                          '{"x_a":1}', ['{"x_a":"s"}', '{"y":1}']),
}

#: Engine throughput schema: 16+ entries of ~15 tokens each, so a greedy reply is still
#: open at 64 tokens (a completed grammar ends its reply, whatever ``ignore_eos`` says).
ENGINE_SCHEMA = _closed({
    "title": {"type": "string", "maxLength": 60},
    "entries": {"type": "array", "minItems": 16, "items": _closed({
        "name": {"type": "string", "maxLength": 24},
        "kind": {"enum": ["fact", "story", "joke"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
    }, ["name", "kind", "score"])},
}, ["title", "entries"])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- worker: one library, run in whichever interpreter has it --------------------------


class _Library:
    """One grammar library behind the few calls the measurements need."""

    name = ""
    version = ""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.vocab_size: int = spec["vocab_size"]
        self.eos: int = spec["eos"]
        self.special: set[int] = set(spec["special"])
        self.tokens = [bytes.fromhex(t) for t in spec["tokens"]]

    def compile(self, schema: str) -> Any:
        raise NotImplementedError

    def matcher(self, compiled: Any) -> Any:
        raise NotImplementedError

    def masks(self, matchers: Sequence[Any]) -> None:
        """Fill the next-token masks of ``matchers`` (the call being timed)."""
        raise NotImplementedError

    def allowed(self, matcher: Any, token: int) -> bool:
        raise NotImplementedError

    def advance(self, matcher: Any, token: int) -> None:
        raise NotImplementedError

    def accepting(self, matcher: Any) -> bool:
        raise NotImplementedError

    def clear_cache(self) -> None:
        """Forget compiled grammars, so each compile is cold."""


class _Llguidance(_Library):
    name = "llguidance"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        import importlib.metadata

        import llguidance
        import llguidance.numpy as llnp

        self._ll, self._np = llguidance, llnp
        self.version = importlib.metadata.version("llguidance")
        owner = self

        class Vocabulary:
            eos_token_id = owner.eos
            bos_token_id = None
            special_token_ids = sorted(owner.special)
            tokens = owner.tokens

            def __call__(self, text: bytes | str) -> list[int]:
                # llguidance tokenises the grammar's forced text now and then; the worker
                # has no BPE, so the library's own greedy longest-match stands in.
                if isinstance(text, bytes):
                    text = text.decode("utf-8", errors="replace")
                return list(owner.tokenizer.greedy_tokenize(text))

        self.tokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(Vocabulary()))
        self.executor = llguidance.LLExecutor()
        self.buffer = llnp.allocate_token_bitmask(BATCH, self.vocab_size)

    def compile(self, schema: str) -> Any:
        grammar = self._ll.grammar_from("json_schema", schema)
        error = self._ll.LLMatcher.validate_grammar(grammar, self.tokenizer)
        if error:
            raise ValueError(error)
        return grammar

    def matcher(self, compiled: Any) -> Any:
        return self._ll.LLMatcher(self.tokenizer, compiled)

    def masks(self, matchers: Sequence[Any]) -> None:
        if len(matchers) == 1:
            self._np.fill_next_token_bitmask(matchers[0], self.buffer, 0)
        else:
            self._np.fill_next_token_bitmask_par(
                self.executor, [(m, i) for i, m in enumerate(matchers)], self.buffer)

    def allowed(self, matcher: Any, token: int) -> bool:
        self._np.fill_next_token_bitmask(matcher, self.buffer, 0)
        return bool((int(self.buffer[0, token >> 5]) >> (token & 31)) & 1)

    def advance(self, matcher: Any, token: int) -> None:
        if not matcher.consume_token(token):
            raise ValueError(matcher.get_error())

    def accepting(self, matcher: Any) -> bool:
        return bool(matcher.is_accepting())


class _Xgrammar(_Library):
    name = "xgrammar"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        import importlib.metadata

        import xgrammar  # type: ignore[import-not-found]  # scratch interpreter only

        self._xg = xgrammar
        self.version = importlib.metadata.version("xgrammar")
        # Special tokens as empty strings: xgrammar then never allows them inside text,
        # which is what llguidance's special_token_ids does.
        vocab = [b"" if i in self.special else t for i, t in enumerate(self.tokens)]
        self.info = xgrammar.TokenizerInfo(vocab, xgrammar.VocabType.RAW,
                                           vocab_size=self.vocab_size,
                                           stop_token_ids=[self.eos])
        self.compiler = xgrammar.GrammarCompiler(self.info, max_threads=os.cpu_count() or 1,
                                                 cache_enabled=False)
        self.batch = xgrammar.BatchGrammarMatcher(max_threads=os.cpu_count() or 1)
        self.buffer = xgrammar.allocate_token_bitmask(BATCH, self.vocab_size)

    def compile(self, schema: str) -> Any:
        return self.compiler.compile_json_schema(schema)

    def matcher(self, compiled: Any) -> Any:
        return self._xg.GrammarMatcher(compiled)

    def masks(self, matchers: Sequence[Any]) -> None:
        if len(matchers) == 1:
            matchers[0].fill_next_token_bitmask(self.buffer, 0)
        else:
            self.batch.batch_fill_next_token_bitmask(list(matchers), self.buffer)

    def allowed(self, matcher: Any, token: int) -> bool:
        matcher.fill_next_token_bitmask(self.buffer, 0)
        return bool((int(self.buffer[0, token >> 5]) >> (token & 31)) & 1)

    def advance(self, matcher: Any, token: int) -> None:
        if not matcher.accept_token(token):
            raise ValueError("token refused")

    def accepting(self, matcher: Any) -> bool:
        return bool(matcher.accept_token(self.eos))


class _OutlinesCore(_Library):
    name = "outlines_core"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        import importlib.metadata

        import numpy
        import outlines_core  # type: ignore[import-not-found]  # scratch interpreter only
        from outlines_core.json_schema import (  # type: ignore[import-not-found]
            build_regex_from_schema,
        )

        self._oc, self._regex, self._numpy = outlines_core, build_regex_from_schema, numpy
        self.version = importlib.metadata.version("outlines_core")
        table: dict[bytes, list[int]] = {}
        for i, token in enumerate(self.tokens):
            if token and i not in self.special and i != self.eos:
                table.setdefault(token, []).append(i)
        self.vocabulary = outlines_core.Vocabulary(self.eos, table)
        self.words = (self.vocab_size + 31) // 32
        self.buffer = numpy.zeros((BATCH, self.words), dtype=numpy.int32)

    def compile(self, schema: str) -> Any:
        return self._oc.Index(self._regex(schema), self.vocabulary)

    def matcher(self, compiled: Any) -> Any:
        return self._oc.Guide(compiled)

    def masks(self, matchers: Sequence[Any]) -> None:
        # No batched call exists: one write per guide, as a serving loop would do it.
        for i, guide in enumerate(matchers):
            row = self.buffer[i]
            guide.write_mask_into(row.ctypes.data, self.words, 4)

    def allowed(self, matcher: Any, token: int) -> bool:
        return token in matcher.get_tokens()

    def advance(self, matcher: Any, token: int) -> None:
        matcher.advance(token, return_tokens=False)

    def accepting(self, matcher: Any) -> bool:
        return bool(matcher.is_finished())


def _library(name: str, spec: dict[str, Any]) -> _Library:
    kinds: dict[str, Callable[[dict[str, Any]], _Library]] = {
        "llguidance": _Llguidance, "xgrammar": _Xgrammar, "outlines_core": _OutlinesCore}
    return kinds[name](spec)


def _accepts(lib: _Library, compiled: Any, tokens: Sequence[int]) -> bool:
    """Whether the grammar allows every token of ``tokens`` and may end after them."""
    matcher = lib.matcher(compiled)
    try:
        for token in tokens:
            if not lib.allowed(matcher, token):
                return False
            lib.advance(matcher, token)
        return lib.accepting(matcher)
    except (ValueError, RuntimeError, KeyError):
        return False


def _feature(lib: _Library, schema: str, valid: Sequence[int],
             invalid: Sequence[Sequence[int]]) -> str:
    try:
        compiled = lib.compile(schema)
    except Exception as exc:  # each library has its own error types
        return "no: " + " ".join(str(exc).split())[:160]
    if not _accepts(lib, compiled, valid):
        return "refuses-valid: a valid document was refused"
    let_through = sum(_accepts(lib, compiled, doc) for doc in invalid)
    if let_through == 0:
        return "yes"
    if let_through == len(invalid):
        return "ignored"
    return f"partly: {let_through} of {len(invalid)} invalid documents accepted"


def _time_masks(lib: _Library, compiled: Any, docs: Sequence[Sequence[int]]) -> list[float]:
    """Seconds per mask call with one matcher per document, all stepping together over
    the first ``min(len)`` tokens (every matcher is mid-document in every call)."""
    matchers = [lib.matcher(compiled) for _ in docs]
    steps = min(len(d) for d in docs)
    times = []
    for step in range(steps):
        start = time.perf_counter()
        lib.masks(matchers)
        times.append(time.perf_counter() - start)
        for matcher, doc in zip(matchers, docs, strict=True):
            lib.advance(matcher, doc[step])
    return times


def run_worker(name: str, spec_path: Path, out_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    result: dict[str, Any] = {"library": name}
    start = time.perf_counter()
    lib = _library(name, spec)
    result["version"] = lib.version
    result["tokenizer_s"] = time.perf_counter() - start
    schema = json.dumps(spec["schema"])
    compiles, firsts = [], []
    for _ in range(spec["compile_repeats"]):
        lib.clear_cache()
        start = time.perf_counter()
        compiled = lib.compile(schema)
        matcher = lib.matcher(compiled)
        compiles.append(time.perf_counter() - start)
        lib.masks([matcher])
        firsts.append(time.perf_counter() - start)
    result["compile_s"] = median(compiles)
    news = []
    for _ in range(spec["compile_repeats"]):
        start = time.perf_counter()
        lib.matcher(compiled)
        news.append(time.perf_counter() - start)
    result["new_matcher_s"] = median(news)
    result["first_mask_s"] = median(firsts)
    docs: list[list[int]] = spec["docs"]
    single: list[float] = []
    for _ in range(spec["mask_repeats"]):
        single += _time_masks(lib, compiled, docs[:1])
    batched: list[float] = []
    for _ in range(spec["mask_repeats"]):
        batched += _time_masks(lib, compiled, docs[:BATCH])
    result["mask_b1_us"] = {"median": median(single) * 1e6,
                            "p99": sorted(single)[int(0.99 * (len(single) - 1))] * 1e6,
                            "tokens": len(docs[0])}
    result["mask_b32_us"] = {"median": median(batched) * 1e6,
                             "p99": sorted(batched)[int(0.99 * (len(batched) - 1))] * 1e6,
                             "steps": min(len(d) for d in docs[:BATCH])}
    result["features"] = {
        feature: _feature(lib, json.dumps(f["schema"]), f["valid"], f["invalid"])
        for feature, f in spec["features"].items()}
    out_path.write_text(json.dumps(result, indent=2))


# -- the library comparison, driven from the project interpreter ----------------------


def write_spec(tokenizer: Any, vocab_size: int, eos: int, quick: bool) -> Path:
    """Everything the workers need, as plain JSON (so they need no chorusline)."""
    WORK.mkdir(parents=True, exist_ok=True)

    def token_bytes(i: int) -> str:
        try:
            return bytes(tokenizer.token_bytes(i)).hex()
        except (IndexError, KeyError, ValueError):
            return ""

    spec = {
        "vocab_size": vocab_size, "eos": eos,
        "special": sorted(set(tokenizer.special_tokens.values())),
        "tokens": [token_bytes(i) for i in range(vocab_size)],
        "schema": TYPICAL_SCHEMA,
        "docs": [tokenizer.encode(typical_document(i)) for i in range(BATCH)],
        "features": {name: {"schema": schema, "valid": tokenizer.encode(valid),
                            "invalid": [tokenizer.encode(d) for d in invalid]}
                     for name, (schema, valid, invalid) in FEATURES.items()},
        "compile_repeats": 3 if quick else 7,
        "mask_repeats": 1 if quick else 3,
    }
    path = WORK / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def compare_libraries(spec: Path, scratch: Path | None) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in LIBRARIES:
        python = sys.executable if name == "llguidance" else scratch
        if python is None:
            results[name] = {"library": name, "error": "no --python interpreter with it"}
            continue
        out = WORK / f"{name}.json"
        out.unlink(missing_ok=True)
        done = subprocess.run([str(python), __file__, "--worker", name, "--spec", str(spec),
                               "--out", str(out)], capture_output=True, text=True,
                              timeout=600, check=False)
        if done.returncode or not out.exists():
            tail = " ".join((done.stderr or done.stdout).split()[-40:])
            results[name] = {"library": name, "error": f"worker failed: {tail}"}
            continue
        results[name] = json.loads(out.read_text())
    return results


def print_libraries(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    ok = [n for n in names if "error" not in results[n]]
    for name in names:
        if "error" in results[name]:
            print(f"{name}: {results[name]['error']}")
    header = f"{'':<34}" + "".join(f"{n + ' ' + results[n]['version']:>22}" for n in ok)
    print(header)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("vocabulary setup", lambda r: f"{r['tokenizer_s'] * 1e3:.0f} ms"),
        ("compile typical schema (median)", lambda r: f"{r['compile_s'] * 1e3:.1f} ms"),
        ("compile + first mask", lambda r: f"{r['first_mask_s'] * 1e3:.1f} ms"),
        ("new matcher from compiled", lambda r: f"{r['new_matcher_s'] * 1e3:.2f} ms"),
        ("mask/token, batch 1 (median)", lambda r: f"{r['mask_b1_us']['median']:.0f} µs"),
        ("mask/token, batch 1 (p99)", lambda r: f"{r['mask_b1_us']['p99']:.0f} µs"),
        ("mask/step, batch 32 (median)", lambda r: f"{r['mask_b32_us']['median']:.0f} µs"),
        ("mask/step, batch 32 (p99)", lambda r: f"{r['mask_b32_us']['p99']:.0f} µs"),
    ]
    for label, show in rows:
        print(f"{label:<34}" + "".join(f"{show(results[n]):>22}" for n in ok))
    print()
    print(f"{'JSON-schema feature':<30}" + "".join(f"{n:>16}" for n in ok))
    for feature in FEATURES:
        cells = [results[n]["features"][feature].split(":")[0] for n in ok]
        print(f"{feature:<30}" + "".join(f"{c:>16}" for c in cells))
    for name in ok:
        for feature, verdict in results[name]["features"].items():
            if verdict.startswith(("no", "partly", "refuses")):
                print(f"  {name} / {feature}: {verdict}")


# -- engine throughput ----------------------------------------------------------------


class _Timer:
    """Accumulated seconds in one wrapped callable."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
        return timed


def engine_throughput(repeats: int) -> dict[str, Any]:
    import llguidance.numpy as llnp
    import torch

    from chorusline.protocols import GenerationRequest, Grammar, SamplingParams
    from chorusline.runtime import Engine, EngineConfig, load_model

    model = load_model(progress=False)
    tok = model.tokenizer
    engine = Engine(model, EngineConfig(device="cpu", max_num_seqs=64,
                                        max_num_batched_tokens=4096,
                                        enable_prefix_caching=False))
    grammar = Grammar("json_schema", json.dumps(ENGINE_SCHEMA))
    topics = ["the sea", "volcanoes", "bread", "chess", "the moon", "bees", "rivers",
              "trains", "glass", "owls", "paper", "tea", "clocks", "maps", "salt", "wind"]
    prompts = [tok.encode(model.chat_template.render([{"role": "user", "content":
               f"Request {i}: list facts, stories and jokes about {topics[i % 16]} as a "
               f"JSON object with a title and at least sixteen entries."}]),
               allow_special=True) for i in range(BATCH)]

    timers = {k: _Timer() for k in ("step", "forward", "mask", "bitmask", "advance",
                                    "sampler")}
    engine.runner.execute = timers["forward"].wrap(  # type: ignore[method-assign]
        engine.runner.execute)
    engine.step = timers["step"].wrap(engine.step)  # type: ignore[method-assign]
    engine.constraints.mask = timers["mask"].wrap(  # type: ignore[method-assign]
        engine.constraints.mask)
    engine.constraints.advance = timers["advance"].wrap(  # type: ignore[method-assign]
        engine.constraints.advance)
    engine.sampler = timers["sampler"].wrap(engine.sampler)  # type: ignore[assignment]
    # llguidance's mask calls, looked up on its module at each call: the library's time.
    for name in ("fill_next_token_bitmask", "fill_next_token_bitmask_par"):
        setattr(llnp, name, timers["bitmask"].wrap(getattr(llnp, name)))

    start = time.perf_counter()
    warm = SamplingParams(temperature=0.0, max_tokens=8, grammar=grammar)
    engine.add_request(GenerationRequest("warm", tuple(prompts[0]), warm))
    while engine.has_unfinished():
        engine.step()
    warmup_s = time.perf_counter() - start
    if not timers["bitmask"].calls:  # the llguidance share would read 0 % and mean nothing
        raise RuntimeError("no llguidance mask call was timed: the engine no longer calls "
                           "llguidance.numpy's fill_next_token_bitmask functions")

    def one(share: int, round_: int) -> dict[str, Any]:
        for t in timers.values():
            t.seconds, t.calls = 0.0, 0
        constrained = BATCH * share // 100
        finish: dict[str, str] = {}
        texts: dict[str, str] = {}
        counts: dict[str, int] = {}
        start = time.perf_counter()
        for i, prompt in enumerate(prompts):
            params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True,
                                    grammar=grammar if i < constrained else None)
            engine.add_request(GenerationRequest(f"p{share}-{round_}-{i}", tuple(prompt),
                                                 params))
        while engine.has_unfinished():
            for out in engine.step():
                counts[out.request_id] = counts.get(out.request_id, 0) + len(
                    out.new_token_ids)
                texts[out.request_id] = texts.get(out.request_id, "") + out.new_text
                if out.finish_reason:
                    finish[out.request_id] = out.finish_reason
        elapsed = time.perf_counter() - start
        generated = sum(counts.values())
        return {"share": share, "tok_s": generated / elapsed, "elapsed_s": elapsed,
                "tokens": generated, "short": sum(c < NEW_TOKENS for c in counts.values()),
                "finish": sorted(set(finish.values())),
                "mask_share": timers["mask"].seconds / timers["step"].seconds,
                "bitmask_share": timers["bitmask"].seconds / timers["step"].seconds,
                "advance_share": timers["advance"].seconds / timers["step"].seconds,
                "sampler_share": timers["sampler"].seconds / timers["step"].seconds,
                "forward_share": timers["forward"].seconds / timers["step"].seconds,
                "mask_ms_per_step": 1e3 * timers["mask"].seconds / max(1, timers["mask"].calls),
                "step_ms": 1e3 * timers["step"].seconds / max(1, timers["step"].calls),
                "sample": texts.get(f"p{share}-{round_}-0", "")[:120]}

    runs = [one(share, r) for r in range(repeats) for share in (0, 50, 100)]
    return {"warmup_s": warmup_s, "runs": runs, "dtype": str(engine.dtype),
            "threads": torch.get_num_threads(),
            "int4": any(layer.packed_qkv is not None for layer in engine.model.layers)}


def summarise_engine(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    base = median([r["tok_s"] for r in result["runs"] if r["share"] == 0])
    # Other engineers' test suites share the two cores without the lock: the best round
    # of each share is the least disturbed one, so its ratio is reported beside the median.
    best = max(r["tok_s"] for r in result["runs"] if r["share"] == 0)
    for share in (0, 50, 100):
        runs = [r for r in result["runs"] if r["share"] == share]
        rates = sorted(r["tok_s"] for r in runs)
        rows.append({
            "share": share, "tok_s": median(rates), "min": rates[0], "max": rates[-1],
            "ratio": median(rates) / base, "best_ratio": rates[-1] / best,
            "mask_share": median([r["mask_share"] for r in runs]),
            "bitmask_share": median([r["bitmask_share"] for r in runs]),
            "advance_share": median([r["advance_share"] for r in runs]),
            "sampler_share": median([r["sampler_share"] for r in runs]),
            "forward_share": median([r["forward_share"] for r in runs]),
            "mask_ms_per_step": median([r["mask_ms_per_step"] for r in runs]),
            "step_ms": median([r["step_ms"] for r in runs]),
            "short": max(r["short"] for r in runs),
            "finish": sorted({f for r in runs for f in r["finish"]}),
        })
    return rows


def print_engine(result: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    print(f"engine: {result['dtype']}{' + int4' if result['int4'] else ''}, "
          f"{result['threads']} torch threads, c={BATCH}, {NEW_TOKENS} new tokens, greedy; "
          f"warm-up (compiler + schema + 8 tokens) {result['warmup_s']:.2f} s")
    print(f"{'constrained':>11} {'tok/s (median, range)':>26} {'vs 0 %':>7} {'step ms':>8} "
          f"{'mask ms':>8} {'fwd %':>6} {'mask %':>7} {'llg %':>6} {'adv %':>6} {'sampler %':>9} "
          f"{'short':>5}  finish")
    for r in rows:
        print(f"{r['share']:>10}% {r['tok_s']:>10.1f} ({r['min']:.1f}-{r['max']:.1f})"
              f"{r['ratio']:>8.1%} {r['best_ratio']:>9.1%} {r['step_ms']:>8.1f} "
              f"{r['mask_ms_per_step']:>8.2f} "
              f"{r['forward_share']:>6.1%} {r['mask_share']:>7.1%} "
              f"{r['bitmask_share']:>6.1%} {r['advance_share']:>6.1%} "
              f"{r['sampler_share']:>9.1%} {r['short']:>5}  {','.join(r['finish'])}")
    half = next(r for r in rows if r["share"] == 50)
    checks = [{"label": "50 % constrained >= 90 % of unconstrained tok/s",
               "passed": half["ratio"] >= 0.9,
               "shown": f"median {half['ratio']:.1%}, best/best {half['best_ratio']:.1%}"}]
    for check in checks:
        print(f"{'PASS' if check['passed'] else 'MISS'}  {check['label']}  {check['shown']}")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--python", type=Path, default=None,
                        help="interpreter with xgrammar and outlines-core "
                             f"(default {SCRATCH_PYTHON} when it exists)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="engine rounds per share (default 3, 1 with --quick)")
    parser.add_argument("--json", type=Path, default=None, help="write the run here")
    parser.add_argument("--skip-libraries", action="store_true")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.spec, args.out)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    report: dict[str, Any] = {"nproc": os.cpu_count(), "load_before": os.getloadavg()[0],
                              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print(f"nproc {os.cpu_count()}, load average (1 min) {os.getloadavg()[0]:.2f}")
    if not args.skip_libraries:
        from chorusline.runtime import load_model

        model = load_model(progress=False)
        eos = getattr(model.tokenizer, "eos_token_id", None)
        eos = eos if isinstance(eos, int) else min(model.config.eos_token_ids)
        spec = write_spec(model.tokenizer, model.config.vocab_size, eos, args.quick)
        scratch = args.python or (SCRATCH_PYTHON if SCRATCH_PYTHON.exists() else None)
        libraries = compare_libraries(spec, scratch)
        print_libraries(libraries)
        report["libraries"] = libraries
        del model
        print()
    if not args.skip_engine:
        repeats = args.repeats or (1 if args.quick else 3)
        engine = engine_throughput(repeats)
        rows = summarise_engine(engine)
        report["engine"] = {**engine, "summary": rows, "checks": print_engine(engine, rows)}
    report["load_after"] = os.getloadavg()[0]
    print(f"load average (1 min, end) {os.getloadavg()[0]:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
