"""The store contract's part for tool results: a turn that answers tool calls.

Kept apart from ``base`` (already the longest module of the package); ``Store`` inherits
it, so a backend is incomplete without it and callers see one contract.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from chorusline.protocols import ChatMessage
from chorusline.store.models import ACTIVE_LEAF, ParentRef, Turn


class ToolTurns(abc.ABC):
    @abc.abstractmethod
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
        """Commit the ``tool`` messages of a turn, once per ``(user_id, key)``, as
        ``begin_turn`` commits a user message: a retry with the same key and results
        returns the original turn (``replayed``); other results under it are an
        ``InvalidRequest``.

        ``parent`` (the active leaf by default) must be a complete assistant message
        with tool calls; the results become its descendants in order, each the child of
        the one before, and must answer every one of its calls exactly once (else an
        ``InvalidRequest`` naming ``tool_results[i].tool_call_id``, or ``tool_results``
        for a call left unanswered). The turn's ``user_message`` is the last result.
        """
