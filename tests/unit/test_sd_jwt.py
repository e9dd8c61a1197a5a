"""SD-JWT (sdk.sdjwt) against openwallet-foundation-labs/sd-jwt-python's test cases, and the attacks a
verifier must refuse, each with its reason."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey

from bauhinia.sdk.jose import b64url, sign_with_header
from bauhinia.sdk.sdjwt import (
    REASONS,
    CredentialError,
    Disclosable,
    issue_sd_jwt,
    parse_sd_jwt,
    present,
    selection_from_paths,
    sign_jwt,
    verify_sd_jwt,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "sd-jwt"
SETTINGS = yaml.safe_load((VECTORS / "settings.yml").read_text())
VCT = "https://eproof.example/types/example"
ADDED = {"iss", "iat", "exp", "vct", "cnf"}  # what the harness adds to the user claims


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


def public(*keys: ECKey | OKPKey) -> KeySet:
    return KeySet([type(k).import_key(k.as_dict(private=False)) for k in keys])


ISSUER_KEY = key(SETTINGS["key_settings"]["issuer_keys"][0], "issuer-1")
HOLDER_KEY = key(SETTINGS["key_settings"]["holder_key"], "holder")
ISSUER_KEYS = public(ISSUER_KEY)
NOW = SETTINGS["iat"] + 10
VERIFIER = SETTINGS["identifiers"]["verifier"]
NONCE = SETTINGS["key_binding_nonce"]


def case_names() -> list[str]:
    names = sorted(p.parent.name for p in VECTORS.glob("*/specification.yml"))
    assert len(names) >= 17
    return names


def specification(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((VECTORS / name / "specification.yml").read_text(), Loader=_Loader)  # noqa: S506
    return loaded


def issued(user_claims: dict[str, Any], issuer_key: ECKey | OKPKey = ISSUER_KEY, **options: Any) -> str:
    registered = {"iss": SETTINGS["identifiers"]["issuer"], "iat": SETTINGS["iat"], "exp": SETTINGS["exp"], "vct": VCT}
    holder = HOLDER_KEY.as_dict(private=False)
    return issue_sd_jwt({**registered, **user_claims}, issuer_key, holder_jwk=holder, **options)


@pytest.mark.parametrize("name", case_names())
def test_every_case_issues_presents_and_verifies_as_expected(name: str) -> None:
    """Our issuer, holder and verifier on each case.

    - header_mod adds the header parameter ``kid: 42``. A JWS kid is a string (RFC 7515 §4.1.4), so the
      integer is refused when issuing (checked below), and the case runs with ``kid: "42"``, the issuer
      key named so: the extra parameter is carried in the header and the verifier finds the key by it.
    - json_serialization_flattened/general run in compact form: RFC 9901 §8 makes the JWS JSON
      serialization optional, no part of the platform produces or accepts it, and a JSON-serialized
      SD-JWT is refused as malformed (test_the_json_serialization_is_refused_as_malformed). The general
      case's second issuer key only matters for a second JSON signature, so one key signs here.
    """
    spec = specification(name)
    user_claims = to_claims(spec["user_claims"])
    issuer_key, issuer_keys, extra = ISSUER_KEY, ISSUER_KEYS, spec.get("extra_header_parameters")
    if extra is not None:
        with pytest.raises(JoseError, match="kid"):
            issued(user_claims, extra_header=extra)
        extra = {k: str(v) if k == "kid" else v for k, v in extra.items()}
        issuer_key = key(SETTINGS["key_settings"]["issuer_keys"][0], extra.get("kid", "issuer-1"))
        issuer_keys = public(issuer_key)
    credential = issued(user_claims, issuer_key, extra_header=extra)
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
        presentation, issuer_keys, require_key_binding=bound, audience=VERIFIER, nonce=NONCE, now=NOW
    )
    claims = {k: v for k, v in verified.claims.items() if k not in ADDED}
    assert claims == spec["expect_verified_user_claims"]
    assert verified.key_bound == bound
    assert verified.header["kid"] == issuer_key.kid
    assert verified.header["typ"] == "dc+sd-jwt"
    assert verified.claims["cnf"] == {"jwk": HOLDER_KEY.as_dict(private=False)}
    if bound:
        kb_header = json.loads(_decode(presentation.rsplit("~", 1)[1].split(".")[0]))
        assert kb_header == {"alg": "ES256", "typ": "kb+jwt"}


def test_the_json_serialization_is_refused_as_malformed() -> None:
    spec = specification("json_serialization_flattened")
    presentation = present(
        issued(to_claims(spec["user_claims"])),
        spec["holder_disclosed_claims"],
        holder_key=HOLDER_KEY,
        audience=VERIFIER,
        nonce=NONCE,
        issued_at=NOW,
    )
    parsed = parse_sd_jwt(presentation)
    protected, payload, signature = parsed.issuer_jwt.split(".")
    unprotected = {"disclosures": parsed.disclosures, "kb_jwt": parsed.key_binding}
    flattened = {"protected": protected, "payload": payload, "signature": signature, "header": unprotected}
    general = {
        "payload": payload,
        "signatures": [{"protected": protected, "signature": signature, "header": unprotected}],
    }
    for serialized in (flattened, general):
        assert reason(json.dumps(serialized)) == "malformed"


# --- issuing and presenting ---------------------------------------------------------------------------

PERSON = {
    "vct": "https://eproof.example/types/td.driving-licence",
    "status": {"status_list": {"idx": 7, "uri": "https://eproof.example/eproof/status/td/1"}},
    "given_name": Disclosable("Tai Man"),
    "family_name": Disclosable("Chan"),
    "licence_number": "CTM853271",
    "classes": [Disclosable("1"), Disclosable("2")],
    "address": Disclosable({"district": Disclosable("Kwun Tong"), "region": "Kowloon"}),
}
EVERYTHING = {"given_name": True, "family_name": True, "classes": [True, True], "address": {"district": True}}


def reason(presentation: str, keys: KeySet = ISSUER_KEYS, **options: Any) -> str:
    with pytest.raises(CredentialError) as refused:
        verify_sd_jwt(presentation, keys, now=NOW, audience=VERIFIER, nonce=NONCE, **options)
    assert refused.value.reason in REASONS
    assert str(refused.value)  # a sentence for a person
    return refused.value.reason


def held(**options: Any) -> str:
    return issued(PERSON, **options)


def bound(credential: str, selection: Any = None, **overrides: Any) -> str:
    options = {"holder_key": HOLDER_KEY, "audience": VERIFIER, "nonce": NONCE, "issued_at": NOW} | overrides
    return present(credential, EVERYTHING if selection is None else selection, **options)


def claims_of(token: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_decode(token.split(".")[1]))
    return loaded


def _decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def disclosure(*content: Any) -> str:
    return b64url(json.dumps(list(content)).encode())


def digest(text: str) -> str:
    return b64url(hashlib.sha256(text.encode()).digest())


def resigned(credential: str, change: Any, *disclosures: str) -> str:
    """The credential's payload changed by ``change`` and signed again by the issuer's own key: what a
    faulty or compromised issuer could produce, to test the verifier's processing rather than signature."""
    parsed = parse_sd_jwt(credential)
    header, payload, _ = parsed.issuer_jwt.split(".")
    claims = json.loads(_decode(payload))
    change(claims)
    forged = sign_with_header(json.loads(_decode(header)), claims, ISSUER_KEY)
    return "~".join([forged, *(disclosures or parsed.disclosures)]) + "~"


def test_the_whole_credential_and_a_partial_presentation_verify() -> None:
    full = verify_sd_jwt(bound(held()), ISSUER_KEYS, require_key_binding=True, audience=VERIFIER, nonce=NONCE, now=NOW)
    assert full.claims["address"] == {"district": "Kwun Tong", "region": "Kowloon"}
    assert full.claims["classes"] == ["1", "2"]
    assert full.claims["status"] == PERSON["status"]
    partial = verify_sd_jwt(bound(held(), {"family_name": True, "classes": [False, True]}), ISSUER_KEYS, now=NOW)
    assert "given_name" not in partial.claims
    assert "address" not in partial.claims
    assert partial.claims["classes"] == ["2"]
    assert partial.claims["licence_number"] == "CTM853271"  # always disclosed


def test_the_issuer_signs_digests_sorted_with_sd_alg_and_cnf_and_injected_salts() -> None:
    counter = itertools.count()
    credential = held(salt=lambda: f"salt-{next(counter)}")
    parsed = parse_sd_jwt(credential)
    payload = claims_of(parsed.issuer_jwt)
    contents = {digest(d): json.loads(_decode(d)) for d in parsed.disclosures}
    assert payload["_sd_alg"] == "sha-256"
    assert payload["cnf"] == {"jwk": HOLDER_KEY.as_dict(private=False)}
    assert payload["_sd"] == sorted(payload["_sd"])
    assert sorted(contents[d][1] for d in payload["_sd"]) == ["address", "family_name", "given_name"]
    assert [contents[element["..."]][1] for element in payload["classes"]] == ["1", "2"]
    assert sorted(c[0] for c in contents.values()) == [f"salt-{i}" for i in range(6)]
    header = json.loads(_decode(parsed.issuer_jwt.split(".")[0]))
    assert header == {"kid": "issuer-1", "typ": "dc+sd-jwt", "alg": "ES256"}
    random_salt = json.loads(_decode(parse_sd_jwt(held()).disclosures[0]))[0]
    assert len(_decode(random_salt)) == 16  # 128 bits from secrets


def test_decoy_digests_change_nothing_the_verifier_sees() -> None:
    credential = held(decoys=5)
    assert len(claims_of(credential)["_sd"]) == 3 + 5
    assert verify_sd_jwt(bound(credential), ISSUER_KEYS, now=NOW).claims["given_name"] == "Tai Man"


def test_claim_paths_choose_what_is_disclosed() -> None:
    selection = selection_from_paths([("address", "district"), ("classes", 1), ("family_name",), ("address",)])
    assert selection == {"address": {"district": True}, "classes": [False, True], "family_name": True}
    claims = verify_sd_jwt(bound(held(), selection), ISSUER_KEYS, now=NOW).claims
    assert (claims["address"], claims["classes"], claims["family_name"]) == (
        {"district": "Kwun Tong", "region": "Kowloon"},
        ["2"],
        "Chan",
    )
    assert "given_name" not in claims
    only_address = verify_sd_jwt(bound(held(), selection_from_paths([("address",)])), ISSUER_KEYS, now=NOW).claims
    assert only_address["address"] == {"region": "Kowloon"}  # nothing below a path's end
    wrong_paths: list[list[Any]] = [[()], [(0,)], [("classes", "x"), ("classes", 0)], [("a", -1)]]
    for wrong in wrong_paths:
        with pytest.raises(ValueError, match="claim path"):
            selection_from_paths(wrong)


def test_the_sd_jwt_vc_claims_are_never_disclosable() -> None:
    for name, value in [("exp", Disclosable(1)), ("status", {"status_list": Disclosable({"idx": 1})})]:
        with pytest.raises(ValueError, match=f"{name} claim must not be selectively disclosable"):
            issue_sd_jwt({"vct": VCT, name: value}, ISSUER_KEY)
    hidden_exp = disclosure("c2FsdA", "exp", NOW - 3600)
    forged = resigned(held(), lambda c: c["_sd"].append(digest(hidden_exp)), hidden_exp)
    assert reason(forged) == "disclosure_invalid"
    hidden_index = disclosure("c2FsdA", "idx", 1)
    partly = resigned(held(), lambda c: c["status"]["status_list"].update(_sd=[digest(hidden_index)]), hidden_index)
    assert reason(partly) == "disclosure_invalid"
    withheld = resigned(held(), lambda c: c["status"]["status_list"].update(_sd=[digest(hidden_index)]), "x")
    assert reason(withheld.replace("~x~", "~")) == "disclosure_invalid"  # even when the holder withholds it


def test_a_credential_without_a_type_or_from_another_issuer_is_refused() -> None:
    untyped = issue_sd_jwt({"iss": "https://td.example"}, ISSUER_KEY)
    assert reason(untyped) == "malformed"
    assert reason(held(), issuer="https://someone.else") == "unknown_issuer_key"
    assert verify_sd_jwt(held(), ISSUER_KEYS, issuer=SETTINGS["identifiers"]["issuer"], now=NOW).claims["iss"]


def test_both_sd_jwt_vc_types_are_accepted_and_no_other() -> None:
    assert verify_sd_jwt(held(typ="vc+sd-jwt"), ISSUER_KEYS, now=NOW).header["typ"] == "vc+sd-jwt"
    for typ in ("sd-jwt", "jwt", "kb+jwt"):
        assert reason(held(typ=typ)) == "header_invalid"


def test_ed25519_issuers_and_holders_sign_and_verify_under_either_name() -> None:
    issuer = OKPKey.generate_key("Ed25519", parameters={"kid": "ed-issuer"})
    holder = OKPKey.generate_key("Ed25519")
    credential = issue_sd_jwt(
        {"vct": VCT, "name": Disclosable("Chan")}, issuer, holder_jwk=holder.as_dict(private=False)
    )
    assert json.loads(_decode(credential.split(".")[0]))["alg"] == "Ed25519"
    presentation = present(credential, {"name": True}, holder_key=holder, audience=VERIFIER, nonce=NONCE, issued_at=NOW)
    verified = verify_sd_jwt(
        presentation, public(issuer), require_key_binding=True, audience=VERIFIER, nonce=NONCE, now=NOW
    )
    assert verified.claims["name"] == "Chan"
    parsed = parse_sd_jwt(credential)
    payload = parsed.issuer_jwt.split(".")[1]
    eddsa_header = b64url(json.dumps({"alg": "EdDSA", "typ": "dc+sd-jwt", "kid": "ed-issuer"}).encode())
    signature = b64url(issuer.get_op_key("sign").sign(f"{eddsa_header}.{payload}".encode()))  # type: ignore[union-attr]
    rfc8037 = "~".join([f"{eddsa_header}.{payload}.{signature}", *parsed.disclosures]) + "~"
    assert verify_sd_jwt(rfc8037, public(issuer), now=NOW).claims["name"] == "Chan"
    with pytest.raises(ValueError, match="P-256 or Ed25519"):
        issue_sd_jwt({"vct": VCT}, ECKey.generate_key("P-384", parameters={"kid": "p384"}))


# --- attacks ------------------------------------------------------------------------------------------


def replace_disclosure(presentation: str, name: str, value: Any) -> str:
    parsed = parse_sd_jwt(presentation)
    swapped = []
    for item in parsed.disclosures:
        content = json.loads(_decode(item))
        if len(content) == 3 and content[1] == name:
            content[2] = value
            item = b64url(json.dumps(content).encode())
        swapped.append(item)
    return "~".join([parsed.issuer_jwt, *swapped]) + "~"


def test_a_tampered_disclosure_is_refused() -> None:
    tampered = replace_disclosure(present(held(), EVERYTHING), "family_name", "Wong")
    assert reason(tampered) == "disclosure_not_referenced"


def test_a_disclosure_whose_digest_was_removed_is_refused() -> None:
    credential = held()
    assert reason(resigned(credential, lambda c: c.update(_sd=c["_sd"][1:]))) == "disclosure_not_referenced"
    parsed = parse_sd_jwt(credential)
    header, payload, signature = parsed.issuer_jwt.split(".")
    claims = json.loads(_decode(payload))
    claims["_sd"] = claims["_sd"][1:]
    unsigned = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert reason("~".join([unsigned, *parsed.disclosures]) + "~") == "signature_invalid"


def test_an_added_or_repeated_disclosure_is_refused() -> None:
    presentation = present(held(), {"family_name": True})
    stranger = disclosure("c2FsdA", "is_admin", True)
    assert reason(presentation + stranger + "~") == "disclosure_not_referenced"
    parsed = parse_sd_jwt(presentation)
    assert reason(presentation + parsed.disclosures[0] + "~") == "disclosure_repeated"


def test_a_digest_signed_twice_is_refused_even_when_not_disclosed() -> None:
    credential = held()
    assert reason(resigned(credential, lambda c: c["_sd"].append(c["_sd"][0]))) == "disclosure_repeated"
    twice = resigned(credential, lambda c: c.update(again=[c["classes"][0]]))
    assert reason(twice) == "disclosure_repeated"
    assert reason(present(twice, {})) == "disclosure_repeated"  # withheld or not: RFC 9901 §7.1 step 4


def test_disclosures_of_the_wrong_shape_or_with_reserved_names_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        issue_sd_jwt({"_sd": Disclosable(1)}, ISSUER_KEY)
    element = disclosure("c2FsdA", "an element")
    member = disclosure("c2FsdA", "name", "a member")
    for bad in (disclosure("c2FsdA", "_sd", 1), disclosure("c2FsdA", "...", 1), element, disclosure(1, "n", 1)):
        assert reason(resigned(held(), lambda c, d=bad: c["_sd"].append(digest(d)), bad)) == "disclosure_invalid"
    assert reason(resigned(held(), lambda c: c.update(list=[{"...": digest(member)}]), member)) == "disclosure_invalid"
    not_json = b64url(b"[not json")
    assert reason(resigned(held(), lambda c: c["_sd"].append(digest(not_json)), not_json)) == "disclosure_invalid"
    nested_alg = resigned(held(), lambda c: c.update(inner={"_sd_alg": "sha-256"}))
    assert reason(nested_alg) == "disclosure_invalid"
    assert reason(resigned(held(), lambda c: c.update(_sd_alg="sha-1"))) == "disclosure_invalid"
    mixed = resigned(held(), lambda c: c.update(list=[{"...": "x", "other": 1}]))
    assert reason(mixed) == "disclosure_invalid"
    clash = disclosure("c2FsdA", "licence_number", "forged")
    assert reason(resigned(held(), lambda c: c["_sd"].append(digest(clash)), clash)) == "claim_conflict"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"audience": "https://someone.else"}, "kb_audience_mismatch"),
        ({"nonce": "another"}, "kb_nonce_mismatch"),
        ({"issued_at": NOW - 3600}, "kb_stale"),
        ({"issued_at": NOW + 3600}, "kb_stale"),
        ({"holder_key": ECKey.generate_key("P-256")}, "kb_invalid"),
        ({"holder_key": OKPKey.generate_key("Ed25519")}, "kb_invalid"),
    ],
)
def test_a_wrong_key_binding_is_refused(overrides: dict[str, Any], expected: str) -> None:
    assert reason(bound(held(), **overrides)) == expected


def test_a_key_binding_for_another_presentation_or_none_at_all_is_refused() -> None:
    full, partial = bound(held()), bound(held(), {"family_name": True})
    moved = parse_sd_jwt(partial).presented + parse_sd_jwt(full).key_binding  # type: ignore[operator]
    assert reason(moved) == "kb_sd_hash_mismatch"
    assert reason(present(held(), EVERYTHING), require_key_binding=True) == "kb_missing"


def test_key_bindings_with_alg_none_hmac_a_wrong_typ_or_no_holder_key_are_refused() -> None:
    presentation = parse_sd_jwt(bound(held())).presented
    claims = {"iat": NOW, "aud": VERIFIER, "nonce": NONCE, "sd_hash": digest(presentation)}
    none_kb = (
        b64url(json.dumps({"alg": "none", "typ": "kb+jwt"}).encode()) + "." + b64url(json.dumps(claims).encode()) + "."
    )
    assert reason(presentation + none_kb) == "kb_invalid"
    secret = OctKey.import_key(json.dumps(HOLDER_KEY.as_dict(private=False)).encode())
    hmac_kb = jws.serialize_compact({"alg": "HS256", "typ": "kb+jwt"}, json.dumps(claims), secret, algorithms=["HS256"])
    assert reason(presentation + hmac_kb) == "kb_invalid"
    assert reason(presentation + sign_jwt({"typ": "jwt"}, claims, HOLDER_KEY)) == "kb_invalid"
    unbound = issue_sd_jwt({"vct": VCT}, ISSUER_KEY)
    kb = sign_jwt({"typ": "kb+jwt"}, {**claims, "sd_hash": digest(unbound)}, HOLDER_KEY)
    assert reason(unbound + kb) == "kb_invalid"


def test_alg_none_hmac_and_unknown_keys_are_refused() -> None:
    parsed = parse_sd_jwt(held())
    _header, payload, _ = parsed.issuer_jwt.split(".")
    none_header = b64url(json.dumps({"alg": "none", "typ": "dc+sd-jwt", "kid": "issuer-1"}).encode())
    assert reason(f"{none_header}.{payload}.~") == "header_invalid"
    hmac_header = {"alg": "HS256", "typ": "dc+sd-jwt", "kid": "issuer-1"}
    secret = OctKey.import_key(json.dumps(ISSUER_KEY.as_dict(private=False)).encode())
    confused = jws.serialize_compact(hmac_header, _decode(payload), secret, algorithms=["HS256"])
    assert reason(confused + "~") == "header_invalid"
    assert reason(confused + "~", KeySet([secret])) == "header_invalid"  # even with a symmetric key on offer
    other = ECKey.generate_key("P-256", parameters={"kid": "issuer-1"})
    assert reason(issue_sd_jwt({"vct": VCT}, other)) == "signature_invalid"
    stranger = ECKey.generate_key("P-256", parameters={"kid": "someone"})
    assert reason(issue_sd_jwt({"vct": VCT}, stranger)) == "unknown_issuer_key"
    ed_named_like_issuer = OKPKey.generate_key("Ed25519", parameters={"kid": "issuer-1"})
    assert reason(issue_sd_jwt({"vct": VCT}, ed_named_like_issuer)) == "signature_invalid"  # alg and key type agree


def test_critical_headers_are_refused_and_unknown_ones_ignored() -> None:
    assert verify_sd_jwt(held(extra_header={"x-department": "td"}), ISSUER_KEYS, now=NOW).header["x-department"] == "td"
    header = b64url(json.dumps({"alg": "ES256", "typ": "dc+sd-jwt", "kid": "issuer-1", "crit": ["exp"]}).encode())
    payload = parse_sd_jwt(held()).issuer_jwt.split(".")[1]
    signature = b64url(b"\0" * 64)
    assert reason(f"{header}.{payload}.{signature}~") == "header_invalid"


def test_expired_and_not_yet_valid_credentials_are_refused_with_a_little_leeway() -> None:
    assert reason(issued({**PERSON, "exp": NOW - 3600})) == "expired"
    assert reason(issued({**PERSON, "nbf": NOW + 3600})) == "not_yet_valid"
    assert reason(issued({**PERSON, "exp": "tomorrow"})) == "malformed"
    assert verify_sd_jwt(issued({**PERSON, "exp": NOW - 30, "nbf": NOW + 30}), ISSUER_KEYS, now=NOW).claims
    late = verify_sd_jwt(issued({**PERSON, "exp": NOW - 3600}), ISSUER_KEYS, now=NOW, check_period=False)
    assert late.claims["exp"] == NOW - 3600  # the caller reports expiry itself


def test_malformed_input_is_refused_as_malformed() -> None:
    for text in ("", "abc", "a.b~", "~~", "x" * 70_000, "é.b.c~", "a.b.c~~", "a.b.c~d~e", None, 42):
        assert reason(text) in {"malformed", "header_invalid"}  # type: ignore[arg-type]
    assert reason("e30.e30.AA~") == "header_invalid"
