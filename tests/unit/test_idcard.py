"""Hong Kong Identity Card numbers: check digits, formats, limits and masking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bauhinia.identity import idcard
from bauhinia.identity.idcard import IdNumber, InvalidIdNumber, check_digit, parse

WRONG_CHECK = "The check digit in brackets does not match the number. Check the number on the card."
MALFORMED = "Enter the identity card number as printed on the card, like A123456(3)."
TOO_LONG = "The identity card number is too long."


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("A123456(3)", "A1234563"),  # the number printed on the specimen card
        ("a1234563", "A1234563"),
        ("A 123456 (3)", "A1234563"),
        ("  A123456(3)\t", "A1234563"),
        ("G123456(A)", "G123456A"),  # a check digit of A (remainder 10)
        ("g123456(a)", "G123456A"),
        ("AB987654(3)", "AB9876543"),  # two-letter prefixes
        ("XA123456(8)", "XA1234568"),
        ("WX123456(9)", "WX1234569"),
        ("Z000000(1)", "Z0000001"),
    ],
)
def test_known_valid_numbers(text: str, canonical: str) -> None:
    number = parse(text)
    assert number.canonical == canonical


def test_check_digit_values() -> None:
    assert check_digit("A", "123456") == "3"
    assert check_digit("G", "123456") == "A"
    assert check_digit("AB", "987654") == "3"
    assert check_digit("XA", "123456") == "8"  # 33·9 + 10·8 + 77 = 454; 454 mod 11 = 3; 11 - 3 = 8
    assert check_digit("Z", "000000") == "1"
    assert check_digit("A", "000010") == "0"


@pytest.mark.parametrize("text", ["A123456(4)", "A123456(A)", "G123456(0)", "AB987654(2)", "A1234560"])
def test_wrong_check_digits_are_refused(text: str) -> None:
    with pytest.raises(InvalidIdNumber) as caught:
        parse(text)
    assert caught.value.reason == WRONG_CHECK


def test_full_width_forms_from_a_chinese_input_method_are_folded() -> None:
    assert str(parse("Ａ１２３４５６（３）")) == "A123456(3)"
    assert str(parse("ａ１２３４５６\u3000(３)")) == "A123456(3)"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "123456(3)",  # no letter
        "ABC123456(3)",  # three letters
        "A12345(3)",  # five digits
        "A1234567(3)",  # seven digits
        "A123456(B)",  # a check digit other than 0-9 or A
        "A123456",  # no check digit
        "A-123456(3)",
        "Ä123456(3)",
        "A123456(3)x",
        "<script>",
        "';DROP TABLE x",
        "\x00A123456(3)",
        "\u017f123456(2)",  # LATIN SMALL LETTER LONG S upper-cases to S: S123456(2) is valid
        "\u0131123456(5)",  # LATIN SMALL LETTER DOTLESS I upper-cases to I: I123456(5) is valid
    ],
)
def test_malformed_numbers_are_refused(text: str) -> None:
    with pytest.raises(InvalidIdNumber) as caught:
        parse(text)
    assert caught.value.reason == MALFORMED


@pytest.mark.parametrize("text", ["A123456(3)" + " " * 7, "A" * 17, "A123456(3)" * 1000])
def test_too_long_input_is_refused_before_any_parsing(text: str) -> None:
    with pytest.raises(InvalidIdNumber) as caught:
        parse(text)
    assert caught.value.reason == TOO_LONG
    assert len(text) > idcard.MAX_INPUT_LENGTH


def test_masked_form_hides_the_last_digits_and_the_check_digit() -> None:
    number = parse("AB987654(3)")
    assert number.masked == "AB987***(*)"
    assert "654" not in number.masked
    assert "3" not in number.masked
    assert str(number) == "AB987654(3)"


# --- properties ------------------------------------------------------------------------------------

letters = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
prefixes = st.one_of(letters, st.tuples(letters, letters).map("".join))
digit_strings = st.text(alphabet="0123456789", min_size=6, max_size=6)


@st.composite
def id_numbers(draw: st.DrawFn) -> IdNumber:
    prefix, digits = draw(prefixes), draw(digit_strings)
    return IdNumber(prefix, digits, check_digit(prefix, digits))


@given(id_numbers())
def test_printed_form_round_trips(number: IdNumber) -> None:
    assert parse(str(number)) == number
    assert parse(number.canonical) == number
    assert parse(str(number).lower()) == number


@given(id_numbers(), st.integers(min_value=0, max_value=5), st.integers(min_value=1, max_value=9))
def test_every_single_digit_change_is_rejected(number: IdNumber, position: int, delta: int) -> None:
    digits = list(number.digits)
    digits[position] = str((int(digits[position]) + delta) % 10)
    changed = IdNumber(number.prefix, "".join(digits), number.check)
    with pytest.raises(InvalidIdNumber) as caught:
        parse(str(changed))
    assert caught.value.reason == WRONG_CHECK


@given(id_numbers(), st.sampled_from("0123456789A"))
def test_every_other_check_digit_is_rejected(number: IdNumber, check: str) -> None:
    if check == number.check:
        return
    with pytest.raises(InvalidIdNumber):
        parse(f"{number.prefix}{number.digits}({check})")


@given(id_numbers(), st.integers(min_value=0, max_value=4))
def test_swapping_two_different_adjacent_digits_is_rejected(number: IdNumber, position: int) -> None:
    digits = list(number.digits)
    if digits[position] == digits[position + 1]:
        return
    digits[position], digits[position + 1] = digits[position + 1], digits[position]
    with pytest.raises(InvalidIdNumber):
        parse(f"{number.prefix}{''.join(digits)}({number.check})")


@given(id_numbers())
def test_masked_form_never_shows_the_last_three_digits(number: IdNumber) -> None:
    assert number.masked == f"{number.prefix}{number.digits[:3]}***(*)"
    assert number.masked.endswith("***(*)")


@given(st.text(max_size=40))
def test_parse_raises_only_invalid_id_number(text: str) -> None:
    try:
        number = parse(text)
    except InvalidIdNumber:
        return
    assert check_digit(number.prefix, number.digits) == number.check
    assert re.sub(r"[\s()]", "", text).upper() == number.canonical  # nothing but spacing and brackets dropped
