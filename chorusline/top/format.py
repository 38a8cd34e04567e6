"""Turning the feed's values into the short, safe text the view shows.

Everything here takes whatever the feed sent (``object``: a newer or broken server may
send a string where a number was expected, or nothing at all) and gives text; a value
that is missing or of the wrong kind shows as ``MISSING`` rather than raising, so one odd
field never takes the whole view down.

Strings from the feed are also the one way a remote party writes to this terminal: an
actor path, a tenant id or a failure message may hold an escape sequence (``ESC [ 2 J``
clears the screen; others retitle the window or, on some terminals, write files). Rich
passes ESC through untouched, so ``clean`` shows every control character as a visible
``\\xNN`` escape before the text reaches rich; rich's markup is never applied to feed
strings either (they go into ``Text`` objects, see ``plain``).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Mapping
from typing import Any, TypeGuard

from rich.text import Text

MISSING = "—"
#: Line breaks and tabs would break a one-line cell: shown as one space.
_BLANK = {"\n", "\r", "\t", "\x0b", "\x0c", "\u2028", "\u2029", "\x85"}
#: Cc: C0 and C1 controls (ESC, CSI); Cf: format characters such as the bidi overrides
#: that make a name read backwards; Cs: a lone surrogate (valid JSON, but no terminal
#: encoding can write it).
_ESCAPED = {"Cc", "Cf", "Cs"}


def clean(value: object) -> str:
    """``value`` as one line with no control characters: line breaks and tabs become
    spaces, any other control or format character a visible escape."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(_char(c) for c in text)


def _char(char: str) -> str:
    if char in _BLANK:
        return " "
    return _escape(char) if unicodedata.category(char) in _ESCAPED else char


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(value: object, style: str = "") -> Text:
    """A feed string as a ``Text``: shown exactly (after ``clean``), never as markup."""
    return Text(clean(value), style=style)


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one: for nested payload fields
    that may be null (the GPU worker's figures while it restarts) or absent."""
    return value if isinstance(value, Mapping) else {}


def number(value: object, spec: str = "") -> Text:
    """A figure formatted with ``spec``; ``MISSING`` (dimmed) if it is not a number."""
    if not is_number(value):
        return Text(MISSING, style="dim")
    return Text(format(value, spec))


def duration(ms: object) -> Text:
    """Milliseconds as ``812 ms`` or, from a second on, ``1.4 s``."""
    if not is_number(ms):
        return Text(MISSING, style="dim")
    return Text(f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s")


def clock(seconds: float, *, millis: bool = False) -> str:
    """Unix seconds as local wall-clock time, ``HH:MM:SS[.mmm]``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(seconds))
    return f"{stamp}.{int(seconds * 1000) % 1000:03d}" if millis else stamp


def is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number (``True`` is an ``int`` to Python, not a figure to the view)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_int(value: object) -> int:
    """An integer figure, or 0: for sorting and for "is it non-zero" styling."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_float(value: object) -> float:
    return float(value) if is_number(value) else 0.0


def short_id(request_id: str, keep: int = 8) -> str:
    """``chatcmpl-9f2c…41d0``: the prefix says the kind, the ends tell requests apart."""
    prefix, dash, rest = request_id.rpartition("-")
    if len(rest) <= 2 * keep:
        return request_id
    return f"{prefix}{dash}{rest[:keep // 2]}…{rest[-keep // 2:]}"


def summary(detail: object) -> str:
    """An event's detail (or a fault plan) as one line of ``key=value`` pairs; a failure
    as ``Type: message``; tracebacks and nested objects are left for the console page."""
    if not isinstance(detail, Mapping):
        return clean(detail)
    parts = []
    for key, value in detail.items():
        if key == "failure" and isinstance(value, Mapping):
            parts.append(f"{value.get('type', '?')}: {value.get('message', '')}")
        elif key == "traceback" or isinstance(value, Mapping | list):
            continue
        elif value is not None:
            parts.append(f"{key}={value}")
    return " ".join(clean(" ".join(parts)).split())
