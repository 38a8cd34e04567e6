"""Incremental detokenisation with stop strings, for streaming.

Byte-level BPE tokens are byte strings, and one character can straddle tokens (an emoji is
often 2-4 tokens). Bytes go through an incremental UTF-8 decoder, which returns only whole
characters and keeps an unfinished sequence for the next token, so a stream never carries
half a character (truly invalid bytes become U+FFFD, as a full decode would give).

Stop strings may also straddle tokens, so decoded text is held back while its tail could
still be the start of a stop string. When a stop string completes, everything before it is
released and nothing from the stop string on ever is: a client never sees text it would have
to take back.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Sequence


class IncrementalDetokenizer:
    def __init__(self, token_bytes: Callable[[int], bytes], stop: Sequence[str] = ()) -> None:
        self._token_bytes = token_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stop if s)
        self._pending = ""
        #: The stop string that ended the text, once one has been seen.
        self.stop_hit: str | None = None
        #: Everything released so far.
        self.text = ""

    @property
    def stopped(self) -> bool:
        return self.stop_hit is not None

    def add(self, token_ids: Iterable[int]) -> str:
        """Feed newly generated tokens; returns the text that is now safe to show."""
        if self.stopped:
            return ""
        data = b"".join(self._token_bytes(t) for t in token_ids)
        self._pending += self._decoder.decode(data)
        return self._release(final=False)

    def flush(self) -> str:
        """The generation ended for another reason: release whatever is held back."""
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        pending = self._pending
        if self._stops:
            cut = _first_stop(pending, self._stops)
            if cut is not None:
                index, stop = cut
                self.stop_hit = stop
                self._pending = ""
                return self._emit(pending[:index])
        keep = 0 if final else _held_back(pending, self._stops)
        self._pending = pending[len(pending) - keep:] if keep else ""
        return self._emit(pending[: len(pending) - keep])

    def _emit(self, text: str) -> str:
        self.text += text
        return text


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """Earliest complete stop string in ``text`` (longest wins a tie at one index)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        i = text.find(stop)
        if i >= 0 and (best is None or i < best[0] or (i == best[0] and len(stop) > len(best[1]))):
            best = (i, stop)
    return best


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of some stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest
