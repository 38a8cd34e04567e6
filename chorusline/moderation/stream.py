"""The moderator: input check, whole-text output check, and streaming output check.

Streaming rests on the classifiers' locality contract (see ``classifier``): findings are
line-local and depend on at most ``window`` characters from their start. So the
``OutputModerator`` keeps only the current line, and holds back its *open tail*: the
part from the first position where a finding could still begin or change.

- The tail starts where the classifier's ``open_start`` says (the built-in rules find it
  by partial matching: "how to make a" waiting for its next word, a trailing word that
  could be an email's local part, a digit run that could grow into a card number), and
  never more than K characters before the end. K is the classifiers' ``window`` (203
  characters with the built-in rules: the longest email the PII rules recognise, 64 + 1
  + 100 + TLD, and the longest harm phrase); a classifier without ``open_start`` (a
  model, say) gets the whole K. Text before the tail can no longer gain, lose or change
  a finding, so it is final and may be emitted. Plain prose therefore streams a word or
  so behind the model, not 200 characters behind it.
  The blanks before an open word wait with it (BPE tokens carry a word's leading space,
  so a cut there would split a token and its logprob entry from its text).
- A completed line (``\\n`` arrived) is final at once and flushed whole.
- The line is re-scanned once max(``step``, len(line) / 8) characters have arrived since
  the last scan (``pending_limit``): short lines every few characters, and a very long
  line (minified JSON) costs O(len) reads, not O(len**2).
- A cut never falls inside a span to redact: it moves back to the span's start.

Hence: for any text and any split into deltas, the emitted text equals
``check_output(text).redacted_text`` when that is not blocked; when it is, the stream
blocks too, and nothing it emitted reaches into a blocked span (``test_stream`` checks
both with hypothesis). On a block the stream emits nothing more and ``blocked`` holds
the verdict whose ``refusal_text`` replaces the reply; the caller marks the message
``blocked`` and records ``verdict.records()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from chorusline.moderation.categories import (
    Action,
    Finding,
    Policy,
    Stage,
    Verdict,
    apply_redactions,
    build_verdict,
    decide,
    kept_findings,
)
from chorusline.moderation.classifier import (
    Classifier,
    CompositeClassifier,
    classify_lines,
    open_start,
)
from chorusline.moderation.injection import InjectionClassifier
from chorusline.moderation.pii import PiiClassifier
from chorusline.moderation.rules import RuleClassifier

DEFAULT_STEP = 4  # characters, about a token


@cache
def default_classifier() -> CompositeClassifier:
    """The built-in rules (stateless, so one shared instance serves every moderator)."""
    return CompositeClassifier([RuleClassifier(), PiiClassifier(), InjectionClassifier()])


class OutputModerator:
    """Moderates one reply as its deltas arrive (see the module doc). Not thread-safe:
    one per generation, fed by the task that relays the tokens."""

    def __init__(
        self,
        classifier: Classifier,
        policy: Policy,
        hold_back: int | None = None,
        step: int = DEFAULT_STEP,
    ) -> None:
        if hold_back is None:
            hold_back = classifier.window
        if hold_back < classifier.window:
            raise ValueError(f"hold_back {hold_back} < classifier window {classifier.window}")
        if step < 1:
            raise ValueError("step must be positive")
        self.hold_back = hold_back
        self.step = step
        self._classifier = classifier
        self._policy = policy
        self._line = ""  # the current, incomplete line
        self._line_start = 0  # its offset in the whole reply
        self._cut = 0  # how much of the line has been emitted
        self._scanned = 0  # the line's length at its last scan
        self._findings: list[Finding] = []  # final findings, whole-reply offsets
        self._out: list[str] = []
        self._blocked: Verdict | None = None
        self._verdict: Verdict | None = None

    @property
    def blocked(self) -> Verdict | None:
        """The blocking verdict, once the reply has been cut; ``None`` otherwise."""
        return self._blocked

    @property
    def verdict(self) -> Verdict | None:
        """The whole reply's verdict: set after a block or after ``finish``."""
        return self._verdict

    @property
    def emitted(self) -> str:
        """Everything returned so far by ``feed`` and ``finish``."""
        return "".join(self._out)

    @property
    def settled(self) -> int:
        """How many characters of the input (what ``feed`` took, before redaction) are
        final and emitted; lets a caller align per-token data with the released text."""
        return self._line_start + self._cut

    def pending_limit(self, line_length: int) -> int:
        """How many characters may arrive on the current line before it is re-scanned.

        The re-scan reads the whole line, so the step grows with the line (an eighth of
        it): a long line is then re-scanned O(log n) times, O(n) reads in all, at the
        price of emitting it in bigger chunks. Correctness does not depend on this.
        """
        return max(self.step, line_length // 8)

    def feed(self, delta: str) -> str:
        """Take the next piece of the reply; return the text that is now safe to emit."""
        if self._verdict is not None:
            return ""
        pieces: list[str] = []
        while delta and self._verdict is None:
            newline = delta.find("\n")
            if newline < 0:
                self._line += delta
                if len(self._line) - self._scanned >= self.pending_limit(len(self._line)):
                    pieces.append(self._advance(final=False))
                break
            self._line += delta[: newline + 1]
            delta = delta[newline + 1 :]
            pieces.append(self._advance(final=True))
        return "".join(pieces)

    def finish(self) -> str:
        """The reply has ended: return the held-back rest (empty if blocked)."""
        if self._verdict is not None:
            return ""
        rest = self._advance(final=True) if self._line else ""
        if self._verdict is None:
            self._verdict = build_verdict(
                Stage.OUTPUT,
                kept_findings(self._findings, self._policy),
                self._policy,
                self.emitted,
            )
        return rest

    def _advance(self, *, final: bool) -> str:
        """Classify the current line and emit what has become final."""
        policy, line, start = self._policy, self._line, self._cut
        if final:
            settled = len(line)
        else:
            tail = max(open_start(self._classifier, line), len(line) - self.hold_back)
            if tail < len(line):
                # Hold the open word's leading blanks with it: tokenizers put a word's
                # space in the word's token, so the cut stays between tokens.
                tail = len(line[:tail].rstrip(" \t"))
            self._scanned = len(line)
            if tail <= start:
                return ""  # nothing new is final: no need to classify yet
            settled = tail
        found = [
            f
            for f in kept_findings(self._classifier.classify(line), policy)
            if start <= f.start < settled
        ]
        actions = [policy.action_for(Stage.OUTPUT, f.category) for f in found]
        if Action.BLOCK in actions:
            self._findings.extend(f.shifted(self._line_start) for f in found)
            self._blocked = self._verdict = build_verdict(
                Stage.OUTPUT, kept_findings(self._findings, policy), policy, self.emitted
            )
            return ""
        redact = [f for f, a in zip(found, actions, strict=True) if a is Action.REDACT]
        cut = settled
        moved = True
        while moved:  # never cut inside a span to redact (spans may chain by overlap)
            moved = False
            for f in redact:
                if f.start < cut < f.end:
                    cut, moved = f.start, True
        done = [f for f in found if f.start < cut]
        self._findings.extend(f.shifted(self._line_start) for f in done)
        text = apply_redactions(line[start:cut], (f for f in redact if f.start < cut), start)
        self._out.append(text)
        if final:
            self._line_start += len(line)
            self._line, self._cut, self._scanned = "", 0, 0
        else:
            self._cut = cut
        return text


class Moderator:
    """Policy plus classifiers: the one object the conversation actor talks to."""

    def __init__(
        self,
        policy: Policy | None = None,
        classifiers: Sequence[Classifier] | None = None,
        *,
        hold_back: int | None = None,
    ) -> None:
        self.policy = policy if policy is not None else Policy()
        self.classifier: Classifier = (
            default_classifier() if classifiers is None else CompositeClassifier(classifiers)
        )
        self.hold_back = hold_back

    def check_input(self, text: str) -> Verdict:
        """Check a user message before any engine work (the whole text at once)."""
        return decide(Stage.INPUT, text, self.classifier.classify(text), self.policy)

    def check_output(self, text: str) -> Verdict:
        """Moderate a complete reply; the reference the stream is equivalent to."""
        findings = classify_lines(self.classifier, text)
        return decide(Stage.OUTPUT, text, findings, self.policy)

    def output_stream(self) -> OutputModerator:
        """A fresh streaming moderator for one reply."""
        return OutputModerator(self.classifier, self.policy, self.hold_back)
