"""The waiting queue of the scheduler: priority classes, then tenants, FIFO per tenant.

Pure Python (no torch), split from ``scheduler`` so the fairness rule reads on its own.
"""

from __future__ import annotations

from collections import deque

from chorusline.runtime.sequence import TokenSequence


class FairQueue:
    """Waiting sequences by priority class, then by tenant, FIFO inside a tenant.

    `peek` takes the most important class and, inside it, the tenant admitted longest
    ago (never-admitted tenants first, then by the arrival of their oldest request).
    With ``T`` backlogged tenants in a class, any ``T`` consecutive admissions from that
    class therefore include every one of them: a flood from one tenant costs the others
    at most one admission per round.
    """

    def __init__(self) -> None:
        self._classes: dict[int, dict[str, deque[TokenSequence]]] = {}
        self._last_served: dict[str, int] = {}
        self._clock = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def push(self, seq: TokenSequence, front: bool = False) -> None:
        q = self._classes.setdefault(seq.priority, {}).setdefault(seq.tenant, deque())
        if front:
            q.appendleft(seq)
        else:
            q.append(seq)
        self._len += 1

    def peek(self) -> TokenSequence | None:
        if not self._classes:
            return None
        tenants = self._classes[min(self._classes)]
        tenant = min(
            tenants, key=lambda t: (self._last_served.get(t, -1), tenants[t][0].arrival, t)
        )
        return tenants[tenant][0]

    def admit(self, seq: TokenSequence) -> None:
        """Remove the `peek`ed sequence and count its tenant as served."""
        self.remove(seq)
        self._last_served[seq.tenant] = self._clock
        self._clock += 1

    def remove(self, seq: TokenSequence) -> None:
        tenants = self._classes[seq.priority]
        q = tenants[seq.tenant]
        q.remove(seq)
        self._len -= 1
        if not q:
            del tenants[seq.tenant]
            if not tenants:
                del self._classes[seq.priority]
