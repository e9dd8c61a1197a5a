"""The JOSE the exchange protocol uses, composed from joserfc (no cryptography of our own): compact ES256 JWS
with a required ``typ`` and ``kid``, compact ECDH-ES + A256GCM JWE, and the hash tying requests, responses
and receipts together (docs/exchange-protocol.md)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet

ES256 = "ES256"
JWE_ALG, JWE_ENC = "ECDH-ES", "A256GCM"
MAX_COMPACT = 256 * 1024  # far above any protocol object; bounds the work an attacker can ask for

ARTEFACT_TYP = "consent+jwt"
REQUEST_TYP = "exchange-request+jwt"
RESPONSE_TYP = "exchange-response+jwt"
RECEIPT_TYP = "exchange-receipt+jwt"
EVENT_TYP = "exchange-event+jwt"
DPOP_TYP = "dpop+jwt"


class Invalid(Exception):
    """A JOSE object or claim failed a check; the message is the reason, safe to show and log."""


class UnknownKey(Invalid):
    """No key with this kid: the signer may have rotated its keys, so the caller refetches once."""


def now() -> int:
    return int(time.time())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sha256_b64url(text: str) -> str:
    return b64url(hashlib.sha256(text.encode("ascii")).digest())


def request_hash(compact: str) -> str:
    """base64url(SHA-256(ASCII of a compact JWS)): how responses and receipts name a request or response."""
    return sha256_b64url(compact)


def _b64decode(segment: str) -> bytes:
    # validate=True: a segment with characters outside the alphabet is refused, not silently skipped
    return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)


def _segments(token: object, count: int, what: str) -> list[str]:
    if not isinstance(token, str) or not token or len(token) > MAX_COMPACT or not token.isascii():
        raise Invalid(f"not a compact {what}")
    parts = token.split(".")
    if len(parts) != count:
        raise Invalid(f"not a compact {what}")
    return parts


def _header(segment: str, what: str) -> dict[str, Any]:
    try:
        header = json.loads(_b64decode(segment))
    except (ValueError, binascii.Error) as exc:
        raise Invalid(f"the {what} header is unreadable") from exc
    if not isinstance(header, dict):
        raise Invalid(f"the {what} header is not a JSON object")
    return header


def signed_header(token: object, typ: str) -> dict[str, Any]:
    """The header of a compact JWS, refused unless ES256 with this typ and a kid (no alg confusion, no none)."""
    header = _header(_segments(token, 3, "JWS")[0], "JWS")
    if header.get("alg") != ES256:
        raise Invalid("the signature's alg must be ES256")
    if header.get("typ") != typ:
        raise Invalid(f"the typ must be {typ}")
    if "crit" in header or "b64" in header:
        raise Invalid("critical or unencoded-payload headers are not accepted")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise Invalid("the signature names no kid")
    return header


def verify(token: object, keys: KeySet, typ: str) -> dict[str, Any]:
    """The claims of a compact ES256 JWS of this typ, signed by the key in ``keys`` its kid names."""
    header = signed_header(token, typ)
    assert isinstance(token, str)
    matching = [k for k in keys.keys if k.kid == header["kid"]]
    if not matching:
        raise UnknownKey("the signature's kid is not among the signer's keys")
    try:
        payload = jws.deserialize_compact(token, matching[0], algorithms=[ES256]).payload
        claims = json.loads(payload)
    except (JoseError, ValueError) as exc:
        raise Invalid("the signature does not verify") from exc
    if not isinstance(claims, dict):
        raise Invalid("the signed payload is not a JSON object")
    return claims


def sign(claims: dict[str, Any], key: ECKey, typ: str) -> str:
    if not key.kid:
        raise ValueError("a signing key needs a kid")
    return sign_with_header({"alg": ES256, "typ": typ, "kid": key.kid}, claims, key)


def sign_with_header(header: dict[str, Any], claims: dict[str, Any], key: ECKey) -> str:
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(header, payload, key, algorithms=[ES256])


def encrypt(content: dict[str, Any], recipient: ECKey) -> str:
    """Compact JWE of a JSON object to the recipient's P-256 key: ECDH-ES (direct agreement), A256GCM."""
    header = {"alg": JWE_ALG, "enc": JWE_ENC, "kid": recipient.kid}
    plaintext = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    return jwe.encrypt_compact(header, plaintext, recipient, algorithms=[JWE_ALG, JWE_ENC])


def decrypt(token: object, key: ECKey) -> dict[str, Any]:
    """The JSON object in a compact JWE to our key; only ECDH-ES with A256GCM, never compressed."""
    header = _header(_segments(token, 5, "JWE")[0], "JWE")
    if header.get("alg") != JWE_ALG or header.get("enc") != JWE_ENC:
        raise Invalid("the encryption must be ECDH-ES with A256GCM")
    if "zip" in header or "crit" in header:
        raise Invalid("compressed or critical-header JWE is not accepted")
    if header.get("kid") is not None and header.get("kid") != key.kid:
        raise Invalid("the data is encrypted to another key")
    assert isinstance(token, str)
    try:
        content = json.loads(jwe.decrypt_compact(token, key, algorithms=[JWE_ALG, JWE_ENC]).plaintext or b"")
    except (JoseError, ValueError) as exc:
        raise Invalid("the data cannot be decrypted with this system's key") from exc
    if not isinstance(content, dict):
        raise Invalid("the decrypted data is not a JSON object")
    return content


def _usable(jwk: object, use: str) -> bool:
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        return False
    alg = {"sig": ES256, "enc": JWE_ALG}[use]
    return isinstance(jwk.get("kid"), str) and jwk.get("use", use) == use and jwk.get("alg", alg) == alg


def public_keys(jwks: object, use: str) -> KeySet:
    """The EC P-256 public keys for ``use`` ("sig" or "enc") in a JWK set; others are skipped (RFC 7517 §5)."""
    listed = jwks.get("keys") if isinstance(jwks, dict) else None
    keys: list[Key] = []
    for jwk in listed if isinstance(listed, list) else []:
        if not _usable(jwk, use):
            continue
        try:  # never keep private material, even if a set carries it by mistake
            keys.append(ECKey.import_key({k: v for k, v in jwk.items() if k not in ("d", "p", "q")}))
        except (JoseError, ValueError, TypeError):
            continue
    return KeySet(keys)


def public_encryption_key(jwk: object) -> ECKey:
    """A consumer's encryption key as forwarded by the gateway: public P-256, ``use: enc``, with a kid."""
    if not isinstance(jwk, dict) or not _usable(jwk, "enc") or jwk.get("use") != "enc" or "d" in jwk:
        raise Invalid("the consumer_key must be a public P-256 key with use enc and a kid")
    try:
        return ECKey.import_key(jwk)
    except (JoseError, ValueError, TypeError) as exc:
        raise Invalid("the consumer_key is not a valid P-256 key") from exc


def private_key(jwk: dict[str, Any], what: str) -> ECKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or "d" not in jwk:
        raise ValueError(f"the {what} must be a private EC P-256 JWK")
    key = ECKey.import_key(jwk)
    if not key.kid:
        raise ValueError(f"the {what} needs a kid")
    return key
