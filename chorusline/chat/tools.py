"""Tool calling: how a model is shown tools and calls, and the grammar that holds it to
a valid call.

The bundled model's chat template has no tool format, so chorusline uses one documented
format (``docs/api.md``), the tag style SmolLM2's larger siblings and Hermes-style models
are trained on: the tools' OpenAI definitions in the system prompt between ``<tools>``
tags, each call the assistant makes as ``<tool_call>{"name": ..., "arguments": {...}}
</tool_call>``, and each result as a ``tool`` message. The history's calls and results
are rendered the same way, so the model sees its earlier calls as it would have made them.

Decoding is constrained (``Grammar``): with ``required`` or a named function every token
must continue a valid call whose arguments match that function's schema; with ``auto``
the reply is free until it opens ``<tool_call>``, and from there it is held to a valid
call. ``name`` precedes ``arguments`` in the grammar, so a stream can announce the call
before its arguments arrive (``chat.tool_calls``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chorusline.protocols import ChatMessage, FunctionTool, Grammar, ToolChoice

OPEN, CLOSE = "<tool_call>", "</tool_call>"

_PREAMBLE = (
    "You can call functions to help answer. They are described by their JSON schemas "
    "inside <tools></tools>:\n<tools>\n{tools}\n</tools>\n"
    "To call a function, answer with a JSON object holding its name and arguments "
    'inside <tool_call></tool_call>, like <tool_call>{{"name": "<function name>", '
    '"arguments": {{...}}}}</tool_call>. One block per call.'
)


def tools_prompt(tools: Sequence[FunctionTool]) -> str:
    """The system-prompt text that shows the model its tools."""
    listed = "\n".join(json.dumps(tool.wire(), ensure_ascii=False) for tool in tools)
    return _PREAMBLE.format(tools=listed)


def call_text(name: str, arguments: str) -> str:
    """One call as the model writes it (the history renders earlier calls this way)."""
    named = json.dumps(name, ensure_ascii=False)
    return f'{OPEN}{{"name": {named}, "arguments": {arguments}}}{CLOSE}'


def template_turns(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """The non-system messages as the chat template takes them (role and text), with
    tool calls and tool results in the model's tool format."""
    turns: list[dict[str, str]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "assistant" and message.tool_calls:
            calls = "".join(call_text(c.name, c.arguments) for c in message.tool_calls)
            turns.append({"role": "assistant", "content": message.content + calls})
        elif message.role == "tool":
            result = {"name": message.name, "content": message.content}
            turns.append({"role": "tool",
                          "content": json.dumps(result, ensure_ascii=False)})
        else:
            turns.append({"role": message.role, "content": message.content})
    return turns


def _call_schema(tool: FunctionTool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _body_rules(tools: Sequence[FunctionTool]) -> str:
    """Lark rules ``body`` (one call object) for the grammar engine (its ``%json``
    embeds each function's own schema, so the arguments are checked by it)."""
    alternatives = " | ".join(f"call{i}" for i in range(len(tools)))
    rules = [f"body: {alternatives}"]
    rules += [f"call{i}: %json {json.dumps(_call_schema(tool))}" for i, tool in enumerate(tools)]
    return "\n".join(rules)


def tool_grammar(tools: Sequence[FunctionTool], choice: ToolChoice,
                 parallel: bool) -> Grammar | None:
    """The grammar for a reply that may (``auto``) or must (``required``, a named
    function) call tools; None when it may not (``none``)."""
    if choice.mode == "none" or not tools:
        return None
    if choice.mode == "function":
        tools = [tool for tool in tools if tool.name == choice.name]
    more = f' ("\\n"? "{OPEN}" body "{CLOSE}")*' if parallel else ""
    if choice.mode == "auto":  # free until the model opens a call; then a valid call
        return Grammar("lark", f'start: body "{CLOSE}"{more}\n{_body_rules(tools)}',
                       trigger=OPEN)
    return Grammar("lark", f'start: "{OPEN}" body "{CLOSE}"{more}\n{_body_rules(tools)}')
