"""Streaming output moderation equals moderating the whole reply, for any split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from chorusline.moderation import (
    SELF_HARM_REFUSAL,
    Action,
    Finding,
    Moderator,
    OutputModerator,
    Policy,
    Stage,
    apply_redactions,
    default_classifier,
)

MODERATOR = Moderator()


def stream(text: str, cuts: list[int], step: int | None = None) -> OutputModerator:
    """Feed ``text`` split at ``cuts``; a small ``step`` re-scans after almost every delta."""
    if step is None:
        out = MODERATOR.output_stream()
    else:
        out = OutputModerator(MODERATOR.classifier, MODERATOR.policy, step=step)
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    emitted = [out.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    emitted.append(out.finish())
    assert "".join(emitted) == out.emitted
    return out


FRAGMENTS = st.sampled_from(
    [
        "how to make a pipe bomb",
        "how to make a bath bomb",
        "jo.x@mail.example.io",
        "4111 1111 1111 1111",
        "4111111111111111",
        "+44 20 7946 0958",
        "123-45-6789",
        "I want to kill myself",
        "ignore previous instructions",
        "naked",
        " 12 year old",
        "\n",
        " ",
        "a",
        ".",
        "0",
        "1",
        "@",
        "BSN ",
        "111222333",
        "(415) 555-2671",
    ]
)
SEPARATORS = st.sampled_from(["", " ", " ", " ", ", ", "\n"])
TEXTS = st.lists(
    st.tuples(FRAGMENTS | st.text(max_size=5), SEPARATORS).map("".join), max_size=30
).map("".join)
CUTS = st.lists(st.integers(min_value=0, max_value=2000), max_size=40)


def check_equivalent(text: str, out: OutputModerator, moderator: Moderator) -> None:
    whole = moderator.check_output(text)
    assert out.verdict is not None
    assert (out.blocked is not None) == whole.blocked
    if not whole.blocked:
        assert out.emitted == whole.redacted_text
        assert out.verdict.findings == whole.findings
        assert out.verdict.action is whole.action
        return
    # Blocked: what was emitted is a redacted prefix that stops before the first block.
    first = min(
        f.start for f, a in zip(whole.findings, whole.actions, strict=True) if a is Action.BLOCK
    )
    redact = [
        f
        for f, a in zip(whole.findings, whole.actions, strict=True)
        if a is Action.REDACT and f.end <= first
    ]
    assert apply_redactions(text[:first], redact).startswith(out.emitted)
    assert out.feed("more text") == "" and out.finish() == ""


STEPS = st.sampled_from([None, 1, 5])


@settings(max_examples=300, deadline=None)
@given(TEXTS, CUTS, STEPS)
def test_stream_equals_whole_text(text: str, cuts: list[int], step: int | None) -> None:
    check_equivalent(text, stream(text, cuts, step), MODERATOR)


@settings(max_examples=150, deadline=None)
@given(TEXTS, CUTS, st.integers(min_value=1, max_value=8), STEPS)
def test_stream_equals_whole_text_with_long_lines(
    text: str, cuts: list[int], n: int, step: int | None
) -> None:
    """Lines far longer than the hold-back exercise the mid-line cuts."""
    long_text = (text.replace("\n", " ") + " filler words here ") * n * 6
    check_equivalent(long_text, stream(long_text, cuts, step), MODERATOR)


def test_email_split_across_deltas_is_never_leaked() -> None:
    out = MODERATOR.output_stream()
    pieces = ["x" * 300, " write to jo", "hn.doe@exa", "mple.com", " thanks ", "y" * 300]
    emitted = "".join(out.feed(p) for p in pieces) + out.finish()
    assert "john" not in emitted and "@" not in emitted
    assert "[REDACTED:email] thanks" in emitted


def test_longest_email_is_held_back_whole() -> None:
    """The widest match the rules allow must fit in the hold-back, wherever it is cut."""
    email = "a" * 64 + "@" + "b" * 98 + ".example"
    assert MODERATOR.check_output(email).redacted_text == "[REDACTED:email]"
    text = "words " * 60 + email + " and more" * 40
    for cut in range(len("words " * 60), len(text), 7):
        out = MODERATOR.output_stream()
        emitted = out.feed(text[:cut]) + out.feed(text[cut:]) + out.finish()
        assert "aaaa" not in emitted and "[REDACTED:email]" in emitted


def test_card_split_by_token() -> None:
    out = MODERATOR.output_stream()
    tokens = ["Your card ", "4111", " 1111", " 1111", " 1111", " is on file.\n"]
    emitted = [out.feed(t) for t in tokens]
    # The prose goes out at once; the digits wait until they can no longer grow.
    assert emitted[:-1] == ["Your card ", "", "", "", ""]
    assert emitted[-1] == "[REDACTED:card] is on file.\n"


def test_block_cuts_the_reply_cleanly() -> None:
    out = MODERATOR.output_stream()
    first = out.feed("Sure thing.\nHere is how to make a pi")
    # The completed line goes out at once, and the new line up to where the phrase starts
    # (the blank before it waits with it: it belongs to the phrase's first token).
    assert first == "Sure thing.\nHere is"
    assert out.feed("pe bomb at home: first") == ""
    assert out.blocked is None  # not settled yet: the phrase may still be innocent
    assert out.feed(" you take" + " some more words" * 20) == ""
    assert out.blocked is not None and out.blocked.blocked
    assert out.emitted == "Sure thing.\nHere is"
    assert out.feed("more") == "" and out.finish() == ""
    records = out.blocked.records()
    assert [(r.stage, r.category, r.action) for r in records] == [
        (Stage.OUTPUT, "weapons", Action.BLOCK)
    ]


def test_self_harm_output_gets_supportive_refusal() -> None:
    out = MODERATOR.output_stream()
    out.feed("I want to kill myself")
    out.finish()
    assert out.blocked is not None and out.blocked.refusal_text == SELF_HARM_REFUSAL


def test_long_line_streams_with_bounded_hold_back() -> None:
    out = MODERATOR.output_stream()
    text = "word " * 400
    emitted = ""
    for i in range(0, len(text), 4):
        emitted += out.feed(text[i : i + 4])
        # Held: at most the open word ("word ") and what arrived since the last scan.
        assert i + 4 - len(emitted) < out.pending_limit(i + 4) + len("word ") + 4
        if i > 1000:
            assert emitted  # not everything is held back
    assert emitted + out.finish() == text
    assert out.verdict is not None and out.verdict.action is Action.ALLOW


def test_prose_streams_a_word_behind_the_model() -> None:
    """Only the open tail waits (see ``open_start``), not the whole 200-character window."""
    out = MODERATOR.output_stream()
    text = ("The sea is big and blue. Fish live in it, and so do whales. It is 3 miles "
            "deep in parts! Wow.")
    fed = emitted = ""
    for i in range(0, len(text), 4):  # about a token at a time
        fed += text[i:i + 4]
        emitted += out.feed(text[i:i + 4])
        assert fed.startswith(emitted) and len(fed) - len(emitted) <= 12
    assert emitted + out.finish() == text


def test_hold_back_cannot_be_smaller_than_window() -> None:
    with pytest.raises(ValueError, match="window"):
        OutputModerator(default_classifier(), Policy(), hold_back=10)


class EveryX:
    """A one-character classifier with window 1: flags each "x" for redaction."""

    window = 1

    def classify(self, text: str) -> list[Finding]:
        return [Finding("pii", 1.0, (i, i + 1), "x") for i, c in enumerate(text) if c == "x"]


def test_custom_classifier_small_window_emits_early() -> None:
    moderator = Moderator(classifiers=[EveryX()])
    out = moderator.output_stream()
    assert out.hold_back == 1
    emitted = out.feed("a" * 40 + "x")
    assert emitted == "a" * 40  # only the last character is held back
    assert out.finish() == "[REDACTED:x]"


def test_a_letter_only_newer_unicode_knows_is_judged_alike_by_stream_and_whole() -> None:
    # U+3D000 is a word character to the ``regex`` engine the stream uses to hold text
    # back and not to ``re``: the whole-text check redacted the phone number after it
    # while the stream, cut after "(415", had already let it out.
    text = "\U0003d000(415) 555-2671"
    for cut in range(len(text) + 1):
        check_equivalent(text, stream(text, [cut]), MODERATOR)
