"""The state ``chorusline top`` shows, folded from the feed's messages.

Kept apart from the drawing (chorusline.top.view) so that what a message does to the
state (a reconnect's ``hello`` replaces the event backlog, a ``gap`` adds to the skipped
count) can be read and tested without drawing anything.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chorusline.top.format import as_int

#: Events kept for the view: what a terminal has room for.
EVENTS_SHOWN = 10


@dataclass
class Screen:
    """The latest state of the feed, as the view draws it."""

    server: str
    connection: str = "connecting"  # "live", or why not and when the next try is
    hello: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None
    events: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=EVENTS_SHOWN))
    skipped: int = 0  # messages the server dropped because this client read too slowly

    def apply(self, name: str, payload: dict[str, Any]) -> bool:
        """Fold one feed message in; False if it changes nothing shown (a ``trace``,
        or a kind a newer server sends that this view does not know)."""
        if name == "hello":
            # A (re)connection: the server's backlog replaces what this client had, so
            # events from before a reconnect are neither lost nor shown twice.
            self.hello = payload
            backlog = payload.get("events")
            self.events = recent(e for e in backlog if isinstance(e, dict)) \
                if isinstance(backlog, list) else recent(())
            self.skipped = 0
        elif name == "snapshot":
            self.snapshot = payload
        elif name == "event":
            self.events.append(payload)
        elif name == "gap":
            self.skipped += max(0, as_int(payload.get("skipped")))
        else:
            return False
        return True


def recent(events: Iterable[dict[str, Any]]) -> deque[dict[str, Any]]:
    """The last EVENTS_SHOWN of ``events``, as ``Screen.events`` keeps them."""
    return deque(events, maxlen=EVENTS_SHOWN)
