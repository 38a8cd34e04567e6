"""Reading tool calls out of a reply as it streams.

The model writes its calls in the tool format of ``chat.tools``; a client must never see
that markup in ``content``, it must see OpenAI's ``tool_calls``, and a streaming client
must see each call announced (id and name) before its arguments arrive in fragments, as
OpenAI streams them. ``ToolCallParser`` turns the reply's text deltas into exactly that,
holding back only what could still turn out to be markup: a partial ``<tool_call>`` at
the end of the content, and an argument text's last ``}`` (which may be the call
object's own closing brace). Streamed and non-streamed replies use the same parser, so
the arguments a streaming client reassembles equal the non-streamed ones.

Call ids are derived from the request id and the call's index, so a replayed or exported
turn names its calls as the original response did.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from chorusline.chat.tools import CLOSE, OPEN, call_text
from chorusline.protocols import ToolCall

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*')


@dataclass(frozen=True)
class CallDelta:
    """A fragment of call ``index``: the first has its ``id`` and ``name``."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


def call_id(request_id: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{request_id}:{index}".encode()).hexdigest()[:24]


def _partial_open(text: str) -> int:
    """How many trailing characters of ``text`` could begin ``<tool_call>``."""
    for size in range(min(len(text), len(OPEN) - 1), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


def _merged(deltas: list[CallDelta]) -> list[CallDelta]:
    """One entry per call, as OpenAI sends a chunk: a call's announcement and the
    argument fragments that came with it in the same text become one delta."""
    out: list[CallDelta] = []
    for delta in deltas:
        if out and out[-1].index == delta.index:
            last = out[-1]
            out[-1] = CallDelta(last.index, last.arguments + delta.arguments,
                                last.id or delta.id, last.name or delta.name)
        else:
            out.append(delta)
    return out


class ToolCallParser:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.calls: list[ToolCall] = []
        self._mode = "content"
        self._buffer = ""
        self._sent = 0  # characters of the current call's arguments already released
        self._name = ""
        self._after_call = False

    def feed(self, text: str) -> tuple[str, list[CallDelta]]:
        """The content now safe to show and the call fragments ``text`` completes."""
        self._buffer += text
        content: list[str] = []
        deltas: list[CallDelta] = []
        while True:
            if self._mode == "content":
                if self._after_call:  # whitespace between calls is the format's, not text
                    self._buffer = self._buffer.lstrip()
                at = self._buffer.find(OPEN)
                if at < 0:
                    keep = _partial_open(self._buffer)
                    content.append(self._buffer[: len(self._buffer) - keep])
                    self._buffer = self._buffer[len(self._buffer) - keep:]
                    if content[-1]:
                        self._after_call = False
                    break
                content.append(self._buffer[:at])
                self._buffer, self._mode = self._buffer[at + len(OPEN):], "head"
            elif self._mode == "head":
                match = _HEAD.match(self._buffer)
                if match is None:
                    break
                self._name = str(json.loads(match.group(1)))
                self._buffer, self._sent, self._mode = self._buffer[match.end():], 0, "args"
                deltas.append(CallDelta(len(self.calls), "",
                                        call_id(self.request_id, len(self.calls)), self._name))
            else:
                end = self._buffer.find(CLOSE)
                if end < 0:
                    brace = self._buffer.rfind("}")
                    ready = self._buffer if brace < 0 else self._buffer[:brace]
                    self._release(ready, deltas)
                    break
                # Up to the call object's own closing brace: never less than was released.
                arguments = self._buffer[:end].rstrip()
                arguments = arguments[:-1] if arguments.endswith("}") else arguments
                self._close(arguments, deltas)
                self._buffer, self._mode = self._buffer[end + len(CLOSE):], "content"
                self._after_call = True
        return "".join(content), _merged(deltas)

    def finish(self) -> tuple[str, list[CallDelta]]:
        """Everything still held, at the reply's end. A call cut off (a ``length``
        finish) keeps the arguments it got; a call cut before its name is content."""
        deltas: list[CallDelta] = []
        content = ""
        if self._mode == "content":
            content = "" if self._after_call and not self._buffer.strip() else self._buffer
        elif self._mode == "head":
            content = OPEN + self._buffer
        else:
            self._close(self._buffer, deltas)
        self._buffer, self._mode = "", "content"
        return content, _merged(deltas)

    def _release(self, ready: str, deltas: list[CallDelta]) -> None:
        if len(ready) > self._sent:
            deltas.append(CallDelta(len(self.calls), ready[self._sent:]))
            self._sent = len(ready)

    def _close(self, arguments: str, deltas: list[CallDelta]) -> None:
        self._release(arguments, deltas)
        self.calls.append(ToolCall(call_id(self.request_id, len(self.calls)), self._name,
                                   arguments))


def split_tool_calls(request_id: str, text: str) -> tuple[str, list[ToolCall]]:
    """A whole reply's content and calls (what the streaming parser would give)."""
    parser = ToolCallParser(request_id)
    content, _ = parser.feed(text)
    rest, _ = parser.finish()
    return content + rest, parser.calls


def rendered(content: str, calls: Sequence[ToolCall]) -> str:
    """A reply's text with its calls in the tool format (what a replay streams, so the
    web layer reads the same calls out of it as it did the first time)."""
    return content + "".join(call_text(call.name, call.arguments) for call in calls)


def reply_calls(request_id: str, text: str, finish_reason: str
                ) -> tuple[str, tuple[ToolCall, ...], str]:
    """A reply's content, calls and finish reason as they are stored: ids from choice
    0 of ``request_id``, as ``web.completions`` names them; a reply that ended by itself
    after calling is ``tool_calls``, as OpenAI reports it."""
    content, calls = split_tool_calls(f"{request_id}:0", text)
    if calls and finish_reason == "stop":
        finish_reason = "tool_calls"
    return content, tuple(calls), finish_reason
