"""The printed QR form (sdk.printed): RFC 9285's Base45 examples, round trips, damage at every layer
(a changed character, a flipped bit in the compressed bytes, the header, the payload or the signature)
refused with its reason, keys and algorithms that are not trusted refused, arbitrary input refused
with the module's own error only, and the demo credential types within a version-15 QR code."""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from bauhinia.eproof.demo import TYPES, demo_issuances
from bauhinia.sdk.printed import (
    ALPHABET,
    MAX_QR_TEXT,
    PREFIX,
    IssuerKey,
    PrintedCredential,
    PrintedCredentialError,
    base45_decode,
    base45_encode,
    decode_printed,
    encode_printed,
    fits_qr_version_15,
    key_id,
)

KEY = ec.generate_private_key(ec.SECP256R1())
KID = key_id(KEY.public_key())
KEYS = {KID: KEY.public_key()}
NOW = int(time.time())
STATUS = ("TD-1", 123_456)
Parts = list[Any]  # the COSE_Sign1 array: [protected, unprotected, payload, signature]

# What each demo type prints, as a department would fill it in, with names in Chinese (three bytes a
# character in UTF-8). The business registration's address is not printed (see the report: with it,
# a bilingual certificate needs version 17 at level M); it stays in the wallet's SD-JWT form.
DEMO_TYPES: dict[str, dict[str, Any]] = {
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
        "certificate_number": "73519264-000-06-26-5",
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


def credential(kind: str = "td.driving-licence", **changes: Any) -> PrintedCredential:
    fields: dict[str, Any] = {
        "credential_id": "3f6c1b8e-9a2d-4e57-8c1f-0b6d2a9e7c41",
        "issuer": "HK/GOV/TD",
        "type": kind,
        "claims": DEMO_TYPES[kind],
        "issued_at": NOW - 60,
        "expires_at": NOW + 86_400 * 3650,
        "status": STATUS,
        "kid": KID,
    } | changes
    return PrintedCredential(**fields)


TEXT = encode_printed(credential(), KEY)


def refusal(text: str, keys: Any = KEYS, **options: Any) -> str:
    """The reason ``text`` is refused (the test fails if it is accepted)."""
    with pytest.raises(PrintedCredentialError) as refused:
        decode_printed(text, keys, now=NOW, **options)
    return refused.value.reason


def compressed_of(text: str) -> bytes:
    return base45_decode(text[len(PREFIX) :])


def packed(raw: bytes) -> str:
    return PREFIX + base45_encode(zlib.compress(raw))


def resealed(mutate: Callable[[Parts], None], text: str = TEXT) -> str:
    """``text`` with its COSE_Sign1 changed by ``mutate`` and packed again (compression intact)."""
    parts: Parts = list(cbor2.loads(zlib.decompress(compressed_of(text))).value)
    mutate(parts)
    return packed(cbor2.dumps(cbor2.CBORTag(18, parts)))


def signed_by(key: ec.EllipticCurvePrivateKey, protected: dict[int, Any], payload: object) -> str:
    """A code signed correctly (ES256 over the Sig_structure) whatever its header and payload say."""
    header, body = cbor2.dumps(protected), cbor2.dumps(payload)
    der = key.sign(cbor2.dumps(["Signature1", header, b"", body]), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    size = (key.curve.key_size + 7) // 8
    return packed(cbor2.dumps(cbor2.CBORTag(18, [header, {}, body, r.to_bytes(size, "big") + s.to_bytes(size, "big")])))


def flipped(data: bytes, bit: int) -> bytes:
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << (bit % 8))]) + data[bit // 8 + 1 :]


# --- Base45 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0")],
)
def test_base45_follows_rfc_9285(raw: bytes, encoded: str) -> None:
    assert base45_encode(raw) == encoded
    assert base45_decode(encoded) == raw


@pytest.mark.parametrize("text", ["GGW", ":::", "::", "A", "ZZZZ", "a12", "AB="])
def test_invalid_base45_is_refused(text: str) -> None:
    # GGW is 65536 (RFC 9285 §6), ::: and :: overflow too; A and ZZZZ have a 3n+1 length
    with pytest.raises(ValueError, match="Base45"):
        base45_decode(text)


def test_base45_accepts_its_largest_groups() -> None:
    assert base45_decode("FGW") == b"\xff\xff"  # 65535
    assert base45_decode("U5") == b"\xff"  # 255


@given(st.binary(max_size=300))
def test_base45_round_trips_any_bytes_in_the_qr_alphabet(data: bytes) -> None:
    text = base45_encode(data)
    assert set(text) <= set(ALPHABET)
    assert base45_decode(text) == data


# --- round trips and QR size --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(DEMO_TYPES))
def test_each_demo_type_round_trips_within_a_version_15_qr_code(kind: str) -> None:
    text = encode_printed(credential(kind), KEY)
    assert text.startswith(PREFIX)
    assert decode_printed(text, KEYS, now=NOW) == credential(kind)
    # M restores 15 % of the code: a creased or smudged printout still scans, at one or two versions
    # more than L; Q would need version 16-19 for the same texts.
    qr = segno.make(text, error="m", mode="alphanumeric", micro=False)
    assert isinstance(qr.version, int)
    assert qr.version <= 15, f"{kind}: {len(text)} characters need version {qr.version}"
    assert fits_qr_version_15(text)


def test_what_the_demo_issues_fits_a_version_15_qr_code() -> None:
    printed = {kind["id"]: kind["printed"] for kind in TYPES}
    residents = {"chan": "A123456(3)", "wong": "B234567(8)", "lee": "C345678(9)"}
    for issuer, request in demo_issuances(residents):
        claims = {name: request.claims[name] for name in printed[request.type] if name in request.claims}
        text = encode_printed(credential(request.type, claims=claims, issuer=issuer), KEY)
        qr = segno.make(text, error="m", mode="alphanumeric", micro=False)
        assert isinstance(qr.version, int)
        assert qr.version <= 15, (request.type, len(text))


def test_the_version_15_budget_is_segnos() -> None:
    at_budget, over = PREFIX + "A" * (MAX_QR_TEXT - len(PREFIX)), PREFIX + "A" * (MAX_QR_TEXT - len(PREFIX) + 1)
    assert segno.make(at_budget, error="m", mode="alphanumeric", boost_error=False).version == 15
    assert segno.make(over, error="m", mode="alphanumeric", boost_error=False).version == 16
    assert fits_qr_version_15(at_budget)
    assert not fits_qr_version_15(over)


def test_a_credential_without_a_status_reference_round_trips() -> None:
    text = encode_printed(credential(status=None), KEY)
    assert decode_printed(text, KEYS, now=NOW).status is None


def test_only_a_p256_key_signs() -> None:
    with pytest.raises(ValueError, match="P-256"):
        encode_printed(credential(), ec.generate_private_key(ec.SECP384R1()))


# --- damage at every layer ----------------------------------------------------------------------------


def test_every_changed_character_is_refused() -> None:
    body = TEXT[len(PREFIX) :]
    for position, character in enumerate(body):
        replacement = ALPHABET[(ALPHABET.index(character) + 1) % len(ALPHABET)]
        refusal(PREFIX + body[:position] + replacement + body[position + 1 :])


def test_every_flipped_bit_in_the_compressed_bytes_is_refused_or_changes_nothing() -> None:
    compressed, original = compressed_of(TEXT), decode_printed(TEXT, KEYS, now=NOW)
    harmless = set()
    for bit in range(len(compressed) * 8):
        try:
            accepted = decode_printed(PREFIX + base45_encode(flipped(compressed, bit)), KEYS, now=NOW)
        except PrintedCredentialError:
            continue
        assert accepted == original
        harmless.add(bit // 8)
    # RFC 1951 pads the last deflate byte to a byte boundary and every inflater ignores the padding:
    # those bits carry nothing, and the code still says exactly what its issuer signed.
    assert harmless <= {len(compressed) - 5}  # the byte before the 4-byte Adler-32


def test_every_flipped_bit_in_the_payload_or_the_signature_is_refused() -> None:
    parts: Parts = list(cbor2.loads(zlib.decompress(compressed_of(TEXT))).value)
    for index in (2, 3):
        for bit in range(len(parts[index]) * 8):

            def flip(damaged: Parts, index: int = index, bit: int = bit) -> None:
                damaged[index] = flipped(damaged[index], bit)

            assert refusal(resealed(flip)) == "signature_invalid"


def test_every_flipped_bit_in_the_protected_header_is_refused() -> None:
    header: bytes = cbor2.loads(zlib.decompress(compressed_of(TEXT))).value[0]
    for bit in range(len(header) * 8):

        def flip(damaged: Parts, bit: int = bit) -> None:
            damaged[0] = flipped(header, bit)

        refusal(resealed(flip))


def test_a_changed_claim_is_refused() -> None:
    def other_name(parts: Parts) -> None:
        parts[2] = parts[2].replace("陳大文".encode(), "陳小文".encode())

    assert refusal(resealed(other_name)) == "signature_invalid"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda parts: parts.__setitem__(1, {4: KID}),  # an unprotected header: not our encoding
        lambda parts: parts.append(b""),
        lambda parts: parts.__setitem__(2, None),  # a detached payload
        lambda parts: parts.__setitem__(3, "signature"),
    ],
)
def test_a_cose_structure_other_than_ours_is_refused(mutate: Callable[[Parts], None]) -> None:
    assert refusal(resealed(mutate)) == "bad_cose"


def test_bytes_after_the_compressed_stream_or_after_the_cose_structure_are_refused() -> None:
    raw = zlib.decompress(compressed_of(TEXT))
    assert refusal(PREFIX + base45_encode(compressed_of(TEXT) + b"\x00")) == "bad_compression"
    assert refusal(packed(raw + b"\x00")) == "bad_cose"
    assert refusal(packed(cbor2.dumps(cbor2.loads(raw).value))) == "bad_cose"  # untagged


def test_a_truncated_code_is_refused() -> None:
    for length in range(len(PREFIX), len(TEXT), 3):
        assert refusal(TEXT[:length]) in {"bad_base45", "bad_compression"}


def test_a_compression_bomb_is_refused() -> None:
    bomb = PREFIX + base45_encode(zlib.compress(bytes(1_000_000), 9))  # 1 MB in 1.5 k characters
    assert len(bomb) < 4296
    assert refusal(bomb) == "bad_compression"


def test_a_text_longer_than_any_qr_code_holds_is_refused_unread() -> None:
    assert refusal(TEXT + "0" * 4296) == "bad_prefix"


# --- keys, algorithms and issuers ---------------------------------------------------------------------


def test_a_code_signed_by_an_unknown_key_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert refusal(TEXT, {key_id(other.public_key()): other.public_key()}) == "unknown_key"
    assert refusal(TEXT, {}) == "unknown_key"
    assert refusal(TEXT, {KID: other.public_key()}) == "signature_invalid"  # the right kid, another key


@pytest.mark.parametrize(
    "header",
    [
        {1: 5, 4: KID},  # HMAC 256/256: a MAC key would be a shared secret
        {1: -8, 4: KID},  # EdDSA
        {1: -35, 4: KID},  # ES384
        {1: "ES256", 4: KID},  # the JOSE name, not the COSE number
        {4: KID},  # no algorithm at all
    ],
)
def test_other_algorithms_are_refused_even_when_the_signature_verifies(header: dict[int, Any]) -> None:
    text = signed_by(KEY, header, cbor2.loads(cbor2.loads(zlib.decompress(compressed_of(TEXT))).value[2]))
    assert refusal(text) == "unsupported_algorithm"


def test_a_critical_header_is_refused() -> None:
    payload = cbor2.loads(cbor2.loads(zlib.decompress(compressed_of(TEXT))).value[2])
    assert refusal(signed_by(KEY, {1: -7, 2: [99], 4: KID, 99: 1}, payload)) == "bad_cose"


def test_a_trusted_key_on_a_curve_other_than_p256_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    kid = key_id(p384.public_key())
    payload = cbor2.loads(cbor2.loads(zlib.decompress(compressed_of(TEXT))).value[2])
    assert refusal(signed_by(p384, {1: -7, 4: kid}, payload), {kid: p384.public_key()}) == "unknown_key"


def test_a_key_pinned_to_its_issuer_speaks_for_no_other() -> None:
    housing = ec.generate_private_key(ec.SECP256R1())
    kid = key_id(housing.public_key())
    pinned = {KID: IssuerKey("HK/GOV/TD", KEY.public_key()), kid: IssuerKey("HK/GOV/HD", housing.public_key())}
    assert decode_printed(TEXT, pinned, now=NOW).issuer == "HK/GOV/TD"
    forged = encode_printed(credential(kid=kid), housing)  # Housing's key, Transport's name
    assert refusal(forged, pinned) == "issuer_mismatch"


def test_an_expired_credential_is_refused_unless_asked_not_to() -> None:
    text = encode_printed(credential(expires_at=NOW - 1), KEY)
    assert refusal(text) == "expired"
    assert decode_printed(text, KEYS, now=NOW, check_expiry=False).expires_at == NOW - 1


# --- well signed, badly formed ------------------------------------------------------------------------

GOOD_CWT: dict[int, Any] = {
    1: "HK/GOV/TD",
    6: NOW,
    4: NOW + 100,
    7: bytes(16),
    -65537: "td.driving-licence",
    -65538: {"name_en": "CHAN, Tai Man"},
    -65539: ["TD-1", 1],
}


@pytest.mark.parametrize(
    "changes",
    [
        {1: None},
        {1: 7},
        {6: "yesterday"},
        {4: True},
        {7: bytes(15)},
        {7: "3f6c1b8e-9a2d-4e57-8c1f-0b6d2a9e7c41"},
        {-65537: None},
        {-65538: ["name_en"]},
        {-65538: {1: "a number as a claim name"}},
        {-65538: {"photo": b"\x89PNG"}},  # bytes: not JSON, a page could not show it
        {-65538: {"when": cbor2.CBORTag(1, 0)}},
        {-65538: {"nan": float("nan")}},
        {-65538: {"deep": [[[[[[[[["too deep"]]]]]]]]]}},
        {-65539: ["TD-1"]},
        {-65539: ["TD-1", -1]},
        {-65539: ["TD-1", True]},
        {-65539: {"uri": "https://x", "idx": 1}},
    ],
)
def test_a_well_signed_cwt_with_malformed_claims_is_refused(changes: dict[int, Any]) -> None:
    assert refusal(signed_by(KEY, {1: -7, 4: KID}, GOOD_CWT | changes)) == "bad_cose"


def test_a_well_signed_payload_that_is_not_a_map_is_refused() -> None:
    assert refusal(signed_by(KEY, {1: -7, 4: KID}, ["not", "a", "map"])) == "bad_cose"


def test_a_well_signed_cyclic_claim_is_refused() -> None:
    header = cbor2.dumps({1: -7, 4: KID})
    # {…, -65538: {"loop": shareable([sharedref(0)])}}: a list that contains itself (RFC 8949 tags 28, 29)
    cyclic = cbor2.dumps({k: v for k, v in GOOD_CWT.items() if k != -65538})[1:]
    body = bytes([0xA0 + len(GOOD_CWT)]) + cyclic + bytes.fromhex("3a00010001a1646c6f6f70d81c81d81d00")
    assert isinstance(cbor2.loads(body)[-65538]["loop"][0], list)
    der = KEY.sign(cbor2.dumps(["Signature1", header, b"", body]), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    text = packed(cbor2.dumps(cbor2.CBORTag(18, [header, {}, body, r.to_bytes(32, "big") + s.to_bytes(32, "big")])))
    assert refusal(text) == "bad_cose"


def test_deeply_nested_or_overlong_cbor_is_refused() -> None:
    assert refusal(packed(b"\x81" * 5000 + b"\x00")) == "bad_cose"
    huge_string = b"\x5b" + b"\xff" * 8  # a byte string that says it is 2^64 - 1 bytes long
    assert refusal(packed(b"\xd2\x84\x41\xa0\xa0" + huge_string)) == "bad_cose"


# --- anything at all ----------------------------------------------------------------------------------

BASE45_TEXT = st.text(alphabet=ALPHABET, max_size=600)
PACKED = st.binary(max_size=300).map(packed)
CBOR_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.integers(-70000, 10) | st.text(), children),
    max_leaves=12,
)
SIGN1_LIKE = st.tuples(CBOR_VALUE, CBOR_VALUE, CBOR_VALUE, st.binary(max_size=70)).map(
    lambda p: packed(cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(p[0]), {}, cbor2.dumps(p[2]), p[3]])))
)
HEADER_LIKE = st.dictionaries(st.sampled_from([1, 2, 4, 5]), st.sampled_from([-7, -8, 5, KID, b"", "x", [1]])).map(
    lambda header: packed(cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(header), {}, cbor2.dumps(GOOD_CWT), bytes(64)])))
)


@settings(max_examples=400)
@given(st.one_of(st.text(max_size=300), BASE45_TEXT.map(lambda t: PREFIX + t), PACKED, SIGN1_LIKE, HEADER_LIKE))
def test_arbitrary_text_raises_only_the_modules_error(text: str) -> None:
    with pytest.raises(PrintedCredentialError):
        decode_printed(text, KEYS, now=NOW)


@settings(max_examples=100)
@given(CBOR_VALUE)
def test_any_well_signed_payload_is_accepted_or_refused_with_the_modules_error(payload: object) -> None:
    reason = None
    try:
        decode_printed(signed_by(KEY, {1: -7, 4: KID}, payload), KEYS, now=NOW)
    except PrintedCredentialError as refused:
        reason = refused.reason
    assert reason in {None, "bad_cose"}


def test_the_key_id_is_short_and_stable() -> None:
    assert len(KID) == 8
    assert key_id(KEY.public_key()) == KID
    assert dataclasses.replace(credential(), kid=KID) == credential()
