"""sdk.verifier offline, against a trust file built here: one department's key never speaks for
another, whichever form the credential takes."""

from __future__ import annotations

import time
import uuid

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import ECKey

from bauhinia.sdk.printed import PrintedCredential, encode_printed, key_id
from bauhinia.sdk.transparency import NoteSigner
from bauhinia.sdk.verifier import Trust, verify

NOW = int(time.time())


def department() -> tuple[ec.EllipticCurvePrivateKey, dict[str, object]]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECKey.import_key(key.public_key()).as_dict(private=False) | {"kid": key_id(key.public_key()).hex()}
    return key, {"keys": [jwk]}


def printed_code(issuer: str, key: ec.EllipticCurvePrivateKey) -> str:
    credential = PrintedCredential(
        str(uuid.uuid4()),
        issuer,
        "td.driving-licence",
        {"name": "CHAN, Tai Man"},
        NOW - 60,
        NOW + 3600,
        None,
        key_id(key.public_key()),
    )
    return encode_printed(credential, key)


def trust_of(issuers: dict[str, dict[str, object]]) -> Trust:
    log = NoteSigner("bauhinia.example/log", Ed25519PrivateKey.generate())
    return Trust(
        base_url="https://bauhinia.example",
        log_vkey=log.verifier.vkey,
        issuers={
            member: {"id": f"https://bauhinia.example/eproof/issuers/{member}", "jwks": jwks}
            for member, jwks in issuers.items()
        },
        status_lists={},
        status_tokens={},
        credential_types={},
        fetched_at=NOW,
    )


def test_a_printed_code_names_the_department_whose_key_signed_it() -> None:
    transport, transport_jwks = department()
    housing, housing_jwks = department()
    trust = trust_of({"HK/GOV/TD": transport_jwks, "HK/GOV/HD": housing_jwks})
    genuine = verify(printed_code("HK/GOV/TD", transport), trust, now=NOW)
    assert (genuine.outcomes["signature"], genuine.issuer) == ((True, ""), "HK/GOV/TD")
    forged = verify(printed_code("HK/GOV/TD", housing), trust, now=NOW)  # Housing's key, Transport's name
    assert forged.outcomes["signature"] == (False, "issuer_mismatch")
    assert not forged.valid
    unknown = verify(printed_code("HK/GOV/XX", housing), trust, now=NOW)
    assert unknown.outcomes["signature"] == (False, "issuer_mismatch")


def test_a_key_published_by_two_departments_speaks_for_neither() -> None:
    """A key id in two departments' key sets is ambiguous: it must not let one pass as the other."""
    transport, transport_jwks = department()
    _, housing_jwks = department()
    housing_jwks = {"keys": [*housing_jwks["keys"], *transport_jwks["keys"]]}  # type: ignore[misc]
    for trust in (
        trust_of({"HK/GOV/TD": transport_jwks, "HK/GOV/HD": housing_jwks}),
        trust_of({"HK/GOV/HD": housing_jwks, "HK/GOV/TD": transport_jwks}),
    ):
        as_housing = verify(printed_code("HK/GOV/HD", transport), trust, now=NOW)
        assert as_housing.outcomes["signature"] == (False, "unknown_key")
