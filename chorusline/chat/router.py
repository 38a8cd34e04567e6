"""The model router: which models may answer a request, in what order.

It reads a request's ``model`` against the served table (``chat.served``: names,
aliases, the tier's list, what the request needs; a 404, 403 or 400 is raised here, at
the door, before anything is stored), then lists the candidates: the model asked for
first, then its configured fallbacks that the tier may use and that can serve the
request. ``runner.admit`` walks the list, passing over a model whose engine is down
right now (no driver registered: its subtree is restarting, or gave up and is being
restarted by ``/chat/engines``) or that refuses admission (overloaded), and tells the
router when a turn fell back.

It is an actor so that it has one place to keep what it has seen (how often it sent
requests away from each model, for the console and ``/metrics``) and so it sits in the
tree like everything else; asking it costs one message per turn.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from chorusline.actors import Actor
from chorusline.chat.served import ServedModels
from chorusline.protocols import ChoruslineError
from chorusline.ratelimit import Tier

ROUTER_KEY = "chorusline.model-router"


@dataclass(frozen=True)
class Route:
    """Which models may answer: ``model`` as the request named it (None: the default),
    for a key on ``tier``, needing ``capability`` (``served.CHAT`` / ``COMPLETIONS``)."""

    model: str | None
    tier: Tier
    capability: str


@dataclass(frozen=True)
class Fellback:
    """Told by ``runner.admit`` when a turn was answered by another model than asked."""

    from_model: str
    to_model: str


class ModelRouter(Actor):
    #: A request naming an unknown model, or one its tier may not use, is the caller's
    #: error, not a fault of this actor.
    expected_errors = (ChoruslineError,)

    def __init__(self, models: ServedModels) -> None:
        self.models = models
        self.routed: Counter[str] = Counter()
        self.fallbacks: Counter[tuple[str, str]] = Counter()

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Route):
            return self._route(message)
        if isinstance(message, Fellback):
            self.fallbacks[(message.from_model, message.to_model)] += 1
            return None
        raise TypeError(f"unexpected message {message!r}")

    def _route(self, route: Route) -> tuple[str, ...]:
        chosen = self.models.resolve(route.model, route.tier, route.capability)
        candidates = [chosen, *self.models.fallbacks(chosen, route.tier, route.capability)]
        self.routed[chosen.name] += 1
        return tuple(m.name for m in candidates)

    def introspect(self) -> dict[str, Any]:
        return {"routed": dict(self.routed),
                "fallbacks": [{"from": a, "to": b, "count": n}
                              for (a, b), n in sorted(self.fallbacks.items())]}
