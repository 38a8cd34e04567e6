"""The tool format the model is shown, and the grammar that holds it to valid calls."""

from __future__ import annotations

import json

from chorusline.chat.tools import CLOSE, OPEN, template_turns, tool_grammar, tools_prompt
from chorusline.protocols import ChatMessage, FunctionTool, ToolCall, ToolChoice

WEATHER = FunctionTool("get_weather", "Weather for a city", {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
TIME = FunctionTool("now")


def test_the_prompt_lists_each_tool_as_openai_defines_it() -> None:
    text = tools_prompt([WEATHER, TIME])
    listed = text.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line) for line in listed] == [WEATHER.wire(), TIME.wire()]
    assert OPEN in text and CLOSE in text


def test_history_renders_calls_and_results_in_the_tool_format() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    turns = template_turns([
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "sunny", tool_call_id="call_1", name="get_weather"),
    ])
    assert [t["role"] for t in turns] == ["user", "assistant", "tool"]
    assert turns[1]["content"] == (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>')
    assert json.loads(turns[2]["content"]) == {"name": "get_weather", "content": "sunny"}


def test_the_grammar_follows_the_tool_choice() -> None:
    assert tool_grammar([WEATHER], ToolChoice("none"), True) is None
    auto = tool_grammar([WEATHER, TIME], ToolChoice("auto"), True)
    assert auto is not None and auto.trigger == OPEN and auto.kind == "lark"
    required = tool_grammar([WEATHER, TIME], ToolChoice("required"), False)
    assert required is not None and required.trigger is None
    assert required.source.startswith(f'start: "{OPEN}" body "{CLOSE}"\n')
    assert "call1" in required.source  # both tools are allowed
    named = tool_grammar([WEATHER, TIME], ToolChoice("function", "now"), False)
    assert named is not None and '"const": "now"' in named.source
    assert "get_weather" not in named.source
