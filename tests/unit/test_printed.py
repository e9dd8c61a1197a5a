"""The printed QR form (sdk.printed): RFC 9285's Base45 examples, round trips, every kind of damage
refused with its reason, and the demo credential types within a version-15 QR code."""

from __future__ import annotations

import base64
import time
import zlib

import cbor2
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from bauhinia.sdk.printed import (
    PREFIX,
    PrintedCredential,
    PrintedCredentialError,
    base45_decode,
    base45_encode,
    decode_printed,
    encode_printed,
    key_id,
)

KEY = ec.generate_private_key(ec.SECP256R1())
KID = key_id(KEY.public_key())
KEYS = {KID: KEY.public_key()}
NOW = int(time.time())
STATUS = ("TD-1", 123_456)

DEMO_TYPES = {
    "td.driving-licence": {
        "name_en": "CHAN, Tai Man",
        "name_zh": "陳大文",
        "licence_number": "CTM853271",
        "classes": ["1", "2"],
        "issued_on": "2021-06-01",
        "expires_on": "2031-05-31",
        "conditions": "Corrective lenses must be worn",
    },
    "ird.business-registration": {
        "business_name_en": "Harbour Lights Trading Limited",
        "business_name_zh": "海港之光貿易有限公司",
        "certificate_number": "73519264-000-06-26-5",  # the address stays in the wallet's copy only
        "nature": "Import and export of electronic components",
        "commenced_on": "2019-06-14",
        "expires_on": "2027-06-13",
    },
    "hd.tenancy-letter": {
        "tenant_name_en": "WONG, Siu Ming",
        "tenant_name_zh": "黃小明",
        "estate": "Choi Hung Estate 彩虹邨",
        "block": "Kam Hung House 金虹樓",
        "flat": "Room 1203, 12/F",
        "tenancy_start": "2024-03-01",
    },
    "hkeaa.exam-results": {
        "candidate_name_en": "LEE, Ka Yan",
        "candidate_name_zh": "李嘉欣",
        "exam": "HKDSE",
        "year": 2026,
        "results": [["CHLA", "5*"], ["ENGL", "5"], ["MATH", "5**"], ["CSD", "A"], ["PHYS", "5*"], ["ICT", "5"]],
    },
}


def credential(kind: str = "td.driving-licence", **changes: object) -> PrintedCredential:
    fields = {
        "credential_id": "3f6c1b8e-9a2d-4e57-8c1f-0b6d2a9e7c41",
        "issuer": "HK/GOV/TD",
        "type": kind,
        "claims": DEMO_TYPES[kind],
        "issued_at": NOW - 60,
        "expires_at": NOW + 86_400 * 3650,
        "status": STATUS,
        "kid": KID,
    } | changes
    return PrintedCredential(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0")],
)
def test_base45_follows_rfc_9285(raw: bytes, encoded: str) -> None:
    assert base45_encode(raw) == encoded
    assert base45_decode(encoded) == raw


@pytest.mark.parametrize("text", ["GGW", "A", "a12", "ZZZZ"])
def test_invalid_base45_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Base45"):
        base45_decode(text)


@pytest.mark.parametrize("kind", sorted(DEMO_TYPES))
def test_each_demo_type_round_trips_within_a_version_15_qr_code(kind: str) -> None:
    text = encode_printed(credential(kind), KEY)
    assert text.startswith(PREFIX)
    decoded = decode_printed(text, KEYS, now=NOW)
    assert decoded == credential(kind)
    qr = segno.make(text, error="m", mode="alphanumeric")  # M: 15 % of the code may be damaged
    assert isinstance(qr.version, int)
    assert qr.version <= 15, f"{kind}: {len(text)} characters need version {qr.version}"


def test_damage_anywhere_is_refused() -> None:
    text = encode_printed(credential(), KEY)
    body = text[len(PREFIX) :]
    for position in range(0, len(body), 7):  # a changed character in the Base45 text
        damaged = body[:position] + ("0" if body[position] != "0" else "1") + body[position + 1 :]
        with pytest.raises(PrintedCredentialError):
            decode_printed(PREFIX + damaged, KEYS, now=NOW)


def resealed(mutate: object) -> str:
    """The code with its COSE_Sign1 changed by ``mutate`` and packed again (compression intact)."""
    raw = zlib.decompress(base45_decode(encode_printed(credential(), KEY)[len(PREFIX) :]))
    parts = list(cbor2.loads(raw).value)
    mutate(parts)  # type: ignore[operator]
    return PREFIX + base45_encode(zlib.compress(cbor2.dumps(cbor2.CBORTag(18, parts))))


def test_a_flipped_bit_in_the_payload_or_the_signature_is_refused() -> None:
    def flip_payload(parts: list[bytes]) -> None:
        parts[2] = parts[2].replace("陳大文".encode(), "陳小文".encode())

    def flip_signature(parts: list[bytes]) -> None:
        parts[3] = bytes([parts[3][0] ^ 1]) + parts[3][1:]

    for mutate in (flip_payload, flip_signature):
        with pytest.raises(PrintedCredentialError) as refused:
            decode_printed(resealed(mutate), KEYS, now=NOW)
        assert refused.value.reason == "signature_invalid"


def test_wrong_keys_and_other_algorithms_are_refused() -> None:
    text = encode_printed(credential(), KEY)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PrintedCredentialError) as refused:
        decode_printed(text, {key_id(other.public_key()): other.public_key()}, now=NOW)
    assert refused.value.reason == "unknown_key"
    with pytest.raises(PrintedCredentialError) as refused:
        decode_printed(text, {KID: other.public_key()}, now=NOW)  # the right kid, another key
    assert refused.value.reason == "signature_invalid"

    def hmac_header(parts: list[bytes]) -> None:
        parts[0] = cbor2.dumps({1: 5, 4: KID})  # HMAC 256/256

    with pytest.raises(PrintedCredentialError) as refused:
        decode_printed(resealed(hmac_header), KEYS, now=NOW)
    assert refused.value.reason == "unsupported_algorithm"


def test_an_expired_credential_is_refused_unless_asked_not_to() -> None:
    text = encode_printed(credential(expires_at=NOW - 1), KEY)
    with pytest.raises(PrintedCredentialError) as refused:
        decode_printed(text, KEYS, now=NOW)
    assert refused.value.reason == "expired"
    assert decode_printed(text, KEYS, now=NOW, check_expiry=False).expires_at == NOW - 1


def test_a_compression_bomb_is_refused() -> None:
    bomb = PREFIX + base45_encode(zlib.compress(bytes(1_000_000), 9))
    with pytest.raises(PrintedCredentialError) as refused:
        decode_printed(bomb, KEYS, now=NOW)
    assert refused.value.reason in {"bad_compression", "bad_prefix"}


BASE45_TEXT = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
PACKED = st.binary(max_size=200).map(lambda b: PREFIX + base45_encode(zlib.compress(b)))


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=300), BASE45_TEXT.map(lambda t: PREFIX + t), PACKED))
def test_arbitrary_text_raises_only_the_modules_error(text: str) -> None:
    with pytest.raises(PrintedCredentialError):
        decode_printed(text, KEYS, now=NOW)


def test_the_key_id_is_short_and_stable() -> None:
    assert len(KID) == 8
    assert key_id(KEY.public_key()) == KID
    assert base64.b64encode(KID)
