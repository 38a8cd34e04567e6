"""Tool calls read out of a streaming reply: never markup in content, arguments whole."""

from __future__ import annotations

import json
import random

import pytest

from chorusline.chat.tool_calls import ToolCallParser, call_id, split_tool_calls

TWO_CALLS = ('Let me check.<tool_call>{"name": "add", "arguments": {"a": {"x": [1, 2]}, '
             '"b": "}"}}</tool_call>\n<tool_call>{"name": "now", "arguments": {}}</tool_call>')


def stream(text: str, seed: int) -> tuple[str, dict[int, str], dict[int, str], ToolCallParser]:
    rnd = random.Random(seed)
    parser = ToolCallParser("req")
    content, arguments, names = "", {}, {}
    pieces, i = [], 0
    while i < len(text):
        j = i + rnd.randint(1, 6)
        pieces.append(text[i:j])
        i = j
    for piece in [*pieces, None]:
        out, deltas = parser.feed(piece) if piece is not None else parser.finish()
        content += out
        for delta in deltas:
            if delta.id is not None:
                assert delta.index not in names, "a call is announced once"
                names[delta.index] = delta.name or ""
            assert delta.index in names, "the name comes before the arguments"
            arguments[delta.index] = arguments.get(delta.index, "") + delta.arguments
    return content, names, arguments, parser


@pytest.mark.parametrize("seed", range(50))
def test_any_chunking_gives_the_same_calls(seed: int) -> None:
    content, names, arguments, parser = stream(TWO_CALLS, seed)
    assert content == "Let me check."
    assert names == {0: "add", 1: "now"}
    assert [arguments[0], arguments[1]] == [c.arguments for c in parser.calls]
    assert json.loads(arguments[0]) == {"a": {"x": [1, 2]}, "b": "}"}
    assert json.loads(arguments[1]) == {}


def test_the_whole_reply_splits_like_the_stream() -> None:
    content, calls = split_tool_calls("req", TWO_CALLS)
    assert content == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("add", {"a": {"x": [1, 2]}, "b": "}"}), ("now", {})]
    assert [c.id for c in calls] == [call_id("req", 0), call_id("req", 1)]
    assert calls[0].id != calls[1].id and calls[0].id.startswith("call_")


def test_text_that_only_looks_like_a_call_opening_is_released() -> None:
    parser = ToolCallParser("r")
    assert parser.feed("a <tool") == ("a ", [])  # might be a call: held
    assert parser.feed("kit> b") == ("<toolkit> b", [])
    assert parser.finish() == ("", [])
    assert parser.calls == []


def test_a_reply_cut_off_mid_call_keeps_what_it_got() -> None:
    content, calls = split_tool_calls("r", '<tool_call>{"name": "f", "arguments": {"a": 1')
    assert content == ""
    assert [(c.name, c.arguments) for c in calls] == [("f", '{"a": 1')]
    content, calls = split_tool_calls("r", '<tool_call>{"na')
    assert (content, calls) == ('<tool_call>{"na', [])  # no name yet: nothing to call


def test_a_reply_without_calls_is_untouched() -> None:
    assert split_tool_calls("r", "Plain answer {with braces}.") == (
        "Plain answer {with braces}.", [])


def test_a_chunk_holds_one_entry_per_call_as_openai_sends_them() -> None:
    parser = ToolCallParser("req")
    _, deltas = parser.feed('<tool_call>{"name": "f", "arguments": {"a": 1, ')
    # The announcement and the first fragment arrived together: one delta, not two.
    assert [(d.index, d.id, d.name, d.arguments) for d in deltas] == [
        (0, call_id("req", 0), "f", '{"a": 1, ')]
    _, more = parser.feed('"b": 2}}</tool_call><tool_call>{"name": "g", "arguments": {}}')
    assert [(d.index, d.name, d.arguments) for d in more] == [
        (0, None, '"b": 2}'), (1, "g", "{}")]
