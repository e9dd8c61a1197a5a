"""Per-purpose keys derived from the master secret, and the small compositions built on them.

Every key comes from HKDF-SHA256 (RFC 5869) with the purpose as ``info``, so a
leaked HMAC key for identity numbers says nothing about the encryption key for
TOTP secrets. Algorithms come from ``cryptography``; nothing here is hand-made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12


class Purpose(StrEnum):
    IDENTITY_NUMBER_HMAC = "bauhinia/identity-number-hmac/v1"
    SECRET_ENCRYPTION = "bauhinia/secret-encryption/v1"  # noqa: S105 (a purpose label, not a secret)
    SESSION_ID_HMAC = "bauhinia/session-id-hmac/v1"
    PAIRWISE_SUBJECT = "bauhinia/oidc-pairwise-subject/v1"
    DPOP_NONCE = "bauhinia/oidc-dpop-nonce/v1"
    EXCHANGE_SUBJECT = "bauhinia/exchange-provider-subject/v1"
    EPROOF_LOG_KEY = "bauhinia/eproof-log-key/v1"  # the transparency log's Ed25519 signing key


def pairwise_identifier(key: bytes, sector: str, principal: str) -> str:
    """An identifier for ``principal`` that is stable within a sector and unrelated across sectors
    (OIDC Core §8.1's pairwise subjects; the gateway's per-provider subjects)."""
    digest = hmac.new(key, f"{sector}\x00{principal}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class DecryptionError(Exception):
    """A sealed value was altered, or sealed under another key or context."""


@dataclass(frozen=True)
class KeyRing:
    """Keys derived once at start-up from the master secret."""

    master: bytes = field(repr=False)
    _derived: dict[Purpose, bytes] = field(default_factory=dict, repr=False, compare=False)

    def derive(self, purpose: Purpose) -> bytes:
        if purpose not in self._derived:
            hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode())
            self._derived[purpose] = hkdf.derive(self.master)
        return self._derived[purpose]

    def keyed_hash(self, purpose: Purpose, value: str) -> str:
        """HMAC-SHA256 of ``value`` under the purpose key, as hex (lookup without storing the value)."""
        return hmac.new(self.derive(purpose), value.encode(), hashlib.sha256).hexdigest()

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """AES-256-GCM with a random nonce; ``context`` is bound as associated data."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.derive(Purpose.SECRET_ENCRYPTION)).encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return AESGCM(self.derive(Purpose.SECRET_ENCRYPTION)).decrypt(nonce, ciphertext, context.encode())
        except InvalidTag as exc:
            raise DecryptionError("sealed value failed authentication") from exc
