"""Tool-result turns: the client's answers to an assistant message's calls, once per key.

The same two guarantees as ``begin_turn``: the key row goes in first with ``ON CONFLICT
DO NOTHING``, so of concurrent retries exactly one writes the results, and a fingerprint
of the request (the results, in order, and the parent) catches a key reused for other
results. The results are checked against the calls inside the same transaction that
writes them, so a call answered twice or not at all can never be committed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from chorusline.protocols import ChatMessage, InvalidRequest
from chorusline.store._checks import check_text
from chorusline.store._sql import SqlStore, Tx
from chorusline.store._tool_calls import check_tool_call_id
from chorusline.store._turns import TurnsMixin
from chorusline.store.models import (
    ACTIVE_LEAF,
    Message,
    MessageStatus,
    ParentRef,
    Role,
    Turn,
)

#: Most results one turn may carry (OpenAI allows 128 tools; parallel calls are fewer).
MAX_RESULTS = 128


def results_fingerprint(conversation_id: str, results: Sequence[ChatMessage],
                        parent: ParentRef) -> str:
    parent_repr = "<active-leaf>" if parent is ACTIVE_LEAF else parent
    raw = json.dumps(["tool-results", conversation_id, parent_repr,
                            [[r.tool_call_id, r.content] for r in results]])
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _check_results(results: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
    checked = tuple(results)
    if not checked:
        raise InvalidRequest("tool_results must hold at least one result",
                             param="tool_results")
    if len(checked) > MAX_RESULTS:
        raise InvalidRequest(f"tool_results may hold at most {MAX_RESULTS} results",
                             param="tool_results")
    for i, result in enumerate(checked):
        if not isinstance(result, ChatMessage) or result.role != Role.TOOL.value:
            raise InvalidRequest(f"tool_results[{i}] must be a tool message",
                                 param=f"tool_results[{i}]")
        check_tool_call_id(result.tool_call_id, f"tool_results[{i}].tool_call_id")
        check_text(result.content, f"tool_results[{i}].content", max_len=10_000_000)
    return checked


def _answered(parent: Message, results: Sequence[ChatMessage]) -> None:
    """Every call of ``parent`` answered exactly once, and nothing else answered."""
    if parent.role is not Role.ASSISTANT or not parent.tool_calls:
        raise InvalidRequest("tool results must answer an assistant message that made "
                             "tool calls", param="tool_results")
    if parent.status is not MessageStatus.COMPLETE:
        raise InvalidRequest("the assistant message that made the calls did not complete "
                             f"({parent.finish_reason or 'still streaming'})",
                             param="tool_results")
    open_calls = {call.id for call in parent.tool_calls}
    for i, result in enumerate(results):
        if result.tool_call_id not in open_calls:
            answered = any(r.tool_call_id == result.tool_call_id for r in results[:i])
            raise InvalidRequest(
                f"tool_results[{i}] answers call {str(result.tool_call_id)[:64]!r}, "
                + ("which an earlier result already answers" if answered
                   else "which the assistant message did not make"),
                param=f"tool_results[{i}].tool_call_id")
        open_calls.discard(str(result.tool_call_id))
    if open_calls:
        missing = next(c.id for c in parent.tool_calls if c.id in open_calls)
        raise InvalidRequest(f"no tool result answers call {missing[:64]!r}",
                             param="tool_results")


class ToolTurnsMixin(TurnsMixin, SqlStore):
    def begin_tool_turn(
        self,
        user_id: str,
        conversation_id: str,
        idempotency_key: str,
        *,
        results: Sequence[ChatMessage],
        parent: ParentRef = ACTIVE_LEAF,
        request_id: str | None = None,
    ) -> Turn:
        check_text(idempotency_key, "idempotency_key", max_len=255, allow_empty=False)
        checked = _check_results(results)
        fingerprint = results_fingerprint(conversation_id, checked, parent)
        with self._transaction() as tx:
            self._owned_conversation(tx, user_id, conversation_id)
            seen = self._claim_key(tx, user_id, idempotency_key, conversation_id, fingerprint)
            if seen is not None:
                return seen
            answered = self._answered_message(tx, conversation_id, parent)
            _answered(answered, checked)
            previous = answered.id
            message: Message | None = None
            for result in checked:
                message = self._insert_message(
                    tx, conversation_id, role=Role.TOOL, content=result.content,
                    parent=previous, status=MessageStatus.COMPLETE, request_id=request_id,
                    tool_call_id=result.tool_call_id)
                previous = message.id
            assert message is not None  # _check_results refuses an empty list
            tx.execute(
                "UPDATE idempotency_keys SET user_message_id = ? WHERE user_id = ? AND key = ?",
                (message.id, user_id, idempotency_key),
            )
        return Turn(idempotency_key=idempotency_key, conversation_id=conversation_id,
                    user_message=message, assistant_message=None, response=None,
                    replayed=False)

    def _answered_message(self, tx: Tx, conversation_id: str, parent: ParentRef) -> Message:
        if parent is None:
            raise InvalidRequest("tool results cannot start a conversation",
                                 param="tool_results")
        if parent is not ACTIVE_LEAF:
            return self._message_in(tx, conversation_id, str(parent))
        branch = self._branch(tx, conversation_id, None)
        if not branch:
            raise InvalidRequest("the conversation has no tool calls to answer",
                                 param="tool_results")
        return branch[-1]
