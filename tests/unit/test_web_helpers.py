"""Small pieces of the web layer: redirect targets, languages, log redaction, keys, the audit hash."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bauhinia.core import audit, i18n
from bauhinia.core.keys import DecryptionError, KeyRing, Purpose
from bauhinia.core.observability import _redact
from bauhinia.core.web import safe_next


@pytest.mark.parametrize("target", ["/account", "/account?notice=removed", "/staff/residents/abc", "/"])
def test_same_site_paths_are_followed(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "account",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\t/evil.example",  # browsers drop tabs and newlines: this would become //evil.example
        "/\n/evil.example",
        " /account",
    ],
)
def test_other_targets_fall_back_to_the_default(target: str | None) -> None:
    assert safe_next(target, "/fallback") == "/fallback"


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("en", "en"),
        ("en-GB", "en"),
        ("zh-HK", "zh-Hant"),
        ("zh-TW", "zh-Hant"),
        ("zh-CN", "zh-Hans"),
        ("zh-Hans-HK", "zh-Hans"),
        ("zh_Hant", "zh-Hant"),
        ("zh", "zh-Hant"),
        ("fr", None),
        ("", None),
        (None, None),
    ],
)
def test_language_tags_are_normalised(tag: str | None, language: str | None) -> None:
    assert i18n.normalise(tag) == language


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("zh-HK,zh;q=0.9,en;q=0.8", "zh-Hant"),
        ("fr-FR, en;q=0.5, zh-CN;q=0.7", "zh-Hans"),
        ("fr, de", None),
        ("en;q=abc, zh-CN;q=0.1", "zh-Hans"),
        ("zh-CN;q=0", None),
        ("," * 10_000, None),
        ("", None),
    ],
)
def test_accept_language(header: str, language: str | None) -> None:
    assert i18n.from_accept_language(header) == language


def test_log_redaction_hides_secret_fields_whatever_their_case() -> None:
    event = {"event": "x", "password": "hunter2", "Token": "t", "CODE": "123456", "path": "/signin"}
    redacted = _redact(None, "info", event)
    assert redacted["password"] == redacted["Token"] == redacted["CODE"] == "[redacted]"
    assert redacted["path"] == "/signin"


def test_keys_are_separated_by_purpose_and_sealed_values_bound_to_their_context() -> None:
    ring = KeyRing(b"m" * 32)
    assert ring.derive(Purpose.SESSION_ID_HMAC) != ring.derive(Purpose.IDENTITY_NUMBER_HMAC)
    assert ring.keyed_hash(Purpose.SESSION_ID_HMAC, "x") != ring.keyed_hash(Purpose.IDENTITY_NUMBER_HMAC, "x")
    sealed = ring.seal(b"secret", "totp:1")
    assert ring.open(sealed, "totp:1") == b"secret"
    with pytest.raises(DecryptionError):
        ring.open(sealed, "totp:2")
    with pytest.raises(DecryptionError):
        KeyRing(b"n" * 32).open(sealed, "totp:1")
    with pytest.raises(DecryptionError):
        ring.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), "totp:1")


def test_audit_hash_covers_every_field() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    fields = (7, at, "sign_in.failed", "unknown", "unknown", {"client": "203.0.113.7"}, "a" * 64)
    digest = audit.event_hash(*fields)
    assert len(digest) == 64
    for index, changed in enumerate(
        [8, at.replace(microsecond=0), "sign_in.succeeded", "resident:1", "resident:1", {"client": "x"}, "b" * 64]
    ):
        altered = list(fields)
        altered[index] = changed
        assert audit.event_hash(*altered) != digest  # type: ignore[arg-type]
