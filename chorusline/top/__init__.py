"""``chorusline top``: the supervisor console's feed (docs/console.md) in a terminal.

A client of the HTTP API only: it imports none of the actor system, the model stack or
the web layer, so it starts in a fraction of a second and runs anywhere that can reach
the server. The command line needs just ``run_top`` and ``base_url`` (to check ``--url`` before
anything connects); ``FeedError`` and ``open_feed`` serve a script that wants the raw
messages. Everything else here is the view's own business.
"""

from chorusline.top.app import run_top as run_top
from chorusline.top.feed import (
    FeedError as FeedError,
    base_url as base_url,
    open_feed as open_feed,
)

__all__ = ["FeedError", "base_url", "open_feed", "run_top"]
