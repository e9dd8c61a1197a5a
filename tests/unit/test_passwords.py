"""The password policy (NIST SP 800-63B, zxcvbn) and argon2id hashing."""

from __future__ import annotations

import pytest

from bauhinia.identity import passwords

TOO_SHORT = "Use at least 12 characters. A few unrelated words make a strong, memorable password."
TOO_LONG = "Use at most 128 characters."
TOO_COMMON = "This password is too common or too easy to guess. Try a few unrelated words."
PERSONAL = "Do not use your name, email address or identity card number in your password."

# What the service passes for a resident called CHAN Tai Man.
CHAN_TAI_MAN = ["CHAN", "TAI MAN", "TAI MAN CHAN", "CHAN TAI MAN", "taiman.chan@example.hk", "A1234563"]


@pytest.mark.parametrize(
    "password",
    [
        "violet harbour tram lantern",
        "correct horse battery staple",
        "mandarin oranges are tasty",
        "紫荊花開在維港兩岸的春天",
    ],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    assert passwords.policy_problem(password, CHAN_TAI_MAN) is None


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", TOO_SHORT),
        ("short", TOO_SHORT),
        ("elevenchars", TOO_SHORT),
        ("x" * 129, TOO_LONG),
        ("violet harbour " * 700, TOO_LONG),
        ("password1234", TOO_COMMON),
        ("qwertyuiop123", TOO_COMMON),
        ("aaaaaaaaaaaaaaaa", TOO_COMMON),
        ("123456789012", TOO_COMMON),
        ("P@ssw0rd12345", TOO_COMMON),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, problem: str) -> None:
    assert passwords.policy_problem(password, CHAN_TAI_MAN) == problem


@pytest.mark.parametrize(
    "password",
    [
        "chantaiman!!!",
        "ChanTaiMan1990",
        "Chan Tai Man 1990",  # spaces do not hide the name
        "Chan-Tai-Man-1990",
        "Tai Man Chan!",
        "my name is chan tai man",
        "taiman.chan@example.hk",  # the email address itself
        "TaiMan.Chan@example.hk",
        "A1234563 chan",
    ],
)
def test_passwords_made_of_the_residents_own_details_are_refused(password: str) -> None:
    assert passwords.policy_problem(password, CHAN_TAI_MAN) == PERSONAL


def test_the_same_password_is_fine_for_someone_else() -> None:
    assert passwords.policy_problem("Chan Tai Man 1990", ["WONG", "KA MING", "km.wong@example.hk"]) is None


def test_length_counts_characters_after_normalisation() -> None:
    # NFKC turns the ligature "ﬃ" into "ffi": the normalised form is what is counted and hashed.
    assert passwords.normalise("ﬃ") == "ffi"
    assert passwords.policy_problem("ﬃ" * 4, []) is not None


def test_hash_and_verify() -> None:
    stored = passwords.hash_password("violet harbour tram lantern")
    assert stored.startswith("$argon2id$")
    assert "violet" not in stored
    assert passwords.verify_password(stored, "violet harbour tram lantern")
    assert not passwords.verify_password(stored, "violet harbour tram lanterns")
    assert not passwords.verify_password(None, "violet harbour tram lantern")
    assert not passwords.verify_password("not a hash", "violet harbour tram lantern")
    assert not passwords.needs_rehash(stored)


def test_verification_normalises_like_hashing() -> None:
    stored = passwords.hash_password("ﬃcult harbour tram")
    assert passwords.verify_password(stored, "fficult harbour tram")
