"""The moderation vocabulary: categories, actions, findings, policy and verdicts.

Classifiers only *find* things (a ``Finding`` says "this span looks like X"); the
``Policy`` alone decides what happens to each finding, per stage. Keeping the two apart
is what lets a model-based classifier replace or join the rules without touching the
decisions, and lets an operator relax or tighten a category without touching detection.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace


class Category(enum.StrEnum):
    """The policy categories the built-in rules know.

    Findings carry a plain ``str`` category so that a pluggable classifier may report
    categories of its own; these members are ``str`` too and compare equal to their value.
    """

    WEAPONS = "weapons"
    DRUGS = "drugs"
    SELF_HARM = "self_harm"
    SEXUAL_MINORS = "sexual_minors"
    PII = "pii"
    PROMPT_INJECTION = "prompt_injection"


class Action(enum.StrEnum):
    """What the policy does with a finding, weakest first (the order matters: the
    strongest action among a text's findings becomes the verdict's action)."""

    ALLOW = "allow"  # ignore: nothing is recorded
    FLAG = "flag"  # let the text through unchanged, but record the finding
    REDACT = "redact"  # replace the finding's span with a placeholder, and record
    BLOCK = "block"  # refuse the whole text, and record

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Action.ALLOW: 0, Action.FLAG: 1, Action.REDACT: 2, Action.BLOCK: 3}


class Stage(enum.StrEnum):
    """Where moderation looked. Same values as the store's ``ModerationStage``, so the
    caller converts with ``ModerationStage(record.stage)``; this package does not import
    the store (it stays pure and dependency-free)."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a classifier found.

    ``span`` is ``(start, end)`` in the text that was classified. ``detail`` names the
    rule or the PII kind (``"email"``, ``"card"``, ``"weapons.explosives"``...) and must
    never contain the matched text itself: it is written to the moderation log, and a log
    full of the card numbers we redacted would defeat the redaction.
    """

    category: str
    score: float
    span: tuple[int, int]
    detail: str

    @property
    def start(self) -> int:
        return self.span[0]

    @property
    def end(self) -> int:
        return self.span[1]

    def shifted(self, offset: int) -> Finding:
        """The same finding in a text where the classified part starts at ``offset``."""
        return replace(self, span=(self.span[0] + offset, self.span[1] + offset))


@dataclass(frozen=True, slots=True)
class ModerationRecord:
    """What the caller writes with ``Store.record_moderation`` (one per acted-on finding)."""

    stage: Stage
    category: str
    action: Action
    detail: str


SELF_HARM_REFUSAL = (
    "I'm really sorry you're going through this. I can't help with that, but you don't "
    "have to face it alone. Please reach out to someone you trust, or to a crisis line: "
    "in the US call or text 988, in the UK and Ireland call Samaritans on 116 123, and "
    "elsewhere https://findahelpline.com lists free, confidential services. If you are in "
    "immediate danger, please call your local emergency number."
)

DEFAULT_REFUSALS: Mapping[str, str] = {
    Category.WEAPONS: "I can't help with making weapons or explosives.",
    Category.DRUGS: (
        "I can't help with making illegal drugs. For questions about medicines and their "
        "safety, a pharmacist or doctor is the right person to ask."
    ),
    Category.SELF_HARM: SELF_HARM_REFUSAL,
    Category.SEXUAL_MINORS: (
        "I can't help with that. Sexual content involving minors is never allowed."
    ),
}
GENERIC_REFUSAL = "I can't help with that request."

# When several blocking categories are found, the refusal of the first in this order is
# shown: a person at risk should get the supportive message whatever else they wrote.
REFUSAL_PRIORITY: Sequence[str] = (
    Category.SELF_HARM,
    Category.SEXUAL_MINORS,
    Category.WEAPONS,
    Category.DRUGS,
)

_DEFAULT_INPUT: Mapping[str, Action] = {
    Category.WEAPONS: Action.BLOCK,
    Category.DRUGS: Action.BLOCK,
    Category.SELF_HARM: Action.BLOCK,
    Category.SEXUAL_MINORS: Action.BLOCK,
    # Redact, not flag: the model (and the prompt log) then never holds the user's card
    # number. Set it to FLAG to keep the user's text intact, e.g. for a form-filling bot.
    Category.PII: Action.REDACT,
    # Flag, not block: the phrases are also used innocently ("what does 'ignore previous
    # instructions' mean?"); a record lets operators see attempts without refusing users.
    Category.PROMPT_INJECTION: Action.FLAG,
}
_DEFAULT_OUTPUT: Mapping[str, Action] = {
    **_DEFAULT_INPUT,
    Category.PII: Action.REDACT,
    # A reply that *explains* jailbreak phrases is not an attack on us.
    Category.PROMPT_INJECTION: Action.ALLOW,
}


@dataclass(frozen=True)
class Policy:
    """Category -> action, per stage; plus refusal texts and the score threshold.

    Categories absent from the maps get ``unknown_action`` (FLAG: a new classifier's
    categories are recorded, never silently enforced, until the operator decides).
    Findings scoring below ``threshold`` are ignored (rules score 1.0).
    """

    input_actions: Mapping[str, Action] = field(default_factory=lambda: dict(_DEFAULT_INPUT))
    output_actions: Mapping[str, Action] = field(default_factory=lambda: dict(_DEFAULT_OUTPUT))
    refusals: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REFUSALS))
    threshold: float = 0.5
    unknown_action: Action = Action.FLAG

    def action_for(self, stage: Stage, category: str) -> Action:
        actions = self.input_actions if stage is Stage.INPUT else self.output_actions
        return actions.get(category, self.unknown_action)

    def with_action(self, stage: Stage, category: str, action: Action) -> Policy:
        """A copy with one decision changed (the policy itself is immutable)."""
        if stage is Stage.INPUT:
            return replace(self, input_actions={**self.input_actions, category: action})
        return replace(self, output_actions={**self.output_actions, category: action})

    def refusal_for(self, categories: Iterable[str]) -> str:
        found = set(categories)
        for category in REFUSAL_PRIORITY:
            if category in found:
                return self.refusals.get(category, GENERIC_REFUSAL)
        for category in sorted(found):
            if category in self.refusals:
                return self.refusals[category]
        return GENERIC_REFUSAL


def placeholder(finding: Finding) -> str:
    """The text that replaces a redacted span: says what was removed, not what it was."""
    kind = finding.detail if finding.category == Category.PII else finding.category
    return f"[REDACTED:{kind}]"


def redaction_groups(findings: Iterable[Finding]) -> list[tuple[int, int, Finding]]:
    """Merge overlapping spans (two detectors may claim the same digits: phone and card).

    Only strictly overlapping spans merge, never merely adjacent ones: the merge then
    depends only on the findings themselves, which keeps streaming and whole-text
    redaction identical. Each group is labelled by its earliest, longest finding.
    """
    ordered = sorted(findings, key=lambda f: (f.start, -f.end, f.detail))
    groups: list[tuple[int, int, Finding]] = []
    for f in ordered:
        if groups and f.start < groups[-1][1]:
            start, end, label = groups[-1]
            groups[-1] = (start, max(end, f.end), label)
        else:
            groups.append((f.start, f.end, f))
    return groups


def apply_redactions(text: str, findings: Iterable[Finding], offset: int = 0) -> str:
    """``text`` (which starts at ``offset`` of the classified text) with spans replaced."""
    out: list[str] = []
    pos = 0
    for start, end, label in redaction_groups(findings):
        start, end = start - offset, end - offset
        out.append(text[pos:start])
        out.append(placeholder(label))
        pos = end
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one text.

    ``action`` is the strongest action among the findings, reported as ALLOW, REDACT or
    BLOCK (a FLAG lets the text through unchanged, so it reads as ALLOW with ``flagged``).
    ``redacted_text`` is the text with redactions applied even when blocked, so that a
    test can compare; what to *show* is ``text``: the refusal when blocked.
    """

    stage: Stage
    action: Action
    findings: tuple[Finding, ...]
    actions: tuple[Action, ...]
    redacted_text: str
    refusal_text: str | None = None

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    @property
    def flagged(self) -> bool:
        return Action.FLAG in self.actions

    @property
    def text(self) -> str:
        return self.refusal_text if self.refusal_text is not None else self.redacted_text

    def records(self) -> list[ModerationRecord]:
        """One record per finding that was acted on (ALLOW leaves no trace)."""
        return [
            ModerationRecord(self.stage, f.category, a, f.detail)
            for f, a in zip(self.findings, self.actions, strict=True)
            if a is not Action.ALLOW
        ]


def kept_findings(findings: Iterable[Finding], policy: Policy) -> list[Finding]:
    """The findings at or above the policy's threshold, in text order."""
    return sorted(
        (f for f in findings if f.score >= policy.threshold),
        key=lambda f: (f.start, f.end, f.category, f.detail),
    )


def build_verdict(
    stage: Stage, kept: Sequence[Finding], policy: Policy, redacted_text: str
) -> Verdict:
    """The verdict for findings already filtered by ``kept_findings``, given the text
    that results from their redactions (the stream builds that text piece by piece)."""
    actions = tuple(policy.action_for(stage, f.category) for f in kept)
    strongest = max(actions, key=lambda a: a.rank, default=Action.ALLOW)
    if strongest is Action.BLOCK:
        blocking = (f.category for f, a in zip(kept, actions, strict=True) if a is Action.BLOCK)
        return Verdict(
            stage, Action.BLOCK, tuple(kept), actions, redacted_text, policy.refusal_for(blocking)
        )
    shown = Action.REDACT if strongest is Action.REDACT else Action.ALLOW
    return Verdict(stage, shown, tuple(kept), actions, redacted_text)


def decide(stage: Stage, text: str, findings: Iterable[Finding], policy: Policy) -> Verdict:
    """Apply ``policy`` to the findings over ``text``."""
    kept = kept_findings(findings, policy)
    redact = [f for f in kept if policy.action_for(stage, f.category) is Action.REDACT]
    return build_verdict(stage, kept, policy, apply_redactions(text, redact))
