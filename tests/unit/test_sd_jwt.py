"""SD-JWT (sdk.sdjwt) against openwallet-foundation-labs/sd-jwt-python's test cases, and the attacks a
verifier must refuse, each with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from bauhinia.sdk.jose import b64url, sign_with_header
from bauhinia.sdk.sdjwt import (
    REASONS,
    CredentialError,
    Disclosable,
    issue_sd_jwt,
    parse_sd_jwt,
    present,
    verify_sd_jwt,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "sd-jwt"
SETTINGS = yaml.safe_load((VECTORS / "settings.yml").read_text())
ADDED = {"iss", "iat", "exp", "cnf", "_sd_alg"}  # what the harness adds to the user claims


class _Marked:
    """A value or key tagged !sd in the vectors' YAML."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return hash(("sd", self.value))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Marked) and other.value == self.value


class _Loader(yaml.SafeLoader):
    pass


def _construct_sd(loader: yaml.SafeLoader, node: yaml.Node) -> _Marked:
    if isinstance(node, yaml.MappingNode):
        return _Marked(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return _Marked(loader.construct_sequence(node, deep=True))
    assert isinstance(node, yaml.ScalarNode)
    plain = node.style is None  # a quoted scalar stays a string, as it would untagged
    implicit = loader.resolve(yaml.ScalarNode, node.value, (plain, not plain))  # type: ignore[no-untyped-call]
    return _Marked(loader.construct_object(yaml.ScalarNode(implicit, node.value)))


_Loader.add_constructor("!sd", _construct_sd)


def to_claims(value: Any) -> Any:
    """The vectors' !sd tags as Disclosable values."""
    if isinstance(value, _Marked):
        return Disclosable(to_claims(value.value))
    if isinstance(value, dict):
        claims = {}
        for key, member in value.items():
            if isinstance(key, _Marked):
                claims[str(key.value)] = Disclosable(to_claims(member))
            else:
                claims[str(key)] = to_claims(member)
        return claims
    if isinstance(value, list):
        return [to_claims(v) for v in value]
    return value


def key(jwk: dict[str, Any], kid: str) -> ECKey:
    return ECKey.import_key({**jwk, "kid": kid})


ISSUER_KEY = key(SETTINGS["key_settings"]["issuer_keys"][0], "issuer-1")
HOLDER_KEY = key(SETTINGS["key_settings"]["holder_key"], "holder")
ISSUER_KEYS = KeySet([ECKey.import_key(ISSUER_KEY.as_dict(private=False))])
NOW = SETTINGS["iat"] + 10
VERIFIER = SETTINGS["identifiers"]["verifier"]
NONCE = SETTINGS["key_binding_nonce"]


def case_names() -> list[str]:
    names = sorted(p.parent.name for p in VECTORS.glob("*/specification.yml"))
    assert len(names) >= 17
    return names


def issued(user_claims: dict[str, Any], **options: Any) -> str:
    claims = {"iss": SETTINGS["identifiers"]["issuer"], "iat": SETTINGS["iat"], "exp": SETTINGS["exp"], **user_claims}
    return issue_sd_jwt(claims, ISSUER_KEY, holder_jwk=HOLDER_KEY.as_dict(private=False), **options)


@pytest.mark.parametrize("name", case_names())
def test_every_case_issues_presents_and_verifies_as_expected(name: str) -> None:
    """Our issuer, holder and verifier on each case. header_mod's extra header is `kid: 42`: a JWS kid is
    a string (RFC 7515 §4.1.4), so issuing with it is refused (checked below) and the case runs with the
    issuer's own kid; the JSON
    serialization cases run in compact form, the only one the platform produces or accepts."""
    spec = yaml.load((VECTORS / name / "specification.yml").read_text(), Loader=_Loader)  # noqa: S506
    user_claims = to_claims(spec["user_claims"])
    extra = spec.get("extra_header_parameters")
    if extra is not None:
        with pytest.raises(JoseError, match="kid"):
            issued(user_claims, extra_header=extra)
        extra = {k: v for k, v in extra.items() if k != "kid"}
    credential = issued(user_claims, extra_header=extra)
    bound = bool(spec.get("key_binding"))
    presentation = present(
        credential,
        spec["holder_disclosed_claims"],
        holder_key=HOLDER_KEY if bound else None,
        audience=VERIFIER,
        nonce=NONCE,
        issued_at=NOW,
    )
    verified = verify_sd_jwt(
        presentation, ISSUER_KEYS, require_key_binding=bound, audience=VERIFIER, nonce=NONCE, now=NOW
    )
    claims = {k: v for k, v in verified.claims.items() if k not in ADDED}
    assert claims == spec["expect_verified_user_claims"]
    assert verified.key_bound == bound
    assert verified.header["kid"] == ISSUER_KEY.kid


# --- attacks ------------------------------------------------------------------------------------------

PERSON = {
    "vct": "https://eproof.example/types/td.driving-licence",
    "given_name": Disclosable("Tai Man"),
    "family_name": Disclosable("Chan"),
    "licence_number": "CTM853271",
    "classes": [Disclosable("1"), Disclosable("2")],
    "address": Disclosable({"district": Disclosable("Kwun Tong"), "region": "Kowloon"}),
}
EVERYTHING = {"given_name": True, "family_name": True, "classes": [True, True], "address": {"district": True}}


def reason(presentation: str, **options: Any) -> str:
    with pytest.raises(CredentialError) as refused:
        verify_sd_jwt(presentation, ISSUER_KEYS, now=NOW, audience=VERIFIER, nonce=NONCE, **options)
    assert refused.value.reason in REASONS
    return refused.value.reason


def held() -> str:
    return issued(PERSON)


def bound(credential: str, selection: Any = None, **overrides: Any) -> str:
    options = {"holder_key": HOLDER_KEY, "audience": VERIFIER, "nonce": NONCE, "issued_at": NOW} | overrides
    return present(credential, EVERYTHING if selection is None else selection, **options)


def test_the_whole_credential_and_a_partial_presentation_verify() -> None:
    full = verify_sd_jwt(bound(held()), ISSUER_KEYS, require_key_binding=True, audience=VERIFIER, nonce=NONCE, now=NOW)
    assert full.claims["address"] == {"district": "Kwun Tong", "region": "Kowloon"}
    assert full.claims["classes"] == ["1", "2"]
    partial = verify_sd_jwt(bound(held(), {"family_name": True, "classes": [False, True]}), ISSUER_KEYS, now=NOW)
    assert "given_name" not in partial.claims
    assert "address" not in partial.claims
    assert partial.claims["classes"] == ["2"]
    assert partial.claims["licence_number"] == "CTM853271"  # always disclosed


def test_decoy_digests_change_nothing_the_verifier_sees() -> None:
    credential = issued(PERSON, decoys=5)
    assert verify_sd_jwt(bound(credential), ISSUER_KEYS, now=NOW).claims["given_name"] == "Tai Man"


def replace_disclosure(presentation: str, name: str, value: Any) -> str:
    parsed = parse_sd_jwt(presentation)
    swapped = []
    for disclosure in parsed.disclosures:
        content = json.loads(_decode(disclosure))
        if len(content) == 3 and content[1] == name:
            content[2] = value
            disclosure = b64url(json.dumps(content).encode())
        swapped.append(disclosure)
    return "~".join([parsed.issuer_jwt, *swapped]) + "~"


def _decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_a_tampered_disclosure_is_refused() -> None:
    tampered = replace_disclosure(present(held(), EVERYTHING), "family_name", "Wong")
    assert reason(tampered) == "disclosure_not_referenced"


def test_a_disclosure_whose_digest_was_removed_is_refused() -> None:
    credential = held()
    parsed = parse_sd_jwt(credential)
    header, payload, _ = parsed.issuer_jwt.split(".")
    claims = json.loads(_decode(payload))
    claims["_sd"] = claims["_sd"][1:]
    resigned = sign_with_header(json.loads(_decode(header)), claims, ISSUER_KEY)  # even re-signed by the issuer
    forged = "~".join([resigned, *parsed.disclosures]) + "~"
    assert reason(forged) == "disclosure_not_referenced"
    unsigned = "~".join([f"{header}.{b64url(json.dumps(claims).encode())}.{parsed.issuer_jwt.split('.')[2]}"])
    assert reason(unsigned + "~" + "~".join(parsed.disclosures) + "~") == "signature_invalid"


def test_an_added_or_repeated_disclosure_is_refused() -> None:
    presentation = present(held(), {"family_name": True})
    stranger = b64url(json.dumps(["c2FsdA", "is_admin", True]).encode())
    assert reason(presentation + stranger + "~") == "disclosure_not_referenced"
    parsed = parse_sd_jwt(presentation)
    assert reason(presentation + parsed.disclosures[0] + "~") == "disclosure_repeated"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"audience": "https://someone.else"}, "kb_audience_mismatch"),
        ({"nonce": "another"}, "kb_nonce_mismatch"),
        ({"issued_at": NOW - 3600}, "kb_stale"),
        ({"holder_key": ECKey.generate_key("P-256")}, "kb_invalid"),
    ],
)
def test_a_wrong_key_binding_is_refused(overrides: dict[str, Any], expected: str) -> None:
    assert reason(bound(held(), **overrides)) == expected


def test_a_key_binding_for_another_presentation_or_none_at_all_is_refused() -> None:
    full, partial = bound(held()), bound(held(), {"family_name": True})
    moved = parse_sd_jwt(partial).presented + parse_sd_jwt(full).key_binding  # type: ignore[operator]
    assert reason(moved) == "kb_sd_hash_mismatch"
    assert reason(present(held(), EVERYTHING), require_key_binding=True) == "kb_missing"


def test_alg_none_hmac_and_unknown_keys_are_refused() -> None:
    parsed = parse_sd_jwt(held())
    _header, payload, _ = parsed.issuer_jwt.split(".")
    none_header = b64url(json.dumps({"alg": "none", "typ": "dc+sd-jwt", "kid": "issuer-1"}).encode())
    assert reason(f"{none_header}.{payload}.~") == "header_invalid"
    hmac_header = {"alg": "HS256", "typ": "dc+sd-jwt", "kid": "issuer-1"}
    from joserfc import jws
    from joserfc.jwk import OctKey

    secret = OctKey.import_key(json.dumps(ISSUER_KEY.as_dict(private=False)).encode())
    confused = jws.serialize_compact(hmac_header, _decode(payload), secret, algorithms=["HS256"])
    assert reason(confused + "~") == "header_invalid"
    other = ECKey.generate_key("P-256", parameters={"kid": "issuer-1"})
    assert reason(issue_sd_jwt({"a": 1}, other)) == "signature_invalid"
    stranger = ECKey.generate_key("P-256", parameters={"kid": "someone"})
    assert reason(issue_sd_jwt({"a": 1}, stranger)) == "unknown_issuer_key"


def test_expired_and_not_yet_valid_credentials_are_refused() -> None:
    assert reason(issued({**PERSON, "exp": NOW - 3600})) == "expired"
    assert reason(issued({**PERSON, "nbf": NOW + 3600})) == "not_yet_valid"


def test_malformed_input_is_refused_as_malformed() -> None:
    for text in ("", "abc", "a.b~", "~~", "x" * 70_000, "é.b.c~"):
        assert reason(text) in {"malformed", "header_invalid"}


def test_reserved_names_are_refused_by_the_issuer_and_the_verifier() -> None:
    with pytest.raises(ValueError, match="reserved"):
        issue_sd_jwt({"_sd": Disclosable(1)}, ISSUER_KEY)
    disclosure = b64url(json.dumps(["c2FsdA", "_sd", 1]).encode())
    digest = b64url(hashlib.sha256(disclosure.encode()).digest())
    credential = issue_sd_jwt({"_sd_alg": "sha-256", "x": 1}, ISSUER_KEY)
    header, payload, _ = parse_sd_jwt(credential).issuer_jwt.split(".")
    claims = json.loads(_decode(payload)) | {"_sd": [digest]}
    forged = sign_with_header(json.loads(_decode(header)), claims, ISSUER_KEY)
    assert reason(f"{forged}~{disclosure}~") == "disclosure_invalid"
