"""Random JSON schemas from the subset the grammar engine supports, for property tests.

Every string is bounded (``maxLength``, an enum or a bounded pattern) and every array
has ``maxItems``: a random walk picks among all allowed tokens, and inside an unbounded
string almost every token of the vocabulary is allowed, so such a walk would rarely
close the string within its step bound and the property would check little.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

Schema = dict[str, Any]

#: Anchored, bounded patterns (``jsonschema`` searches; llguidance matches the whole).
PATTERNS = ["^[a-z]{1,4}$", "^[A-Z]{2}-[0-9]{2}$", "^(yes|no|maybe)$", "^[0-9]{3}$",
            "^a?b?c?$", "^[a-f0-9]{2,4}$"]
WORDS = ["red", "green", "blue", "a b", "", "\u00e9t\u00e9", "x\"y"]


def _integer(lo: int, span: int, shape: int) -> Schema:
    schema: Schema = {"type": "integer"}
    if shape != 1:
        schema["minimum"] = lo
    if shape != 2:
        schema["maximum"] = lo + span
    return schema


def _number(lo: int, span: int, bounded: bool) -> Schema:
    return ({"type": "number", "minimum": lo, "maximum": lo + span} if bounded
            else {"type": "number"})


def _string(low: int, extra: int) -> Schema:
    schema: Schema = {"type": "string", "maxLength": low + extra}
    if low:
        schema["minLength"] = low
    return schema


leaves: st.SearchStrategy[Schema] = st.one_of(
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.builds(_integer, st.integers(-1000, 1000), st.integers(0, 1000), st.integers(0, 2)),
    st.builds(_number, st.integers(-100, 100), st.integers(1, 100), st.booleans()),
    st.builds(_string, st.integers(0, 3), st.integers(0, 4)),
    st.builds(lambda values: {"type": "string", "enum": values},
              st.lists(st.sampled_from(WORDS), min_size=1, max_size=3, unique=True)),
    st.builds(lambda pattern: {"type": "string", "pattern": pattern},
              st.sampled_from(PATTERNS)),
    st.builds(lambda values: {"enum": values},
              st.lists(st.sampled_from(["red", "green", 3, None, True]), min_size=1,
                       max_size=3, unique=True)),
)


def objects(children: st.SearchStrategy[Schema]) -> st.SearchStrategy[Schema]:
    """Closed objects of 1-3 properties, each required or optional."""
    def build(fields: dict[str, Schema], required: list[bool]) -> Schema:
        return {"type": "object", "properties": fields,
                "required": [n for n, r in zip(fields, required, strict=False) if r],
                "additionalProperties": False}

    return st.builds(build, st.dictionaries(st.sampled_from(["a", "b", "c", "name", "id"]),
                                            children, min_size=1, max_size=3),
                     st.lists(st.booleans(), min_size=3, max_size=3))


def arrays(children: st.SearchStrategy[Schema]) -> st.SearchStrategy[Schema]:
    def build(item: Schema, low: int, extra: int) -> Schema:
        schema: Schema = {"type": "array", "items": item, "maxItems": low + extra}
        if low:
            schema["minItems"] = low
        return schema

    return st.builds(build, children, st.integers(0, 2), st.integers(0, 2))


schemas: st.SearchStrategy[Schema] = st.recursive(
    leaves,
    lambda children: st.one_of(
        objects(children),
        arrays(children),
        st.builds(lambda a, b: {"anyOf": [a, b]}, children, children),
    ),
    max_leaves=6,
)

#: What ``response_format`` carries: an object at the top, nested anything inside.
top_level_objects: st.SearchStrategy[Schema] = objects(schemas)
