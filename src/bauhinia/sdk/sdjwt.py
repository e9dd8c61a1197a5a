"""SD-JWT (RFC 9901) with the SD-JWT VC profile (draft-ietf-oauth-sd-jwt-vc): issuing, presenting with
key binding, and verifying.

- **Issuer**: claims whose values are wrapped in ``Disclosable`` become disclosures (object members
  and array elements, nested to any depth); the issuer signs the rest with their digests
  (``_sd_alg: sha-256``), optional decoy digests, and binds the credential to the holder's key
  (``cnf.jwk``). The SD-JWT VC claims (``iss``, ``nbf``, ``exp``, ``cnf``, ``vct``, ``status``…) are
  never disclosable: a holder must not be able to drop an expiry or a status reference.
- **Holder**: ``present`` keeps only the disclosures a selection names and adds a Key Binding JWT
  (``typ: kb+jwt``) over the presentation, for one verifier (``aud``) and one ``nonce``.
- **Verifier**: ``verify_sd_jwt`` checks the issuer's signature (an allow-list of ES256 and EdDSA
  over Ed25519, by the key its ``kid`` names), the type (``dc+sd-jwt``, or the earlier ``vc+sd-jwt``),
  every disclosure (referenced exactly once, well formed, no digest twice), the validity period and,
  when present or required, the key binding; it returns the disclosed claims.

Every refusal is a ``CredentialError`` with one of ``REASONS`` (stable codes a page can translate)
and a sentence for a person. Only the compact serialization is produced and accepted: RFC 9901 §8
makes the JWS JSON serialization optional and no part of the platform uses it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import ECKey, Key, KeySet, OKPKey
from joserfc.jws import JWSRegistry

from bauhinia.sdk.jose import Invalid, _b64decode, _header, b64url

VC_TYP = "dc+sd-jwt"  # the current SD-JWT VC draft's typ; issued
ACCEPTED_TYPS = frozenset({"dc+sd-jwt", "vc+sd-jwt"})  # vc+sd-jwt: the drafts' name until late 2024
KB_TYP = "kb+jwt"
SD_ALG = "sha-256"
ALGORITHMS = ("ES256", "Ed25519", "EdDSA")  # the only signatures accepted; EdDSA only over Ed25519
LEEWAY = 60  # seconds of clock difference tolerated
KB_MAX_AGE = 300  # a key binding older than this is not fresh
MAX_SD_JWT = 64 * 1024
MAX_DEPTH = 16
RESERVED = ("_sd", "...")
# SD-JWT VC §3.2.2: these (and anything inside them) are never in a disclosure
NEVER_DISCLOSED = frozenset({"iss", "nbf", "exp", "cnf", "vct", "vct#integrity", "aka_vcts", "status"})

REASONS = {
    "malformed": "The credential is not a readable SD-JWT.",
    "header_invalid": "The credential's header is not acceptable (algorithm, type or key id).",
    "unknown_issuer_key": "The credential was not signed by a key of the issuer it names.",
    "signature_invalid": "The issuer's signature does not match the credential.",
    "disclosure_invalid": "A disclosed claim is malformed.",
    "disclosure_not_referenced": "A disclosed claim is not part of what the issuer signed.",
    "disclosure_repeated": "A disclosed claim appears more than once.",
    "claim_conflict": "A disclosed claim clashes with a claim of the same name.",
    "not_yet_valid": "The credential is not valid yet.",
    "expired": "The credential has expired.",
    "kb_missing": "The presentation is not bound to the holder's key.",
    "kb_invalid": "The holder's key binding is malformed or not signed by the credential's holder key.",
    "kb_sd_hash_mismatch": "The holder's key binding was made for another presentation.",
    "kb_audience_mismatch": "The presentation was made for another verifier.",
    "kb_nonce_mismatch": "The presentation was made for another request (nonce).",
    "kb_stale": "The holder's key binding is not fresh.",
}

SigningKey = ECKey | OKPKey


class CredentialError(ValueError):
    """A credential or presentation refused; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        assert reason in REASONS
        super().__init__(detail or REASONS[reason])
        self.reason = reason


@dataclass(frozen=True)
class Disclosable:
    """A value the holder may leave out: an object member's value or an array element."""

    value: Any


def _digest(disclosure: str) -> str:
    return b64url(hashlib.sha256(disclosure.encode("ascii")).digest())


def _salt() -> str:
    return b64url(secrets.token_bytes(16))


# --- signatures ----------------------------------------------------------------------------------------


def _allowed_algorithms() -> dict[str, JWSAlgModel]:
    known = JWSRegistry.algorithms
    # RFC 8037's "EdDSA" names any Edwards curve; RFC 9864 deprecates it for "Ed25519". We accept it
    # as Ed25519 only, by joserfc's Ed25519 model under the old name (joserfc's own EdDSA warns).
    eddsa = copy.copy(known["Ed25519"])
    eddsa.name = "EdDSA"
    return {"ES256": known["ES256"], "Ed25519": known["Ed25519"], "EdDSA": eddsa}


class _AllowList(JWSRegistry):
    """A JWS registry that knows only ALGORITHMS: none, HMAC and RSA cannot even be looked up."""

    algorithms = _allowed_algorithms()


# strict_check_header=False: unknown header parameters are ignored (RFC 7515 §4); crit is refused below
_JWS = _AllowList(algorithms=ALGORITHMS, strict_check_header=False)


def signing_alg(key: SigningKey) -> str:
    """The ``alg`` a key signs with: ES256 for EC P-256, Ed25519 (RFC 9864) for an Ed25519 key."""
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return "ES256"
    if isinstance(key, OKPKey) and key.curve_name == "Ed25519":
        return "Ed25519"
    raise ValueError("a signing key must be EC P-256 or Ed25519")


def sign_jwt(header: Mapping[str, Any], claims: Mapping[str, Any], key: SigningKey) -> str:
    """A compact JWS of ``claims``; ``alg`` follows the key, never the caller's header."""
    protected = {**header, "alg": signing_alg(key)}
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(protected, payload, key, algorithms=[protected["alg"]], registry=_JWS)


def _signed_payload(token: str, key: Key) -> Any:
    """The JSON payload of a JWS ``key`` signed with an allowed alg (the alg model checks the key type)."""
    return json.loads(jws.deserialize_compact(token, key, algorithms=ALGORITHMS, registry=_JWS).payload)


def verify_jwt(token: object, keys: KeySet, typs: Collection[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS of one of ``typs``, signed by the key in ``keys`` its kid names.

    Refusals: ``malformed``, ``header_invalid`` (alg outside ALGORITHMS, typ, no kid, crit),
    ``unknown_issuer_key``, ``signature_invalid``.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise CredentialError("malformed")
    try:
        header = _header(token.split(".")[0], "JWT")
    except Invalid as exc:
        raise CredentialError("malformed") from exc
    kid = header.get("kid")
    if header.get("alg") not in ALGORITHMS or header.get("typ") not in typs or not isinstance(kid, str):
        raise CredentialError("header_invalid")
    if "crit" in header:
        raise CredentialError("header_invalid", "Critical header parameters are not accepted.")
    matching = [k for k in keys.keys if k.kid == kid]
    if not matching:
        raise CredentialError("unknown_issuer_key")
    try:
        payload = _signed_payload(token, matching[0])
    except (JoseError, ValueError) as exc:
        raise CredentialError("signature_invalid") from exc
    if not isinstance(payload, dict):
        raise CredentialError("malformed")
    return header, payload


# --- issuer -------------------------------------------------------------------------------------------


@dataclass
class _Issuing:
    salt: Callable[[], str]
    disclosures: list[str] = field(default_factory=list)

    def conceal(self, value: Any) -> Any:
        """The value as signed: Disclosable members and elements replaced by digests (depth first)."""
        if isinstance(value, Disclosable):
            raise ValueError("Disclosable marks an object member's value or an array element")
        if isinstance(value, Mapping):
            plain: dict[str, Any] = {}
            digests = []
            for name, member in value.items():
                if name in RESERVED:
                    raise ValueError(f"{name!r} is reserved in SD-JWT")
                if isinstance(member, Disclosable):
                    digests.append(self._disclose([self.salt(), name, self.conceal(member.value)]))
                else:
                    plain[name] = self.conceal(member)
            if digests:
                plain["_sd"] = sorted(digests)  # sorted: the order must not reveal the claims' order
            return plain
        if isinstance(value, list):
            return [
                {"...": self._disclose([self.salt(), self.conceal(e.value)])}
                if isinstance(e, Disclosable)
                else self.conceal(e)
                for e in value
            ]
        return value

    def _disclose(self, content: list[Any]) -> str:
        disclosure = b64url(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode())
        self.disclosures.append(disclosure)
        return _digest(disclosure)


def _marks_disclosable(value: Any) -> bool:
    if isinstance(value, Disclosable):
        return True
    if isinstance(value, Mapping):
        return any(_marks_disclosable(v) for v in value.values())
    if isinstance(value, list):
        return any(_marks_disclosable(v) for v in value)
    return False


def issue_sd_jwt(
    claims: Mapping[str, Any],
    issuer_key: SigningKey,
    *,
    holder_jwk: Mapping[str, Any] | None = None,
    typ: str = VC_TYP,
    extra_header: Mapping[str, Any] | None = None,
    salt: Callable[[], str] = _salt,
    decoys: int = 0,
) -> str:
    """The SD-JWT (issuer-signed JWT and every disclosure, ``~``-separated and ending in ``~``).

    ``claims`` carries the registered claims too (``iss``, ``iat``, ``exp``, ``vct``, ``status``…), and
    ``Disclosable`` values where the holder may choose; ``holder_jwk`` becomes ``cnf.jwk``; ``decoys``
    adds top-level digests that match no disclosure; ``salt`` is injectable for reproducible tests.
    Signed ES256 (EC P-256 key) or Ed25519, with the key's ``kid``.
    """
    for name in NEVER_DISCLOSED & set(claims):
        if _marks_disclosable(claims[name]):
            raise ValueError(f"the {name} claim must not be selectively disclosable (SD-JWT VC)")
    issuing = _Issuing(salt)
    payload = issuing.conceal(dict(claims))
    if decoys:
        payload["_sd"] = sorted([*payload.get("_sd", []), *(_digest(_salt()) for _ in range(decoys))])
    payload["_sd_alg"] = SD_ALG
    if holder_jwk is not None:
        payload["cnf"] = {"jwk": dict(holder_jwk)}
    if not issuer_key.kid:
        raise ValueError("the issuer's key needs a kid")
    issuer_jwt = sign_jwt({"kid": issuer_key.kid, **(extra_header or {}), "typ": typ}, payload, issuer_key)
    return "~".join([issuer_jwt, *issuing.disclosures]) + "~"


# --- parsing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SdJwt:
    """The parts of a compact SD-JWT or SD-JWT+KB, unverified."""

    issuer_jwt: str
    disclosures: list[str]
    key_binding: str | None

    @property
    def presented(self) -> str:
        """The part a key binding's ``sd_hash`` covers: everything up to and including the last ``~``."""
        return "~".join([self.issuer_jwt, *self.disclosures]) + "~"


def parse_sd_jwt(text: object) -> SdJwt:
    """Split a compact SD-JWT (``jwt~d1~…~``) or SD-JWT+KB (``jwt~d1~…~kb``); nothing is verified."""
    if not isinstance(text, str) or not text.isascii() or len(text) > MAX_SD_JWT or "~" not in text:
        raise CredentialError("malformed", "This is not an SD-JWT in compact form.")
    parts = text.strip().split("~")
    issuer_jwt, middle, last = parts[0], parts[1:-1], parts[-1]
    if issuer_jwt.count(".") != 2 or any(not d for d in middle) or (last and last.count(".") != 2):
        raise CredentialError("malformed")
    return SdJwt(issuer_jwt, middle, last or None)


# --- holder --------------------------------------------------------------------------------------------


Selection = Mapping[str, Any] | list[Any] | bool | None


def selection_from_paths(paths: Iterable[Sequence[str | int]]) -> dict[str, Any]:
    """The selection ``present`` takes, from claim paths: ``[("address", "district"), ("classes", 1)]``
    discloses each named claim and every claim on the way to it, nothing below it."""
    root: dict[str, Any] = {}
    for path in paths:
        if not path or not isinstance(path[0], str):
            raise ValueError("a claim path starts with a claim name")
        node: Any = root
        for position, step in enumerate(path):
            following = path[position + 1] if position + 1 < len(path) else None
            wanted: Any = True if following is None else {} if isinstance(following, str) else []
            node = _select_step(node, step, wanted)
    return root


def _select_step(node: Any, step: str | int, wanted: Any) -> Any:
    if isinstance(node, list) and isinstance(step, int) and not isinstance(step, bool) and step >= 0:
        node.extend([False] * (step + 1 - len(node)))
        current = node[step]
    elif isinstance(node, dict) and isinstance(step, str):
        current = node.get(step)
    else:
        raise ValueError("a claim path's names and indexes must follow the claims' objects and arrays")
    if isinstance(current, dict | list):
        if wanted is True or type(current) is type(wanted):
            return current  # already chosen, with claims below it
        raise ValueError("two claim paths disagree on whether a claim is an object or an array")
    node[step] = wanted
    return wanted


def present(
    sd_jwt: str,
    selection: Selection,
    *,
    holder_key: SigningKey | None = None,
    audience: str | None = None,
    nonce: str | None = None,
    issued_at: int | None = None,
) -> str:
    """Keep the disclosures ``selection`` names (a structure like the claims: ``True`` or a nested
    structure discloses a claim; see ``selection_from_paths``), and add a Key Binding JWT
    (``aud``, ``nonce``, ``iat``, ``sd_hash``) signed by ``holder_key`` when one is given."""
    parsed = parse_sd_jwt(sd_jwt)
    payload = _unverified_payload(parsed.issuer_jwt)
    by_digest = {_digest(d): d for d in parsed.disclosures}
    kept: list[str] = []
    _choose(payload, selection, by_digest, kept)
    presentation = SdJwt(parsed.issuer_jwt, kept, None).presented
    if holder_key is None:
        return presentation
    claims = {
        "iat": int(time.time()) if issued_at is None else issued_at,
        "aud": audience,
        "nonce": nonce,
        "sd_hash": _digest(presentation),
    }
    return presentation + sign_jwt({"typ": KB_TYP}, claims, holder_key)


def _choose(value: Any, selection: Selection, by_digest: dict[str, str], kept: list[str]) -> None:
    if isinstance(value, dict):
        chosen = selection if isinstance(selection, Mapping) else {}
        for digest in value.get("_sd", []):
            disclosure = by_digest.get(digest)
            if disclosure is None:
                continue
            _, name, inner = _decoded(disclosure, 3)
            if chosen.get(name):
                kept.append(disclosure)
                _choose(inner, chosen.get(name), by_digest, kept)
        for name, inner in value.items():
            if name not in ("_sd", "_sd_alg"):
                _choose(inner, chosen.get(name), by_digest, kept)
    elif isinstance(value, list):
        chosen_list = selection if isinstance(selection, list) else []
        for index, element in enumerate(value):
            pick = chosen_list[index] if index < len(chosen_list) else None
            if isinstance(element, dict) and set(element) == {"..."}:
                disclosure = by_digest.get(element["..."])
                if disclosure is not None and pick:
                    kept.append(disclosure)
                    _choose(_decoded(disclosure, 2)[1], pick, by_digest, kept)
            else:
                _choose(element, pick, by_digest, kept)


# --- verifier ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedCredential:
    claims: dict[str, Any]  # the issuer's claims with the disclosed ones, digests removed
    header: dict[str, Any]
    issuer_jwt: str
    key_bound: bool


def verify_sd_jwt(
    text: object,
    issuer_keys: KeySet,
    *,
    require_key_binding: bool = False,
    audience: str | None = None,
    nonce: str | None = None,
    now: int | None = None,
    typs: frozenset[str] = ACCEPTED_TYPS,
    check_period: bool = True,
    issuer: str | None = None,
) -> VerifiedCredential:
    """Verify an SD-JWT or a presentation of one (RFC 9901 §7.1 and §7.3, SD-JWT VC §3.4).

    ``issuer_keys`` is imported once by the caller (nothing is re-imported here but the holder's
    ``cnf.jwk``); ``issuer``, when given, must equal the ``iss`` claim. A key binding, when present,
    is always checked; ``audience`` and ``nonce``, when given, must match it. ``check_period=False``:
    the caller reports an expired credential itself, as one check of several.
    """
    parsed = parse_sd_jwt(text)
    moment = int(time.time()) if now is None else now
    header, payload = verify_jwt(parsed.issuer_jwt, issuer_keys, typs)
    if payload.get("_sd_alg", SD_ALG) != SD_ALG:
        raise CredentialError("disclosure_invalid", "Only sha-256 disclosure digests are accepted.")
    if any(_has_digests(payload[name]) for name in NEVER_DISCLOSED & set(payload)):
        raise CredentialError("disclosure_invalid", "The credential's status, key or type is partly disclosable.")
    claims = _processed(payload, parsed.disclosures)
    _check_vc_claims(claims, issuer)
    if check_period:
        _check_period(claims, moment)
    if parsed.key_binding is not None:
        _check_key_binding(parsed, claims, audience, nonce, moment)
    elif require_key_binding:
        raise CredentialError("kb_missing")
    return VerifiedCredential(claims, header, parsed.issuer_jwt, parsed.key_binding is not None)


@dataclass
class _Revealing:
    """One pass over the signed payload replacing digests with what the disclosures say (§7.1 step 3)."""

    disclosures: dict[str, str]  # digest -> disclosure
    seen: set[str] = field(default_factory=set)  # every digest met, disclosed or not

    def meet(self, digest: object) -> str | None:
        """The disclosure for an embedded digest, None if withheld or a decoy; no digest twice (step 4)."""
        if not isinstance(digest, str):
            raise CredentialError("disclosure_invalid")
        if digest in self.seen:
            raise CredentialError("disclosure_repeated")
        self.seen.add(digest)
        return self.disclosures.get(digest)

    def reveal(self, value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CredentialError("disclosure_invalid", "The credential's claims are nested too deeply.")
        if isinstance(value, dict):
            return self._reveal_object(value, depth)
        if isinstance(value, list):
            return self._reveal_array(value, depth)
        return value

    def _reveal_array(self, value: list[Any], depth: int) -> list[Any]:
        revealed = []
        for element in value:
            if isinstance(element, dict) and "..." in element:
                if set(element) != {"..."}:
                    raise CredentialError("disclosure_invalid")
                disclosure = self.meet(element["..."])
                if disclosure is not None:  # an element withheld is left out
                    revealed.append(self.reveal(_decoded(disclosure, 2)[1], depth + 1))
            else:
                revealed.append(self.reveal(element, depth + 1))
        return revealed

    def _reveal_object(self, value: dict[str, Any], depth: int) -> dict[str, Any]:
        digests = value.get("_sd", [])
        if not isinstance(digests, list) or (depth > 0 and "_sd_alg" in value):
            raise CredentialError("disclosure_invalid")
        revealed = {name: self.reveal(v, depth + 1) for name, v in value.items() if name != "_sd"}
        for digest in digests:
            disclosure = self.meet(digest)
            if disclosure is None:
                continue  # withheld by the holder, or a decoy
            _, name, inner = _decoded(disclosure, 3)
            if not isinstance(name, str) or name in RESERVED:
                raise CredentialError("disclosure_invalid")
            if depth == 0 and name in NEVER_DISCLOSED:
                raise CredentialError("disclosure_invalid", f"The credential's {name} must not be disclosed apart.")
            if name in revealed:
                raise CredentialError("claim_conflict")
            revealed[name] = self.reveal(inner, depth + 1)
        return revealed


def _processed(payload: dict[str, Any], disclosures: list[str]) -> dict[str, Any]:
    """The Processed SD-JWT Payload: disclosed claims in place, digests and ``_sd_alg`` gone."""
    by_digest: dict[str, str] = {}
    for disclosure in disclosures:
        digest = _digest(disclosure)
        if digest in by_digest:
            raise CredentialError("disclosure_repeated")
        by_digest[digest] = disclosure
    revealing = _Revealing(by_digest)
    claims: dict[str, Any] = revealing.reveal(payload, 0)
    if set(by_digest) - revealing.seen:
        raise CredentialError("disclosure_not_referenced")
    claims.pop("_sd_alg", None)
    return claims


def _has_digests(value: Any) -> bool:
    if isinstance(value, dict):
        return "_sd" in value or "..." in value or any(_has_digests(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_digests(v) for v in value)
    return False


def _check_vc_claims(claims: dict[str, Any], issuer: str | None) -> None:
    """SD-JWT VC §3.2.2: the credential names its type (and, when asked, the expected issuer)."""
    if not isinstance(claims.get("vct"), str) or not claims["vct"]:
        raise CredentialError("malformed", "The credential names no type (vct).")
    if issuer is not None and claims.get("iss") != issuer:
        raise CredentialError("unknown_issuer_key", "The credential names another issuer.")


def _decoded(disclosure: str, length: int) -> list[Any]:
    try:
        content = json.loads(_b64decode(disclosure))
    except (ValueError, TypeError) as exc:
        raise CredentialError("disclosure_invalid") from exc
    if not isinstance(content, list) or len(content) != length or not isinstance(content[0], str):
        raise CredentialError("disclosure_invalid")
    return content


def _is_time(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_period(claims: dict[str, Any], moment: int) -> None:
    for name in ("iat", "nbf", "exp"):
        if name in claims and not _is_time(claims[name]):
            raise CredentialError("malformed", f"The credential's {name} is not a time.")
    if "nbf" in claims and claims["nbf"] > moment + LEEWAY:
        raise CredentialError("not_yet_valid")
    if "exp" in claims and claims["exp"] <= moment - LEEWAY:
        raise CredentialError("expired")


def _holder_key(claims: dict[str, Any]) -> Key:
    cnf = claims.get("cnf")
    jwk = cnf.get("jwk") if isinstance(cnf, dict) else None
    if not isinstance(jwk, dict):
        raise CredentialError("kb_invalid", "The credential names no holder key (cnf.jwk).")
    public = {k: v for k, v in jwk.items() if k != "d"}
    try:
        if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            return ECKey.import_key(public)
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            return OKPKey.import_key(public)
    except (JoseError, ValueError, TypeError) as exc:
        raise CredentialError("kb_invalid", "The credential's holder key is not a valid key.") from exc
    raise CredentialError("kb_invalid", "The credential's holder key is neither EC P-256 nor Ed25519.")


def _check_key_binding(
    parsed: SdJwt, claims: dict[str, Any], audience: str | None, nonce: str | None, moment: int
) -> None:
    assert parsed.key_binding is not None
    holder = _holder_key(claims)
    try:
        header = _header(parsed.key_binding.split(".")[0], "key binding")
        if header.get("alg") not in ALGORITHMS or header.get("typ") != KB_TYP or "crit" in header:
            raise CredentialError("kb_invalid")
        bound = _signed_payload(parsed.key_binding, holder)
    except (Invalid, JoseError, ValueError) as exc:
        raise CredentialError("kb_invalid") from exc
    if not isinstance(bound, dict):
        raise CredentialError("kb_invalid")
    if bound.get("sd_hash") != _digest(parsed.presented):
        raise CredentialError("kb_sd_hash_mismatch")
    if audience is not None and bound.get("aud") != audience:
        raise CredentialError("kb_audience_mismatch")
    if nonce is not None and bound.get("nonce") != nonce:
        raise CredentialError("kb_nonce_mismatch")
    issued = bound.get("iat")
    if not _is_time(issued) or not moment - KB_MAX_AGE <= issued <= moment + LEEWAY:
        raise CredentialError("kb_stale")


def _unverified_payload(issuer_jwt: str) -> dict[str, Any]:
    """The holder's own credential, read to choose disclosures (the verifier checks the signature)."""
    try:
        payload = json.loads(_b64decode(issuer_jwt.split(".")[1]))
    except (ValueError, IndexError) as exc:
        raise CredentialError("malformed") from exc
    if not isinstance(payload, dict):
        raise CredentialError("malformed")
    return payload


def credential_digest(sd_jwt: str) -> str:
    """base64url SHA-256 of the issuer-signed JWT: how the transparency log and status checks name it."""
    return _digest(parse_sd_jwt(sd_jwt).issuer_jwt)
