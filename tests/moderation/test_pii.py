"""PII detection and redaction, with the validators that keep random numbers untouched."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from chorusline.moderation import (
    Action,
    Category,
    Moderator,
    PiiClassifier,
    Policy,
    Stage,
    bsn_valid,
    card_valid,
    luhn_valid,
    nino_valid,
    ssn_valid,
    steuer_id_valid,
)
from chorusline.moderation.pii import card_brand_length_ok

PII = PiiClassifier()


def kinds(text: str) -> list[str]:
    return [f.detail for f in PII.classify(text)]


def test_luhn() -> None:
    assert luhn_valid("4111 1111 1111 1111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111 1111 1111 1112")
    assert not luhn_valid("7")


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
        "30569309025904",
        "2223003122003222",
    ],
)
def test_known_test_cards_are_valid(number: str) -> None:
    assert card_valid(number)


def test_card_needs_brand_prefix_and_length() -> None:
    assert luhn_valid("1234567812345670")  # passes Luhn, but no issuer starts with 12
    assert not card_brand_length_ok("1234567812345670")
    assert card_valid("4222222222222")  # the 13-digit Visa length is allowed
    assert not card_brand_length_ok("37828224631000")  # Amex must have 15 digits


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1111 ok",
        "card 4111-1111-1111-1111.",
        "4111111111111111",
        "amex 3782 822463 10005",
    ],
)
def test_card_found(text: str) -> None:
    assert kinds(text) == ["card"]


@given(st.text(alphabet="0123456789", min_size=13, max_size=19))
def test_random_digit_runs_flagged_only_if_valid_card_or_tax_id(digits: str) -> None:
    for f in PII.classify(digits):
        assert f.detail in {"card", "de_steuer_id"}
        assert card_valid(digits) if f.detail == "card" else steuer_id_valid(digits)


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123456 shipped",  # 16 digits, fails Luhn
        "timestamp 1718031234567",
        "version 2024-01-15 and 12:30:45",
        "call extension 5-0100",
        "pi is 3.14159265358979",
        "my ssn is 000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "the sample 078-05-1120 card",
        "BSN 123456789",  # fails the 11-test
        "invoice 111222333",  # passes the 11-test but no BSN keyword
        "QQ123456C",
        "GB123456A",
        "12345678901",  # not a Steuer-ID: every digit once and a wrong check digit
    ],
)
def test_innocent_numbers_pass(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mail me at john.doe+x@mail.example.co.uk.", "email"),
        ("call +44 20 7946 0958 today", "phone"),
        ("call (415) 555-2671 today", "phone"),
        ("ring 020 7946 0958", "phone"),
        ("my ssn is 123-45-6789", "us_ssn"),
        ("NINO AB 12 34 56 C", "uk_nino"),
        ("nino ab123456c", "uk_nino"),
        ("mijn BSN is 111222333", "nl_bsn"),
        ("Steuer-ID 86095742719", "de_steuer_id"),
        ("Steuer-ID 47 036 892 816", "de_steuer_id"),
    ],
)
def test_pii_found(text: str, kind: str) -> None:
    assert kinds(text) == [kind]


def test_validators() -> None:
    assert ssn_valid("123-45-6789") and not ssn_valid("219-09-9999")
    assert nino_valid("AB123456C") and not nino_valid("NT123456A")
    assert bsn_valid("111222333") and not bsn_valid("000000000")
    assert steuer_id_valid("86095742719") and not steuer_id_valid("86095742718")
    assert not steuer_id_valid("11145678903")  # a digit three times in a row


def test_input_redaction_and_records_hold_no_pii() -> None:
    text = "I'm jane@example.org, card 4111 1111 1111 1111"
    verdict = Moderator().check_input(text)
    assert verdict.action is Action.REDACT
    assert verdict.redacted_text == "I'm [REDACTED:email], card [REDACTED:card]"
    assert verdict.text == verdict.redacted_text
    records = verdict.records()
    assert {(r.stage, r.category, r.detail) for r in records} == {
        (Stage.INPUT, Category.PII, "email"),
        (Stage.INPUT, Category.PII, "card"),
    }
    assert all("jane" not in r.detail and "4111" not in r.detail for r in records)


def test_pii_in_input_can_be_flagged_instead() -> None:
    policy = Policy().with_action(Stage.INPUT, Category.PII, Action.FLAG)
    verdict = Moderator(policy).check_input("reach me at jane@example.org")
    assert verdict.action is Action.ALLOW and verdict.flagged
    assert verdict.redacted_text == "reach me at jane@example.org"
    assert [r.action for r in verdict.records()] == [Action.FLAG]


def test_output_redaction() -> None:
    verdict = Moderator().check_output("Sure, write to ceo@corp.com\nor call +1 415 555 2671")
    assert verdict.redacted_text == "Sure, write to [REDACTED:email]\nor call [REDACTED:phone]"


def test_overlapping_detections_merge_into_one_placeholder() -> None:
    # "+1 415 555 2671" is caught by both phone patterns: one placeholder, two records.
    verdict = Moderator().check_output("call +1 415-555-2671 now")
    assert verdict.redacted_text == "call [REDACTED:phone] now"
    assert [f.detail for f in verdict.findings] == ["phone", "phone"]
    assert len(verdict.records()) == 2
