"""Testing applications that embed chorusline: faults for the length of a block, and
fixtures (``actor_system``, ``chat_service``, ``chorusline_model``,
``chorusline_settings``) that the pytest plugin ``chorusline.testing.plugin`` provides
without an import (they are not exported here: pytest finds them through the plugin).

pytest imports this package in every run of anyone who installs chorusline (the plugin
lives in it), so whatever is imported here must stay cheap: no torch, no model stack.
"""

from chorusline.chaos import (
    INVARIANTS,
    Expect,
    History,
    Op,
    Readback,
    Verdict,
    acknowledged_stored,
    check,
    documented_errors_only,
    no_duplicates,
    quiescent,
    rate_limits_held,
    read_back,
    recovered,
    sequences_well_formed,
    streamed_replies_stored,
    streams_ended,
)
from chorusline.testing.faults import crash, delay, drop, injector

# The history and the checker are chorusline.chaos's own (httpx and trio: cheap enough
# for a plugin that pytest-trio users load anyway), so an application checks its own
# histories with exactly the invariants ``chorusline chaos`` applies.
__all__ = [
    "INVARIANTS",
    "Expect",
    "History",
    "Op",
    "Readback",
    "Verdict",
    "acknowledged_stored",
    "check",
    "crash",
    "delay",
    "documented_errors_only",
    "drop",
    "injector",
    "no_duplicates",
    "quiescent",
    "rate_limits_held",
    "read_back",
    "recovered",
    "sequences_well_formed",
    "streamed_replies_stored",
    "streams_ended",
]
