"""Constrained decoding in the engine: each constrained choice's grammar state, the
allowed-token masks of a step, and when a grammar ends a choice.

Kept out of ``engine`` so the engine only asks two things per step: the mask for the
rows it is about to sample (None when no row is constrained, so unconstrained batches
pay nothing), and to advance each choice over its new token, which says whether the
choice's grammar is complete. A constrained row and an unconstrained one share the step;
only the constrained row's logits are masked.

Stop strings may end free text, never constrained text (a stop string inside a JSON
value would cut it): each choice's detokenizer is handed over with the request, and its
stop strings are switched off wherever the choice's grammar begins, at admission for a
grammar from the start, at the trigger otherwise.

A ``trigger`` grammar (a tool call the model may choose to start) leaves its choice free
until the choice's text contains the trigger; the matcher then starts on what followed
the trigger in the same tokens (tokenised anew: the grammar engine works on bytes, so
any tokenisation of those bytes reaches the same state). A continued request
(``GenerationRequest.resumed_tokens``, after a GPU-worker restart) replays its earlier
output through the same path, so the continuation stays inside the grammar, and a
trigger already in that output switches the stop strings off before the first new token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from chorusline.grammar import GrammarCompiler, GrammarMatcher, allowed_bitmask
from chorusline.protocols import GenerationRequest, Grammar
from chorusline.runtime.detokenizer import IncrementalDetokenizer

log = logging.getLogger("chorusline.runtime")
_BITS = torch.arange(32, dtype=torch.int32)


class GrammarDetokenizer(IncrementalDetokenizer):
    """A detokenizer whose stop strings can be switched off at a trigger: they may end
    the free text before it, never the constrained text after it."""

    def end_stops(self) -> None:
        self._stops = ()


@dataclass
class _Choice:
    grammar: Grammar
    detok: GrammarDetokenizer
    matcher: GrammarMatcher | None = None
    #: The choice's output bytes while it waits for its trigger.
    seen: bytearray = field(default_factory=bytearray)

    def start(self, matcher: GrammarMatcher) -> None:
        self.matcher = matcher
        self.detok.end_stops()  # what follows is constrained: never cut


class Constraints:
    def __init__(self, compiler: Callable[[], GrammarCompiler], vocab_size: int,
                 token_bytes: Callable[[int], bytes], device: torch.device) -> None:
        self._make_compiler = compiler
        self._compiler: GrammarCompiler | None = None
        self.vocab_size = vocab_size
        self._token_bytes = token_bytes
        self.device = device
        self._choices: dict[tuple[str, int], _Choice] = {}

    @property
    def compiler(self) -> GrammarCompiler:
        """Made at the first constrained request (it reads the whole vocabulary)."""
        if self._compiler is None:
            self._compiler = self._make_compiler()
        return self._compiler

    def add(self, request: GenerationRequest, detoks: Sequence[GrammarDetokenizer]) -> None:
        """Start ``request``'s choices at their grammar (``detoks[i]`` is choice ``i``'s
        detokenizer), replaying any resumed output; raises ``InvalidGrammar``."""
        grammar = request.params.grammar
        if grammar is None:
            return
        self.compiler.compile(grammar)
        resumed = request.prompt_token_ids[len(request.prompt_token_ids)
                                           - request.resumed_tokens:]
        for index, detok in enumerate(detoks):
            choice = _Choice(grammar, detok)
            if grammar.trigger is None:
                choice.start(self.compiler.matcher(grammar))
            self._choices[(request.request_id, index)] = choice
            for token in resumed if request.resumed_tokens else ():
                self.advance(request.request_id, index, token)

    def remove(self, request_id: str, choices: int) -> None:
        for index in range(choices):
            self._choices.pop((request_id, index), None)

    def mask(self, rows: Sequence[tuple[str, int]]) -> torch.Tensor | None:
        """``[len(rows), V]`` booleans: the tokens each row may take (all, for a free
        row); None when no row is constrained."""
        active = [(i, c.matcher) for i, key in enumerate(rows)
                  if (c := self._choices.get(key)) is not None and c.matcher is not None]
        if not active:
            return None
        bits = torch.from_numpy(allowed_bitmask([m for _, m in active], self.vocab_size))
        expanded = ((bits.unsqueeze(-1) >> _BITS) & 1).bool().reshape(len(active), -1)
        allowed = torch.ones(len(rows), self.vocab_size, dtype=torch.bool)
        allowed[[i for i, _ in active]] = expanded[:, : self.vocab_size]
        return allowed.to(self.device, non_blocking=True)

    def advance(self, request_id: str, index: int, token: int) -> bool:
        """Move the choice over ``token``; True when its grammar can take nothing more
        (the choice ends here, with ``stop``)."""
        choice = self._choices.get((request_id, index))
        if choice is None:
            return False
        if choice.matcher is not None:
            if not choice.matcher.consume([token]):
                log.warning("request %s choice %d left its grammar: %s", request_id, index,
                            choice.matcher.error)
            return choice.matcher.finished
        trigger = (choice.grammar.trigger or "").encode()
        choice.seen += self._token_bytes(token)
        at = choice.seen.find(trigger)
        if at < 0:
            return False
        tail = bytes(choice.seen[at + len(trigger):]).decode("utf-8", errors="ignore")
        matcher = self.compiler.matcher(choice.grammar,
                                        self.compiler.encode(tail) if tail else ())
        choice.start(matcher)
        return matcher.finished
