"""The printable form of a credential: a CWT (RFC 8392) signed as COSE_Sign1 (RFC 9052), compressed
with zlib and encoded in Base45 (RFC 9285) behind the prefix ``BH1:``, small enough for a QR code
of version 15 or less — the pattern of the EU digital COVID certificate.

Base45 uses only the QR code's alphanumeric characters, so the code stays in its densest mode.
COSE_Sign1 is composed here from cbor2 and cryptography (Sig_structure, raw r‖s ES256 signature): the
structure is four CBOR items, and pycose would bring ``ecdsa`` (pure Python, not constant-time) and
``certvalidator`` with it, untyped. Base45 is a page of RFC 9285, tested against its examples; the
``base45`` package is untyped and unchanged since 2022.

Decoding parses nothing signed before the signature is verified, except the protected header that
names the algorithm and the key; every refusal is a :class:`PrintedCredentialError` with a reason.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

T = TypeVar("T")
PREFIX: Final = "BH1:"
COSE_SIGN1_TAG: Final = 18
ALG_ES256: Final = -7
HEADER_ALG, HEADER_CRIT, HEADER_KID = 1, 2, 4
# CWT claims (RFC 8392 §3.1) and this profile's private ones (RFC 8392 §9.1: below -65536).
CWT_ISS, CWT_SUB, CWT_EXP, CWT_IAT, CWT_CTI = 1, 2, 4, 6, 7
CLAIM_TYPE, CLAIM_CLAIMS, CLAIM_STATUS = -65537, -65538, -65539
MAX_TEXT: Final = 4296  # a version-40 QR code's alphanumeric capacity: anything longer was never printed by us
MAX_CWT: Final = 8192  # the largest COSE_Sign1 we inflate: a zlib bomb stops here
MAX_QR_TEXT: Final = 600  # a version-15 QR code's alphanumeric capacity at error correction level M
MAX_CLAIM_DEPTH: Final = 8  # claims are small JSON-like trees; CBOR's shared references could make cycles
SIGNATURE_SIZE: Final = 64  # ES256 as COSE wants it: r‖s, 32 bytes each (RFC 9053 §2.1)
ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUES: Final = {c: i for i, c in enumerate(ALPHABET)}

Reason = Literal[
    "bad_prefix",
    "bad_base45",
    "bad_compression",
    "bad_cose",
    "unsupported_algorithm",
    "unknown_key",
    "signature_invalid",
    "issuer_mismatch",
    "expired",
]
REASONS: Final[dict[Reason, str]] = {
    "bad_prefix": "This is not a Bauhinia e-Proof code.",
    "bad_base45": "The code is damaged: it is not valid Base45.",
    "bad_compression": "The code is damaged: its content cannot be decompressed.",
    "bad_cose": "The code is damaged: its signed content cannot be read.",
    "unsupported_algorithm": "The code is signed with an algorithm that is not accepted.",
    "unknown_key": "The code was not signed by a known issuer key.",
    "signature_invalid": "The issuer's signature does not match the code.",
    "issuer_mismatch": "The code names an issuer other than the owner of the key that signed it.",
    "expired": "The credential has expired.",
}


class PrintedCredentialError(ValueError):
    """A printed credential refused; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(REASONS[reason])
        self.reason: Reason = reason


# --- RFC 9285 Base45 ------------------------------------------------------------------------------


def base45_encode(data: bytes) -> str:
    """RFC 9285 §4: each 2 bytes become 3 characters (least significant first), a last byte 2."""
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
    """RFC 9285 §4.2, refusing (ValueError) what §6 calls invalid: a foreign character, a length of
    3n+1, or a group whose value does not fit its bytes."""
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
    """What a printed code says, signed by its issuer."""

    credential_id: str  # a UUID, carried as the CWT's 16-byte cti
    issuer: str  # the issuing member's id (CWT iss)
    type: str  # the credential type's id
    claims: dict[str, Any]  # the type's printed claims, JSON-like values
    issued_at: int
    expires_at: int
    # The status list's id (its URI is in the e-Proof discovery document: a full URI would cost a QR
    # code a version) and this credential's index in it.
    status: tuple[str, int] | None
    kid: bytes


@dataclass(frozen=True)
class IssuerKey:
    """A public key pinned to its issuer: a code it verifies must name that issuer, so one
    department's key cannot speak for another."""

    issuer: str
    public_key: ec.EllipticCurvePublicKey


TrustedKeys = Mapping[bytes, ec.EllipticCurvePublicKey | IssuerKey]


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """A short key id: the first 8 bytes of SHA-256 of the uncompressed point."""
    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return hashlib.sha256(point).digest()[:8]


def fits_qr_version_15(text: str) -> bool:
    """Whether a printed code fits a version-15 QR code at error correction level M."""
    return len(text) <= MAX_QR_TEXT


def encode_printed(credential: PrintedCredential, key: ec.EllipticCurvePrivateKey) -> str:
    """The QR code's text: ``BH1:`` + Base45(zlib(COSE_Sign1(CWT))), signed ES256 with ``key``
    (a P-256 key; ``credential.kid`` should be its :func:`key_id`)."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("ES256 signs with a P-256 key")
    protected = cbor2.dumps({HEADER_ALG: ALG_ES256, HEADER_KID: credential.kid})
    body = cbor2.dumps(_cwt(credential))
    r, s = decode_dss_signature(key.sign(_to_be_signed(protected, body), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return PREFIX + base45_encode(zlib.compress(_sign1_bytes(protected, body, signature), 9))


def decode_printed(
    text: str, issuer_keys: TrustedKeys, *, now: int | None = None, check_expiry: bool = True
) -> PrintedCredential:
    """The credential, if a key in ``issuer_keys`` (by :func:`key_id`) signed it, the code names
    that key's issuer (when the key is an :class:`IssuerKey`) and it has not expired; otherwise
    :class:`PrintedCredentialError`, and never another exception."""
    protected, body, signature = _sign1(text)
    header = _cbor_map(protected)
    if header.get(HEADER_ALG) != ALG_ES256:
        raise PrintedCredentialError("unsupported_algorithm")
    if HEADER_CRIT in header:  # RFC 9052 §3.1: a critical header we do not understand is fatal
        raise PrintedCredentialError("bad_cose")
    kid, trusted = _trusted_key(header.get(HEADER_KID), issuer_keys)
    public_key = trusted.public_key if isinstance(trusted, IssuerKey) else trusted
    _verify_es256(public_key, _to_be_signed(protected, body), signature)
    credential = _credential(_cbor_map(body), kid)
    if isinstance(trusted, IssuerKey) and credential.issuer != trusted.issuer:
        raise PrintedCredentialError("issuer_mismatch")
    if check_expiry and credential.expires_at <= (int(time.time()) if now is None else now):
        raise PrintedCredentialError("expired")
    return credential


def _cwt(credential: PrintedCredential) -> dict[int, Any]:
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
    return payload


def _sign1_bytes(protected: bytes, body: bytes, signature: bytes) -> bytes:
    return bytes(cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, body, signature])))


def _to_be_signed(protected: bytes, body: bytes) -> bytes:
    """RFC 9052 §4.4's Sig_structure, with no external AAD."""
    return bytes(cbor2.dumps(["Signature1", protected, b"", body]))


def _sign1(text: str) -> tuple[bytes, bytes, bytes]:
    """(protected header, payload, signature), unverified, from the code's text."""
    if not isinstance(text, str) or not text.startswith(PREFIX) or len(text) > MAX_TEXT:
        raise PrintedCredentialError("bad_prefix")
    try:
        compressed = base45_decode(text[len(PREFIX) :])
    except ValueError:
        raise PrintedCredentialError("bad_base45") from None
    raw = _inflated(compressed)
    tagged = _cbor(raw)
    parts = tagged.value if isinstance(tagged, cbor2.CBORTag) and tagged.tag == COSE_SIGN1_TAG else None
    if not isinstance(parts, list | tuple) or len(parts) != 4:  # cbor2 gives a tag's array as a tuple
        raise PrintedCredentialError("bad_cose")
    protected, _unprotected, body, signature = parts
    if not all(isinstance(p, bytes) for p in (protected, body, signature)):
        raise PrintedCredentialError("bad_cose")
    # Only our own encoding is accepted, byte for byte: no trailing data, no unprotected headers,
    # no second spelling of the same code.
    if _sign1_bytes(protected, body, signature) != raw:
        raise PrintedCredentialError("bad_cose")
    return protected, body, signature


def _inflated(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, MAX_CWT)
    except zlib.error:
        raise PrintedCredentialError("bad_compression") from None
    if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise PrintedCredentialError("bad_compression")  # too large, truncated, or trailing bytes
    return raw


def _cbor(data: bytes) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORError, ValueError, TypeError, LookupError, OverflowError, RecursionError):
        raise PrintedCredentialError("bad_cose") from None


def _cbor_map(data: bytes) -> dict[Any, Any]:
    value = _cbor(data)
    if not isinstance(value, dict):
        raise PrintedCredentialError("bad_cose")
    return value


def _trusted_key(kid: object, issuer_keys: TrustedKeys) -> tuple[bytes, ec.EllipticCurvePublicKey | IssuerKey]:
    trusted = issuer_keys.get(kid) if isinstance(kid, bytes) else None
    if not isinstance(kid, bytes) or trusted is None:
        raise PrintedCredentialError("unknown_key")
    public_key = trusted.public_key if isinstance(trusted, IssuerKey) else trusted
    if not isinstance(public_key.curve, ec.SECP256R1):  # ES256 is P-256 only (RFC 9053 §2.1)
        raise PrintedCredentialError("unknown_key")
    return kid, trusted


def _verify_es256(public_key: ec.EllipticCurvePublicKey, to_be_signed: bytes, signature: bytes) -> None:
    if len(signature) != SIGNATURE_SIZE:
        raise PrintedCredentialError("signature_invalid")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), to_be_signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PrintedCredentialError("signature_invalid") from None


def _credential(claims: dict[Any, Any], kid: bytes) -> PrintedCredential:
    issuer, kind = _typed(claims, CWT_ISS, str), _typed(claims, CLAIM_TYPE, str)
    content, cti = _typed(claims, CLAIM_CLAIMS, dict), _typed(claims, CWT_CTI, bytes)
    issued, expires = _typed(claims, CWT_IAT, int), _typed(claims, CWT_EXP, int)
    if len(cti) != 16 or not _json_like(content, MAX_CLAIM_DEPTH):
        raise PrintedCredentialError("bad_cose")
    credential_id = str(uuid.UUID(bytes=cti))
    return PrintedCredential(credential_id, issuer, kind, content, issued, expires, _status(claims), kid)


def _status(claims: dict[Any, Any]) -> tuple[str, int] | None:
    status = claims.get(CLAIM_STATUS)
    if status is None:
        return None
    if not (isinstance(status, list) and len(status) == 2):
        raise PrintedCredentialError("bad_cose")
    list_id, index = status
    if not isinstance(list_id, str) or not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise PrintedCredentialError("bad_cose")
    return list_id, index


def _typed(claims: dict[Any, Any], label: int, kind: type[T]) -> T:
    value = claims.get(label)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PrintedCredentialError("bad_cose")
    return value


def _json_like(value: object, depth: int) -> bool:
    """Whether ``value`` is what JSON can say: a page or a JSON API shows the claims as they are."""
    if isinstance(value, str | bool | int) or value is None:
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if depth == 0:
        return False
    if isinstance(value, list):
        return all(_json_like(item, depth - 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v, depth - 1) for k, v in value.items())
    return False
