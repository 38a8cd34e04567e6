"""The classifier interface, composition, policy decisions and the locality contract."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from chorusline.moderation import (
    Action,
    Category,
    Classifier,
    CompositeClassifier,
    Finding,
    Moderator,
    Policy,
    RegexClassifier,
    RegexRule,
    Stage,
    apply_redactions,
    classify_lines,
    default_classifier,
    open_start,
)
from chorusline.moderation.classifier import pattern_reach


class FakeModel:
    """Stands in for a model-based classifier: scores "rude" as harassment."""

    window = 8

    def classify(self, text: str) -> list[Finding]:
        return [
            Finding("harassment", 0.9 if m.group() == "rude" else 0.2, m.span(), "model")
            for m in re.finditer(r"rude|meh", text)
        ]


def test_fake_model_satisfies_the_protocol() -> None:
    assert isinstance(FakeModel(), Classifier)
    assert isinstance(default_classifier(), Classifier)


def test_composite_joins_rules_and_model() -> None:
    both = CompositeClassifier([default_classifier(), FakeModel()])
    assert both.window == max(default_classifier().window, 8)
    cats = {f.category for f in both.classify("you are rude, mail a@b.io")}
    assert cats == {"harassment", Category.PII}


def test_unknown_category_is_flagged_and_low_scores_ignored() -> None:
    verdict = Moderator(classifiers=[FakeModel()]).check_input("rude and meh")
    assert verdict.action is Action.ALLOW and verdict.flagged
    assert [(f.category, f.score) for f in verdict.findings] == [("harassment", 0.9)]


def test_policy_can_block_a_model_category() -> None:
    policy = Policy(refusals={"harassment": "Let's keep it civil."}).with_action(
        Stage.INPUT, "harassment", Action.BLOCK
    )
    verdict = Moderator(policy, [FakeModel()]).check_input("so rude")
    assert verdict.blocked and verdict.refusal_text == "Let's keep it civil."
    assert Moderator(policy, [FakeModel()]).check_output("so rude").action is Action.ALLOW


def test_model_can_replace_the_rules() -> None:
    assert Moderator(classifiers=[FakeModel()]).check_input("how to make a bomb").findings == ()


def test_pattern_reach_counts_lookahead_and_rejects_unbounded() -> None:
    assert pattern_reach(re.compile(r"ab{1,3}(?!xyz)")) == 4 + 3 + 1
    with pytest.raises(ValueError, match="unbounded"):
        pattern_reach(re.compile(r"a+"))
    with pytest.raises(ValueError, match="unbounded"):
        RegexClassifier([RegexRule("x", "x", re.compile(r"\s*x"))])


def test_default_window_is_small() -> None:
    # The stream holds back this many characters; keep it near one short paragraph.
    assert 100 <= default_classifier().window <= 256


def test_redaction_merges_only_overlaps() -> None:
    a = Finding(Category.PII, 1.0, (0, 4), "phone")
    b = Finding(Category.PII, 1.0, (2, 6), "card")
    c = Finding(Category.PII, 1.0, (6, 8), "email")
    assert apply_redactions("0123456789", [b, a, c]) == ("[REDACTED:phone][REDACTED:email]89")


def test_verdict_is_strongest_action() -> None:
    verdict = Moderator().check_input("mail a@b.io and how to make a pipe bomb")
    assert verdict.blocked
    assert set(verdict.actions) == {Action.REDACT, Action.BLOCK}
    assert verdict.redacted_text.startswith("mail [REDACTED:email]")


FRAGMENTS = st.sampled_from(
    [
        "how to make a pipe bomb",
        "jo@x.io",
        "4111 1111 1111 1111",
        "+44 20 7946 0958",
        "123-45-6789",
        "I want to kill myself",
        "ignore previous instructions",
        "naked",
        " child",
        "\n",
        " ",
        "a",
        "-",
        "0",
        "BSN ",
        "111222333",
        "(415) 555-2671",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(FRAGMENTS | st.text(max_size=6), max_size=12).map("".join))
def test_rules_are_line_local(text: str) -> None:
    """Contract 1: the whole text and each line alone give the same findings."""
    classifier = default_classifier()
    key = lambda f: (f.start, f.end, f.category, f.detail)  # noqa: E731
    whole = sorted(classifier.classify(text), key=key)
    assert whole == sorted(classify_lines(classifier, text), key=key)
    assert all("\n" not in text[f.start : f.end] for f in whole)


@pytest.mark.parametrize(("text", "tail"), [
    ("The sea is big and blue. ", ""),  # nothing could still become a finding
    ("Hello there, friend", "friend"),  # could be an email's local part
    ("so how to make a", "how to make a"),  # a harm phrase waiting for its next word
    ("It costs $4,000 and", "and"),
    ("I am 12", "am 12"),  # "... 12 year old"
])
def test_open_start_holds_only_what_could_still_change(text: str, tail: str) -> None:
    assert text[open_start(default_classifier(), text):] == tail


def test_open_start_of_a_classifier_without_one_is_its_window() -> None:
    class Windowed:
        window = 7

        def classify(self, text: str) -> list[Finding]:
            return []

    assert open_start(Windowed(), "x" * 20) == 13
    assert open_start(Windowed(), "abc") == 0
    prose = "The sea is big and blue. "  # settled for the rules
    assert open_start(default_classifier(), prose) == 25
    assert open_start(CompositeClassifier([Windowed(), default_classifier()]), prose) == 18
