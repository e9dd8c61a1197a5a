"""Typed reads of claims from signed or decrypted JSON: a missing or mistyped claim is a refusal, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bauhinia.sdk.jose import Invalid

MAX_TEXT = 2000


def text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise Invalid(f"the {name} claim is missing or not a string")
    return value


def integer(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"the {name} claim is missing or not an integer")
    return value


def strings(claims: dict[str, Any], name: str) -> list[str]:
    """A list of distinct non-empty strings."""
    value = claims.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(f"the {name} claim is not a list of strings")
    if len(set(value)) != len(value):
        raise Invalid(f"the {name} claim repeats an entry")
    return list(value)


def expect(claims: dict[str, Any], name: str, value: str) -> None:
    if claims.get(name) != value:
        raise Invalid(f"the {name} claim is not {value}")


def instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
