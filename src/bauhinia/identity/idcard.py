"""Hong Kong Identity Card numbers: format, check digit, masking.

A number is one or two letters, six digits and a check digit (0–9 or A), often
written with the check digit in brackets: ``A123456(3)``. The check digit makes
the weighted sum (weights 9 down to 2, a space counting 36 where there is only
one letter, A–Z counting 10–35) divisible by 11.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bauhinia.core.i18n import fold_fullwidth

_PATTERN = re.compile(r"^([A-Z]{1,2})([0-9]{6})([0-9A])$")
_SPACE_VALUE = 36
MAX_INPUT_LENGTH = 16


class InvalidIdNumber(ValueError):
    """The text is not a Hong Kong Identity Card number; ``reason`` says why, as a message id."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IdNumber:
    prefix: str
    digits: str
    check: str

    @property
    def canonical(self) -> str:
        return f"{self.prefix}{self.digits}{self.check}"

    @property
    def masked(self) -> str:
        """Enough to recognise one's own card, not enough to use it: ``A123***(*)``."""
        return f"{self.prefix}{self.digits[:3]}***(*)"

    def __str__(self) -> str:
        return f"{self.prefix}{self.digits}({self.check})"


def _letter_value(letter: str) -> int:
    return ord(letter) - ord("A") + 10


def check_digit(prefix: str, digits: str) -> str:
    values = [_SPACE_VALUE] if len(prefix) == 1 else []
    values += [_letter_value(letter) for letter in prefix]
    values += [int(d) for d in digits]
    total = sum(value * weight for value, weight in zip(values, range(9, 1, -1), strict=True))
    remainder = (11 - total % 11) % 11
    return "A" if remainder == 10 else str(remainder)


def parse(text: str) -> IdNumber:
    """Parse ``A123456(3)``, ``a1234563`` or ``A 123456 (3)``; raise InvalidIdNumber with the reason."""
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidIdNumber("The identity card number is too long.")
    compact = re.sub(r"[\s()]", "", fold_fullwidth(text))
    # Upper-case only ASCII: "ſ" (long s) and "ı" (dotless i) would otherwise become S and I.
    match = _PATTERN.match(compact.upper()) if compact.isascii() else None
    if match is None:
        raise InvalidIdNumber("Enter the identity card number as printed on the card, like A123456(3).")
    prefix, digits, check = match.groups()
    if check_digit(prefix, digits) != check:
        raise InvalidIdNumber("The check digit in brackets does not match the number. Check the number on the card.")
    return IdNumber(prefix, digits, check)
