"""IETF Token Status List (draft-ietf-oauth-status-list): a credential's state as a few bits in a
compressed list its issuer signs, so the issuer learns nothing about which credential a verifier checks.

A list holds ``bits`` per credential (1, 2, 4 or 8), packed least significant bits first in each byte,
DEFLATE-compressed (zlib) and base64url-encoded as ``lst``. The Status List Token is a JWT
(``typ: statuslist+jwt``) whose ``sub`` is the list's URI, with ``iat``, ``exp`` and ``ttl``, signed
with the same allow-list as credentials (ES256, Ed25519/EdDSA). A credential points into it with
``status: {"status_list": {"idx": n, "uri": ...}}``.

This verifier requires ``exp`` although the draft only recommends it: an offline verifier must never
trust a cached list forever.
"""

from __future__ import annotations

import base64
import binascii
import time
import zlib
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import KeySet

from bauhinia.sdk.jose import MAX_COMPACT, b64url
from bauhinia.sdk.sdjwt import CredentialError, SigningKey, _is_time, sign_jwt, verify_jwt

STATUS_LIST_TYP = "statuslist+jwt"
VALID, INVALID, SUSPENDED = 0, 1, 2  # the draft's Status Types 0x00-0x02
STATUS_NAMES = {VALID: "valid", INVALID: "revoked", SUSPENDED: "suspended"}
MAX_LIST_BYTES = 16 * 1024 * 1024  # decompressed: ample for millions of credentials, bounds a zip bomb


class StatusListError(ValueError):
    """A status list or its token that cannot be used; the message says why."""


@dataclass
class StatusList:
    """``bits`` per credential in ``data``; index 0 in the least significant bits of byte 0."""

    bits: int
    data: bytearray

    @classmethod
    def empty(cls, size: int, bits: int = 2) -> StatusList:
        """A list of ``size`` credentials, all VALID."""
        if bits not in (1, 2, 4, 8):
            raise ValueError("a status list has 1, 2, 4 or 8 bits per credential")
        return cls(bits, bytearray((size * bits + 7) // 8))

    @property
    def size(self) -> int:
        return len(self.data) * 8 // self.bits

    def get(self, index: int) -> int:
        """The status at ``index``; ``StatusListError`` outside the list (no statement can be made)."""
        byte, shift = self._place(index)
        return self.data[byte] >> shift & ((1 << self.bits) - 1)

    def set(self, index: int, status: int) -> None:
        """Record ``status`` (0 VALID, 1 INVALID, 2 SUSPENDED, or another value that fits) at ``index``."""
        if not 0 <= status < 1 << self.bits:
            raise ValueError(f"status {status} does not fit in {self.bits} bits")
        byte, shift = self._place(index)
        mask = ((1 << self.bits) - 1) << shift
        self.data[byte] = (self.data[byte] & ~mask) | (status << shift)

    def _place(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.size:
            raise StatusListError(f"index {index} is outside the status list (size {self.size})")
        position = index * self.bits
        return position // 8, position % 8

    def encoded(self) -> dict[str, Any]:
        """The ``status_list`` claim: ``{"bits": …, "lst": base64url(zlib(data))}``."""
        return {"bits": self.bits, "lst": b64url(zlib.compress(bytes(self.data), 9))}

    @classmethod
    def decoded(cls, claim: object) -> StatusList:
        """The list in a ``status_list`` claim, decompressed at most to MAX_LIST_BYTES (no zip bombs)."""
        bits = claim.get("bits") if isinstance(claim, dict) else None
        if (
            not isinstance(claim, dict)
            or isinstance(bits, bool)
            or bits not in (1, 2, 4, 8)
            or not isinstance(claim.get("lst"), str)
        ):
            raise StatusListError("the status_list claim needs bits (1, 2, 4 or 8) and lst")
        lst = claim["lst"]
        inflater = zlib.decompressobj()
        try:
            compressed = base64.b64decode(lst + "=" * (-len(lst) % 4), altchars=b"-_", validate=True)
            data = inflater.decompress(compressed, MAX_LIST_BYTES)
        except (binascii.Error, ValueError, zlib.error) as exc:
            raise StatusListError("the status list is not base64url-encoded zlib data") from exc
        if inflater.unconsumed_tail:
            raise StatusListError("the status list is larger than any this verifier accepts")
        if not data or not inflater.eof:
            raise StatusListError("the status list is empty or cut short")
        return cls(int(claim["bits"]), bytearray(data))


def status_list_token(
    status_list: StatusList,
    uri: str,
    key: SigningKey,
    *,
    lifetime: int = 86_400,
    ttl: int = 300,
    now: int | None = None,
) -> str:
    """The signed Status List Token for ``uri`` (a fresh copy every ``ttl`` seconds, valid ``lifetime``)."""
    if not key.kid:
        raise ValueError("a status list's signing key needs a kid")
    issued = int(time.time()) if now is None else now
    claims = {"sub": uri, "iat": issued, "exp": issued + lifetime, "ttl": ttl, "status_list": status_list.encoded()}
    return sign_jwt({"typ": STATUS_LIST_TYP, "kid": key.kid}, claims, key)


_REFUSALS = {
    "unknown_issuer_key": "the status list is not signed by a key of its issuer",
    "signature_invalid": "the status list token does not verify: the signature does not match",
    "header_invalid": "the status list token does not verify: its alg, typ or kid is not accepted",
}


def verify_status_list_token(token: object, keys: KeySet, uri: str, *, now: int | None = None) -> StatusList:
    """The list, if ``keys`` signed it, it is the list at ``uri`` (its ``sub``) and it has not expired."""
    if not isinstance(token, str) or not token.isascii() or len(token) > MAX_COMPACT or token.count(".") != 2:
        raise StatusListError("the status list token does not verify: not a compact JWT")
    try:
        _, claims = verify_jwt(token, keys, (STATUS_LIST_TYP,))
    except CredentialError as exc:
        raise StatusListError(_REFUSALS.get(exc.reason, "the status list token does not verify")) from exc
    if claims.get("sub") != uri:
        raise StatusListError("the status list token is for another list")
    moment = int(time.time()) if now is None else now
    issued, expires, ttl = claims.get("iat"), claims.get("exp"), claims.get("ttl", 1)
    if not _is_time(issued) or not _is_time(ttl) or ttl <= 0:
        raise StatusListError("the status list token's iat or ttl is missing or not a number")
    if not _is_time(expires) or expires <= moment:
        raise StatusListError("the status list token has expired")
    return StatusList.decoded(claims.get("status_list"))


def status_reference(claims: dict[str, Any]) -> tuple[str, int]:
    """(uri, idx) of a credential's ``status.status_list`` claim."""
    reference = claims.get("status", {}).get("status_list") if isinstance(claims.get("status"), dict) else None
    if not isinstance(reference, dict) or not isinstance(reference.get("uri"), str):
        raise StatusListError("the credential names no status list")
    index = reference.get("idx")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise StatusListError("the credential's status list index is not a number")
    return reference["uri"], index
