"""Passwords: argon2id with OWASP's parameters, and a policy that refuses guessable ones.

The policy follows NIST SP 800-63B and OWASP ASVS 2.1: at least 12 characters,
at most 128, any characters, and no password that a breach-derived dictionary
and pattern model (zxcvbn) can guess: common passwords, keyboard walks,
repeats, dates, l33t spellings, and the person's own name, email or ID number.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from bauhinia.core.i18n import N_

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_SCORE = 3  # zxcvbn: "safely unguessable" (about 10^8 guesses) and above
SCORED_PREFIX = 100  # zxcvbn's cost grows with length; the prefix decides the score

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)
_DUMMY_HASH = HASHER.hash("a password nobody has, for timing parity")


def normalise(password: str) -> str:
    """NFKC, as SP 800-63B advises, so the same password typed on two keyboards matches."""
    return unicodedata.normalize("NFKC", password)


def policy_problem(password: str, personal: Sequence[str] = ()) -> str | None:
    """The reason the password is refused (a message id), or None when it is acceptable."""
    password = normalise(password)
    if len(password) < MIN_LENGTH:
        return N_("Use at least 12 characters. A few unrelated words make a strong, memorable password.")
    if len(password) > MAX_LENGTH:
        return N_("Use at most 128 characters.")
    inputs = []
    for value in personal:
        lowered = value.lower()
        words = lowered.replace("@", " ").replace(".", " ").split()
        inputs += [word for word in words if len(word) >= 3] + ["".join(words), lowered]
    scored = password[:SCORED_PREFIX]
    result = zxcvbn(scored, user_inputs=inputs)
    if result["score"] < MIN_SCORE:
        if _uses_personal_details(result):
            return N_("Do not use your name, email address or identity card number in your password.")
        return N_("This password is too common or too easy to guess. Try a few unrelated words.")
    # Spaces and punctuation do not hide a name: "Chan Tai Man 1990" is scored as "ChanTaiMan1990" too.
    compact = "".join(character for character in scored if character.isalnum())
    if compact != scored:
        result = zxcvbn(compact, user_inputs=inputs)
        if result["score"] < MIN_SCORE and _uses_personal_details(result):
            return N_("Do not use your name, email address or identity card number in your password.")
    return None


def _uses_personal_details(result: dict[str, Any]) -> bool:
    return any(match.get("dictionary_name") == "user_inputs" for match in result["sequence"])


def hash_password(password: str) -> str:
    return HASHER.hash(normalise(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not there is a hash, so timing does not reveal which accounts exist."""
    try:
        return HASHER.verify(stored_hash or _DUMMY_HASH, normalise(password)) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return HASHER.check_needs_rehash(stored_hash)
