"""The printable form of a credential: a CWT (RFC 8392) signed as COSE_Sign1 (RFC 9052), compressed
with zlib and encoded in Base45 (RFC 9285) behind the prefix ``BH1:``, small enough for a QR code
of version 15 or less — the pattern of the EU digital COVID certificate.

Base45 uses only the QR code's alphanumeric characters, so the code stays in its densest mode.
COSE_Sign1 is composed here from cbor2 and cryptography (Sig_structure, raw r‖s ES256 signature): the
structure is four CBOR items, and no maintained COSE library is typed and small enough to be worth it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import Any, TypeVar

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

T = TypeVar("T")
PREFIX = "BH1:"
COSE_SIGN1_TAG = 18
ALG_ES256 = -7
HEADER_ALG, HEADER_KID = 1, 4
# CWT claims (RFC 8392 §3.1) and this profile's private ones (negative keys, short on paper).
CWT_ISS, CWT_SUB, CWT_EXP, CWT_IAT, CWT_CTI = 1, 2, 4, 6, 7
CLAIM_TYPE, CLAIM_CLAIMS, CLAIM_STATUS = -65537, -65538, -65539
MAX_TEXT = 4296  # a version-40 QR code's alphanumeric capacity: anything longer was never printed by us
MAX_CWT = 8192
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUES = {c: i for i, c in enumerate(ALPHABET)}

REASONS = {
    "bad_prefix": "This is not a Bauhinia e-Proof code.",
    "bad_base45": "The code is damaged: it is not valid Base45.",
    "bad_compression": "The code is damaged: its content cannot be decompressed.",
    "bad_cose": "The code is damaged: its signed content cannot be read.",
    "unsupported_algorithm": "The code is signed with an algorithm that is not accepted.",
    "unknown_key": "The code was not signed by a known issuer key.",
    "signature_invalid": "The issuer's signature does not match the code.",
    "expired": "The credential has expired.",
}


class PrintedCredentialError(ValueError):
    """A printed credential refused; ``reason`` is one of REASONS."""

    def __init__(self, reason: str) -> None:
        assert reason in REASONS
        super().__init__(REASONS[reason])
        self.reason = reason


# --- RFC 9285 Base45 ------------------------------------------------------------------------------


def base45_encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, n = divmod(n, 45 * 45)
        d, c = divmod(n, 45)
        out.append(ALPHABET[c] + ALPHABET[d] + ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out.append(ALPHABET[c] + ALPHABET[d])
    return "".join(out)


def base45_decode(text: str) -> bytes:
    if len(text) % 3 == 1:
        raise ValueError("a Base45 text's length is never 1 more than a multiple of 3")
    try:
        values = [_VALUES[c] for c in text]
    except KeyError:
        raise ValueError("a character outside the Base45 alphabet") from None
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i : i + 3]
        n = sum(v * 45**k for k, v in enumerate(chunk))
        if len(chunk) == 3:
            if n > 0xFFFF:
                raise ValueError("a Base45 triple above 65535")
            out += n.to_bytes(2, "big")
        else:
            if n > 0xFF:
                raise ValueError("a Base45 pair above 255")
            out.append(n)
    return bytes(out)


# --- the printed credential -------------------------------------------------------------------------


@dataclass(frozen=True)
class PrintedCredential:
    credential_id: str
    issuer: str
    type: str
    claims: dict[str, Any]
    issued_at: int
    expires_at: int
    # The status list's id (its URI is the issuer's status base + id, from the e-Proof discovery
    # document: a full URI would cost a QR code a version) and this credential's index in it.
    status: tuple[str, int] | None
    kid: bytes


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """A short key id: the first 8 bytes of SHA-256 of the uncompressed point."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return hashlib.sha256(point).digest()[:8]


def encode_printed(credential: PrintedCredential, key: ec.EllipticCurvePrivateKey) -> str:
    """The QR code's text: ``BH1:`` + Base45(zlib(COSE_Sign1(CWT)))."""
    payload: dict[int, Any] = {
        CWT_ISS: credential.issuer,
        CWT_IAT: credential.issued_at,
        CWT_EXP: credential.expires_at,
        CWT_CTI: uuid.UUID(credential.credential_id).bytes,  # 16 bytes, not 36 characters
        CLAIM_TYPE: credential.type,
        CLAIM_CLAIMS: credential.claims,
    }
    if credential.status is not None:
        payload[CLAIM_STATUS] = list(credential.status)
    protected = cbor2.dumps({HEADER_ALG: ALG_ES256, HEADER_KID: credential.kid})
    body = cbor2.dumps(payload)
    der = key.sign(_to_be_signed(protected, body), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    sign1 = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, body, signature]))
    return PREFIX + base45_encode(zlib.compress(sign1, 9))


def decode_printed(
    text: str, issuer_keys: dict[bytes, ec.EllipticCurvePublicKey], *, now: int | None = None, check_expiry: bool = True
) -> PrintedCredential:
    """The credential, if an issuer key in ``issuer_keys`` (by key id) signed it and it has not expired."""
    protected, body, signature = _sign1(text)
    try:
        header = cbor2.loads(protected)
        claims = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError):
        raise PrintedCredentialError("bad_cose") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise PrintedCredentialError("bad_cose")
    if header.get(HEADER_ALG) != ALG_ES256:
        raise PrintedCredentialError("unsupported_algorithm")
    kid = header.get(HEADER_KID)
    key = issuer_keys.get(kid) if isinstance(kid, bytes) else None
    if key is None or not isinstance(kid, bytes):
        raise PrintedCredentialError("unknown_key")
    if len(signature) != 64:
        raise PrintedCredentialError("signature_invalid")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, _to_be_signed(protected, body), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PrintedCredentialError("signature_invalid") from None
    credential = _credential(claims, kid)
    if check_expiry and credential.expires_at <= (int(time.time()) if now is None else now):
        raise PrintedCredentialError("expired")
    return credential


def _sign1(text: str) -> tuple[bytes, bytes, bytes]:
    if not isinstance(text, str) or not text.startswith(PREFIX) or len(text) > MAX_TEXT:
        raise PrintedCredentialError("bad_prefix")
    try:
        compressed = base45_decode(text[len(PREFIX) :])
    except ValueError:
        raise PrintedCredentialError("bad_base45") from None
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, MAX_CWT)
    except zlib.error:
        raise PrintedCredentialError("bad_compression") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise PrintedCredentialError("bad_compression")
    try:
        tagged = cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError):
        raise PrintedCredentialError("bad_cose") from None
    parts = tagged.value if isinstance(tagged, cbor2.CBORTag) and tagged.tag == COSE_SIGN1_TAG else None
    if not isinstance(parts, list | tuple) or len(parts) != 4:  # cbor2 may give arrays as tuples
        raise PrintedCredentialError("bad_cose")
    protected, _unprotected, body, signature = parts
    if not all(isinstance(p, bytes) for p in (protected, body, signature)):
        raise PrintedCredentialError("bad_cose")
    return protected, body, signature


def _to_be_signed(protected: bytes, body: bytes) -> bytes:
    return bytes(cbor2.dumps(["Signature1", protected, b"", body]))


def _credential(claims: dict[Any, Any], kid: bytes) -> PrintedCredential:
    issuer, kind = _typed(claims, CWT_ISS, str), _typed(claims, CLAIM_TYPE, str)
    content, cti = _typed(claims, CLAIM_CLAIMS, dict), _typed(claims, CWT_CTI, bytes)
    issued, expires = _typed(claims, CWT_IAT, int), _typed(claims, CWT_EXP, int)
    status = claims.get(CLAIM_STATUS)
    if status is not None and not (
        isinstance(status, list | tuple)
        and len(status) == 2
        and isinstance(status[0], str)
        and isinstance(status[1], int)
    ):
        raise PrintedCredentialError("bad_cose")
    if not all(isinstance(name, str) for name in content):
        raise PrintedCredentialError("bad_cose")
    if len(cti) != 16:
        raise PrintedCredentialError("bad_cose")
    credential_id = str(uuid.UUID(bytes=cti))
    reference = (status[0], status[1]) if status is not None else None
    return PrintedCredential(credential_id, issuer, kind, content, issued, expires, reference, kid)


def _typed(claims: dict[Any, Any], label: int, kind: type[T]) -> T:
    value = claims.get(label)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PrintedCredentialError("bad_cose")
    return value
