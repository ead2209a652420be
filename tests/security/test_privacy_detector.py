"""The PII detector with plain inputs: each kind, its check digits, and ordinary numbers
that must not count."""

from __future__ import annotations

import pytest

from router.privacy import PiiDetector, iban_ok, luhn_ok

DETECTOR = PiiDetector({"employee_id": r"\bEMP-\d{6}\b"})


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("Write to jane.doe+news@example.co.uk today", ("email",)),
        ("Call +44 20 7946 0958 after six", ("phone",)),
        ("call (555) 123-4567 or 555.123.4567", ("phone",)),
        ("ring 020 7946 0958, or 06 12 34 56 78 in France", ("phone",)),
        ("card 4111 1111 1111 1111 exp 12/27", ("credit_card",)),
        ("pay with 5555555555554444", ("credit_card",)),
        ("Amex 3782-822463-10005", ("credit_card",)),
        ("IBAN DE89 3704 0044 0532 0130 00, thanks", ("iban",)),
        ("to GB82WEST12345698765432 by Friday", ("iban",)),
        ("fr7630006000011234567890189 in lower case", ("iban",)),
        ("EMP-123456 asked jane@example.org", ("email", "employee_id")),
    ],
)
def test_each_kind_is_found(text: str, kinds: tuple[str, ...]) -> None:
    assert DETECTOR.kinds([text]) == kinds


@pytest.mark.parametrize(
    "text",
    [
        "In 1999 it cost $1,299.99; in 2024 about 1 299,99 EUR.",
        "What is 12 + 30? And 123456 * 789?",
        "The meeting was on 2024-01-15 at 10:30-11:45.",
        "pi is 3.14159265358979, e is 2.718281828459045",
        "order number 5551234567 and 1234567890123",  # bare digits: not a phone
        "card 4111 1111 1111 1112",  # fails Luhn
        "IBAN DE89 3704 0044 0532 0130 01",  # wrong check digits
        "GB82WEST12345698765431",
        "ISBN 978-3-16-148410-0, version 1.2.3.4, room 555 1234",
        "the user @ the host, a@b",
        "population 8,045,311,447 (2023)",
    ],
)
def test_ordinary_text_and_numbers_are_not_pii(text: str) -> None:
    assert DETECTOR.kinds([text]) == ()


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("4111111111111111", True),
        ("79927398713", True),
        ("4012888888881881", True),
        ("4111111111111112", False),
        ("79927398710", False),
    ],
)
def test_luhn(number: str, ok: bool) -> None:
    assert luhn_ok(number) is ok


@pytest.mark.parametrize(
    ("iban", "ok"),
    [
        ("DE89 3704 0044 0532 0130 00", True),
        ("GB82 WEST 1234 5698 7654 32", True),
        ("NL91ABNA0417164300", True),
        ("CH9300762011623852957", True),
        ("DE88 3704 0044 0532 0130 00", False),
        ("NL91ABNA0417164301", False),
        ("GB82", False),
    ],
)
def test_iban_check_digits(iban: str, ok: bool) -> None:
    assert iban_ok(iban) is ok


def test_masking_replaces_values_by_their_kind() -> None:
    text = "Mail jane@example.org, IBAN DE89 3704 0044 0532 0130 00, card 4111-1111-1111-1111."
    assert DETECTOR.mask(text) == "Mail [EMAIL], IBAN [IBAN], card [CREDIT_CARD]."
    assert DETECTOR.mask("nothing here, 1999") == "nothing here, 1999"


def test_a_pattern_that_does_not_compile_is_named() -> None:
    with pytest.raises(ValueError, match=r"router.pii.patterns.bad"):
        PiiDetector({"bad": "(unclosed"})
