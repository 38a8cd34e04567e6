"""Tool calls in stored conversations: results in, calls kept, the history re-rendered.

A stored reply that calls tools is kept as OpenAI shows it: ``content`` without the
call markup and its ``tool_calls`` (ids derived from the request id, as the client was
shown them); the client's results come back as ``tool`` messages, committed once per
idempotency key (``Store.begin_tool_turn``). When the branch is read back into a prompt,
calls and results are rendered in the model's tool format by the same code the
stateless path uses (``chat.tools.template_turns``), so the model sees a stored
conversation exactly as it would see the same history sent in full.
"""

from __future__ import annotations

from collections.abc import Sequence

from chorusline.chat.deps import ChatDeps
from chorusline.chat.runner import check_input
from chorusline.chat.tools import template_turns, tools_prompt
from chorusline.chat.turn import ChatRequest
from chorusline.protocols import ChatMessage, InvalidRequest
from chorusline.store import Message, MessageStatus, Role


def branch_turns(branch: Sequence[Message]) -> list[dict[str, str]]:
    """The branch's complete messages as template turns, each with its message ``id``
    (the hot cache matches on it); a result's function name comes from its call."""
    names = {call.id: call.name for m in branch for call in m.tool_calls}
    turns: list[dict[str, str]] = []
    for m in branch:
        if m.role is Role.SYSTEM or m.status is not MessageStatus.COMPLETE:
            continue
        if not m.content and not m.tool_calls and m.role is not Role.TOOL:
            continue  # an empty result still answers its call: the model must see it
        message = ChatMessage(m.role.value, m.content, m.tool_calls, m.tool_call_id,
                              names.get(m.tool_call_id or ""))
        turns.extend({"id": m.id, **turn} for turn in template_turns([message]))
    return turns


def with_tools(system: str | None, request: ChatRequest) -> str | None:
    """The system prompt, with the tools' description when the turn offers them."""
    if not request.tools or request.tool_choice.mode == "none":
        return system
    return "\n\n".join(part for part in (system, tools_prompt(request.tools)) if part)


async def moderated_results(deps: ChatDeps, results: Sequence[ChatMessage]
                            ) -> tuple[ChatMessage, ...]:
    """The results as they will be stored: checked by the input policy (a block is a
    400 and nothing is written, as for a stateless tool message), PII redacted."""
    checked = []
    for i, result in enumerate(results):
        verdict = await check_input(deps, result.content)
        if verdict.blocked:
            raise InvalidRequest("the tool result was refused by content policy",
                                 param=f"tool_results[{i}].content")
        checked.append(ChatMessage("tool", verdict.redacted_text,
                                   tool_call_id=result.tool_call_id))
    return tuple(checked)
