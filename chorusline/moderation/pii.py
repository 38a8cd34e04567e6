"""PII detection: emails, phone numbers, payment cards and national identity numbers.

Precision comes from validation rather than from ever-looser patterns: a card number
must pass the Luhn check *and* match a card brand's prefix and length (a random 16-digit
run passes Luhn one time in ten, a brand check too about one in a hundred); a US SSN must
fall outside the ranges that were never issued; the Dutch BSN must pass its 11-test and
the German Steuer-ID its ISO 7064 check digit and digit-repetition rule.

Trade-offs, chosen to keep innocent numbers (order ids, timestamps) untouched:
- SSNs are recognised only with separators (``123-45-6789``, ``123 45 6789``): every
  third bare 9-digit number would otherwise pass the range rules.
- A BSN needs its keyword nearby ("BSN", "burgerservicenummer", "sofinummer"): one bare
  9-digit number in eleven passes the 11-test, far too many.
- National phone numbers need separators or a leading ``+``/trunk ``0``; a bare digit run
  is left to the card rule, which validates it.
- Emails longer than 64 characters before the ``@`` or 100 after it are not recognised:
  the bound keeps the stream's hold-back window small (see ``stream``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from chorusline.moderation.categories import Category
from chorusline.moderation.classifier import RegexClassifier, RegexRule


def digits_of(text: str) -> list[int]:
    return [int(c) for c in text if c.isdigit()]


def luhn_valid(number: str) -> bool:
    """The Luhn mod-10 check over the digits of ``number`` (separators ignored)."""
    digits = digits_of(number)
    if len(digits) < 2:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand_length_ok(number: str) -> bool:
    """Whether the digits start with a known issuer prefix and have that brand's length."""
    d = "".join(str(x) for x in digits_of(number))
    n = len(d)
    if n < 13 or n > 19:
        return False
    p2, p3, p4, p6 = int(d[:2]), int(d[:3]), int(d[:4]), int(d[:6])
    if d[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # American Express
        return n == 15
    if p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925:  # Discover
        return n in (16, 19)
    if 3528 <= p4 <= 3589:  # JCB
        return n >= 16
    if p2 in (36, 38, 39) or 300 <= p3 <= 305:  # Diners Club
        return n >= 14
    if p2 == 62:  # UnionPay
        return n >= 16
    if p2 == 50 or 56 <= p2 <= 69:  # Maestro
        return n >= 13
    return False


def card_valid(number: str) -> bool:
    return card_brand_length_ok(number) and luhn_valid(number)


def _digit_count_between(low: int, high: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return low <= len(digits_of(text)) <= high

    return check


def ssn_valid(text: str) -> bool:
    """US SSN issuance rules: area not 000, 666 or 900-999; group not 00; serial not
    0000; and not one of the numbers published in advertising (078-05-1120, 219-09-9999)."""
    d = "".join(str(x) for x in digits_of(text))
    if len(d) != 9:
        return False
    area, group, serial = int(d[:3]), int(d[3:5]), int(d[5:])
    if area == 0 or area == 666 or area >= 900 or group == 0 or serial == 0:
        return False
    return d not in {"078051120", "219099999"}


_NINO_BAD_PREFIXES = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def nino_valid(text: str) -> bool:
    """UK National Insurance number: the letter rules are in the pattern; this rejects
    the prefixes HMRC never allocates."""
    return text[:2].upper() not in _NINO_BAD_PREFIXES


def bsn_valid(text: str) -> bool:
    """Dutch BSN 11-test: 9*d1 + 8*d2 + ... + 2*d8 - d9 is a multiple of 11 (and not 0)."""
    d = digits_of(text)
    if len(d) != 9:
        return False
    total = sum(w * x for w, x in zip(range(9, 1, -1), d[:8], strict=True)) - d[8]
    return total % 11 == 0 and any(d)


def steuer_id_valid(text: str) -> bool:
    """German tax id (Steuer-IdNr.): 11 digits, no leading 0; in the first ten one digit
    occurs two or three times (never three in a row) and the others at most once; the
    last digit is the ISO 7064 MOD 11,10 check digit."""
    d = digits_of(text)
    if len(d) != 11 or d[0] == 0:
        return False
    body = d[:10]
    counts = sorted((body.count(x) for x in set(body)), reverse=True)
    if counts[0] not in (2, 3) or (len(counts) > 1 and counts[1] != 1):
        return False
    if any(body[i] == body[i + 1] == body[i + 2] for i in range(8)):
        return False
    product = 10
    for x in body:
        s = (x + product) % 10 or 10
        product = (s * 2) % 11
    check = 11 - product
    return (0 if check == 10 else check) == d[10]


def _rule(
    detail: str, pattern: str, validate: Callable[[str], bool] | None = None, group: int = 0
) -> RegexRule:
    return RegexRule(Category.PII, detail, re.compile(pattern, re.IGNORECASE), validate, group)


# Patterns never match or look across "\n" (the stream's line contract): [ ] not \s.
PII_RULES: tuple[RegexRule, ...] = (
    _rule(
        "email",
        r"(?<![\w.%+-])[\w.%+-]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,98}[a-z0-9])?\.[a-z]{2,24}"
        r"(?![a-z0-9-])",
    ),
    _rule(
        "card",
        r"(?<![\d-])(?:\d{4}( ?)\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?"
        r"|\d{4}-\d{4}-\d{4}-\d{4}(?:-\d{3})?"
        r"|\d{4}[ -]\d{6}[ -]\d{4,5}|\d{13,19})(?![\d-])",
        card_valid,
    ),
    _rule(
        "phone",
        r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w])",
        _digit_count_between(8, 15),
    ),
    _rule(
        "phone",
        r"(?<![\w+])(?:1[ .-]?)?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-])",
    ),
    _rule(
        "phone",
        r"(?<![\w+.-])0\d{1,4}(?:[ -]\d{2,8}){1,3}(?![\w-])",
        _digit_count_between(10, 11),
    ),
    _rule("us_ssn", r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])", ssn_valid),
    _rule(
        "uk_nino",
        r"(?<![a-z0-9])[a-ceghj-pr-tw-z][a-ceghj-npr-tw-z] ?\d{2} ?\d{2} ?\d{2} ?[a-d](?![a-z0-9])",
        nino_valid,
    ),
    _rule(
        "nl_bsn",
        r"\b(?:bsn|burgerservicenummer|sofi-?nummer)\b[^\d\n]{0,12}"
        r"(?<!\d)(\d{9}|\d{4}\.\d{2}\.\d{3}|\d{3} \d{3} \d{3})(?![\d-])",
        bsn_valid,
        group=1,
    ),
    _rule(
        "de_steuer_id",
        r"(?<![\d-])(?:[1-9]\d{10}|[1-9]\d \d{3} \d{3} \d{3})(?![\d-])",
        steuer_id_valid,
    ),
)


class PiiClassifier(RegexClassifier):
    """The PII rules above as a classifier (category ``pii``, detail = the kind)."""

    def __init__(self) -> None:
        super().__init__(PII_RULES)
