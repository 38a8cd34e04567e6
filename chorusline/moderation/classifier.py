"""The pluggable classifier interface, the regex engine behind the rules, and composition.

A classifier only reports findings; the policy decides. Any object with ``classify`` and
``window`` is a classifier, so a model-based one can replace the rules or join them in a
``CompositeClassifier``.

The locality contract (what makes streaming moderation equal whole-text moderation):

1. A finding never spans a newline, and depends only on the line it lies in: classifying
   the whole text or each line on its own gives the same findings.
2. A finding depends on at most ``window`` characters from its start: once the text
   extends ``window`` characters past a position, no finding starting before that
   position can still appear, change or vanish.

A classifier may also say exactly where its open tail begins (``open_start``): the first
position at which a finding could still begin or change if the text went on. The stream
then holds back only that tail instead of the whole window, so prose with nothing that
could become a finding streams out at once. The regex rules find it by partial matching
(the ``regex`` package, already installed for tiktoken): a rule is open at the start of
a partial match (the text ends inside a possible match: "how to make a", the "john" of
a possible "john@example.com") and at the start of any full match whose reach goes past
the end of the text (a longer alternative, a lookahead or a ``\b`` could still change it).

The regex rules satisfy both by construction: their patterns never match nor look across
``\\n`` (they use ``[ \\t]`` rather than ``\\s``) and every quantifier is bounded, which
``pattern_reach`` checks when a rule is built. A model-based classifier states its own
window (its context length in characters) and is called per line of streamed output.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import regex

from chorusline.moderation.categories import Finding

# Private, but the only way to read a compiled pattern's width; it is used once per rule
# at import time, and a test pins its behaviour.
_parser: Any = importlib.import_module("re._parser")
_ASSERTS = {"ASSERT", "ASSERT_NOT"}


@runtime_checkable
class Classifier(Protocol):
    """Finds policy-relevant spans in a text (see the module doc for the contract)."""

    @property
    def window(self) -> int:
        """Characters past a finding's start that can still change it (contract 2)."""
        ...

    def classify(self, text: str) -> list[Finding]:
        """All findings in ``text``, spans relative to ``text``."""
        ...


def _lookahead_width(node: Any) -> int:
    """The widest lookahead anywhere inside a parsed pattern (0 if none)."""
    widest = 0
    if isinstance(node, _parser.SubPattern):
        node = node.data
    if isinstance(node, list | tuple):
        if (
            len(node) == 2
            and str(node[0]) in _ASSERTS
            and isinstance(node[1], tuple)
            and node[1][0] == 1
        ):
            widest = int(node[1][1].getwidth()[1])
        for child in node:
            widest = max(widest, _lookahead_width(child))
    return widest


def pattern_reach(pattern: re.Pattern[str]) -> int:
    """How far past a match's start the engine may read: longest match + widest lookahead
    + 1 (a ``\\b`` or ``$`` reads the next character). Raises on unbounded patterns,
    which would break contract 2 and make the stream's hold-back unbounded."""
    tree = _parser.parse(pattern.pattern, pattern.flags)
    longest = int(tree.getwidth()[1])
    if longest >= _parser.MAXREPEAT:
        raise ValueError(f"unbounded pattern cannot be streamed: {pattern.pattern[:60]!r}")
    return longest + _lookahead_width(tree) + 1


@dataclass(frozen=True, slots=True)
class RegexRule:
    """One regex rule. ``group`` selects the reported span (e.g. the digits after a
    "BSN:" keyword); ``validate`` rejects matches a checksum or range rule says are not
    real (a Luhn failure is a random digit run, not a card)."""

    category: str
    detail: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    group: int = 0

    @property
    def reach(self) -> int:
        return pattern_reach(self.pattern)


_FLAGS = {re.IGNORECASE: regex.IGNORECASE, re.MULTILINE: regex.MULTILINE,
          re.DOTALL: regex.DOTALL, re.VERBOSE: regex.VERBOSE, re.ASCII: regex.ASCII}


def partial_twin(pattern: re.Pattern[str]) -> Any:
    """``pattern`` compiled by ``regex`` (which can match partially), same flags."""
    flags = 0
    for ours, theirs in _FLAGS.items():
        if pattern.flags & ours:
            flags |= theirs
    return regex.compile(pattern.pattern, flags)


def open_start(classifier: Classifier, text: str) -> int:
    """Where ``text``'s open tail begins for ``classifier``: its own ``open_start`` when it
    has one, else ``window`` characters before the end (contract 2)."""
    exact: Callable[[str], int] | None = getattr(classifier, "open_start", None)
    if exact is not None:
        return exact(text)
    return max(0, len(text) - classifier.window)


class RegexClassifier:
    """A classifier made of independent regex rules (each rule scans the text itself,
    so one rule's match never hides another's)."""

    def __init__(self, rules: Sequence[RegexRule]) -> None:
        self.rules = tuple(rules)
        self._window = max((rule.reach for rule in self.rules), default=0)
        self._partial = tuple((partial_twin(rule.pattern), rule.reach) for rule in self.rules)

    @property
    def window(self) -> int:
        return self._window

    def open_start(self, text: str) -> int:
        """The first position where a rule could still match differently with more text
        (see the module doc); ``len(text)`` when the whole text is settled.

        Only a match starting within ``reach - 1`` characters of the end can be open, so
        each rule is searched from there: the first match found (partial or full) is
        open, and lies at or before any open match a scan from the line's start would
        report (a match attempt at a position does not depend on where the scan began;
        starting later can only try positions an earlier match would have skipped, which
        holds back more, never less).
        """
        end = len(text)
        first = end
        for pattern, reach in self._partial:
            match = pattern.search(text, max(0, end - reach + 1), partial=True)
            if match is not None and match.start() < first:
                first = match.start()
        return first

    def classify(self, text: str) -> list[Finding]:
        return list(self._scan(text))

    def _scan(self, text: str) -> Iterator[Finding]:
        # Matched by the ``regex`` twins too, not by ``re``: the two engines ship
        # different Unicode versions, so ``\w`` disagrees on recently assigned letters
        # (U+3D000 is one to ``regex``, not to ``re``), and a finding the whole-text check
        # made that the stream's hold-back could not see coming would stream out unredacted.
        for rule, (pattern, _reach) in zip(self.rules, self._partial, strict=True):
            for match in pattern.finditer(text):
                value = match.group(rule.group)
                if rule.validate is not None and not rule.validate(value):
                    continue
                start, end = match.span(rule.group)
                yield Finding(rule.category, 1.0, (start, end), rule.detail)


class CompositeClassifier:
    """Several classifiers as one: the findings of all, the widest window of all.

    Overlapping findings are all kept; the policy and the redaction merge sort them out.
    """

    def __init__(self, classifiers: Iterable[Classifier]) -> None:
        self.classifiers = tuple(classifiers)
        self._window = max((c.window for c in self.classifiers), default=0)

    @property
    def window(self) -> int:
        return self._window

    def classify(self, text: str) -> list[Finding]:
        return [finding for c in self.classifiers for finding in c.classify(text)]

    def open_start(self, text: str) -> int:
        return min((open_start(c, text) for c in self.classifiers), default=len(text))


def classify_lines(classifier: Classifier, text: str) -> list[Finding]:
    """Classify ``text`` line by line (the way the stream sees it), spans in ``text``.

    Each line keeps its ``\\n`` so a lookahead at the line's end reads what it would read
    in the whole text.
    """
    found: list[Finding] = []
    offset = 0
    for line in split_lines(text):
        found.extend(f.shifted(offset) for f in classifier.classify(line))
        offset += len(line)
    return found


def split_lines(text: str) -> list[str]:
    """Split after each ``\n`` only (``str.splitlines`` also splits on ``\r``, form feeds
    and more, which the rules do not treat as boundaries)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines
