"""SD-JWT (RFC 9901) with the SD-JWT VC profile: issuing, presenting with key binding, and verifying.

- **Issuer**: claims whose values are wrapped in ``Disclosable`` become disclosures (object members
  and array elements, nested to any depth); the issuer signs the rest with their digests
  (``_sd_alg: sha-256``) and binds the credential to the holder's key (``cnf.jwk``).
- **Holder**: ``present`` keeps only the disclosures a selection names and adds a Key Binding JWT
  (``typ: kb+jwt``) over the presentation, for one verifier (``aud``) and one ``nonce``.
- **Verifier**: ``verify_sd_jwt`` checks the issuer's signature (ES256, the key its ``kid`` names),
  the type, every disclosure (referenced exactly once, well formed), the validity period and, when
  required, the key binding; it returns the disclosed claims.

Every refusal is a ``CredentialError`` with one of ``REASONS`` (stable codes a page can translate)
and a sentence for a person. Only the compact serialization is produced and accepted (RFC 9901 §8's
JSON serialization is optional; no part of the platform uses it).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from bauhinia.sdk.jose import ES256, Invalid, _b64decode, _header, b64url, sign_with_header

VC_TYP = "dc+sd-jwt"
ACCEPTED_TYPS = frozenset({"dc+sd-jwt", "vc+sd-jwt"})  # the issue names vc+sd-jwt, the current draft dc+sd-jwt
KB_TYP = "kb+jwt"
SD_ALG = "sha-256"
LEEWAY = 60  # seconds of clock difference tolerated
KB_MAX_AGE = 300  # a key binding older than this is not fresh
MAX_SD_JWT = 64 * 1024
MAX_DEPTH = 16
RESERVED = ("_sd", "...")

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


# --- issuer -------------------------------------------------------------------------------------------


@dataclass
class _Issuing:
    salt: Any
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
                plain["_sd"] = sorted(digests)
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


def issue_sd_jwt(
    claims: Mapping[str, Any],
    issuer_key: ECKey,
    *,
    holder_jwk: Mapping[str, Any] | None = None,
    typ: str = VC_TYP,
    extra_header: Mapping[str, Any] | None = None,
    salt: Any = _salt,
    decoys: int = 0,
) -> str:
    """The SD-JWT (issuer-signed JWT and every disclosure) for these claims, signed ES256.

    ``claims`` carries the registered claims too (``iss``, ``iat``, ``exp``, ``vct``, ``status``…);
    ``holder_jwk`` becomes ``cnf.jwk``; ``decoys`` adds digests that match no disclosure.
    """
    issuing = _Issuing(salt)
    payload = issuing.conceal(dict(claims))
    if decoys:
        payload["_sd"] = sorted([*payload.get("_sd", []), *(_digest(_salt()) for _ in range(decoys))])
    payload["_sd_alg"] = SD_ALG
    if holder_jwk is not None:
        payload["cnf"] = {"jwk": dict(holder_jwk)}
    if not issuer_key.kid:
        raise ValueError("the issuer's key needs a kid")
    header = {"kid": issuer_key.kid, **(extra_header or {}), "alg": ES256, "typ": typ}
    issuer_jwt = sign_with_header(header, payload, issuer_key)
    return "~".join([issuer_jwt, *issuing.disclosures]) + "~"


# --- parsing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SdJwt:
    issuer_jwt: str
    disclosures: list[str]
    key_binding: str | None

    @property
    def presented(self) -> str:
        """The part a key binding's ``sd_hash`` covers: everything up to and including the last ``~``."""
        return "~".join([self.issuer_jwt, *self.disclosures]) + "~"


def parse_sd_jwt(text: object) -> SdJwt:
    if not isinstance(text, str) or not text.isascii() or len(text) > MAX_SD_JWT or "~" not in text:
        raise CredentialError("malformed", "This is not an SD-JWT in compact form.")
    parts = text.strip().split("~")
    issuer_jwt, middle, last = parts[0], parts[1:-1], parts[-1]
    if issuer_jwt.count(".") != 2 or any(not d for d in middle) or (last and last.count(".") != 2):
        raise CredentialError("malformed")
    return SdJwt(issuer_jwt, middle, last or None)


# --- holder --------------------------------------------------------------------------------------------


Selection = Mapping[str, Any] | list[Any] | bool | None


def present(
    sd_jwt: str,
    selection: Selection,
    *,
    holder_key: ECKey | None = None,
    audience: str | None = None,
    nonce: str | None = None,
    issued_at: int | None = None,
) -> str:
    """Keep the disclosures ``selection`` names (a structure like the claims: True or a nested
    structure discloses), and add a Key Binding JWT when a holder key is given."""
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
    return presentation + sign_with_header({"alg": ES256, "typ": KB_TYP}, claims, holder_key)


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
) -> VerifiedCredential:
    """Verify an SD-JWT or a presentation of one; see the module's docstring for what is checked
    (``check_period=False``: the caller reports an expired credential itself, as one check of several)."""
    parsed = parse_sd_jwt(text)
    moment = int(time.time()) if now is None else now
    header, payload = _issuer_payload(parsed.issuer_jwt, issuer_keys, typs)
    if payload.get("_sd_alg", SD_ALG) != SD_ALG:
        raise CredentialError("disclosure_invalid", "Only sha-256 disclosure digests are accepted.")
    disclosures: dict[str, str] = {}
    for disclosure in parsed.disclosures:
        digest = _digest(disclosure)
        if digest in disclosures:
            raise CredentialError("disclosure_repeated")
        disclosures[digest] = disclosure
    used: set[str] = set()
    claims = _reveal(payload, disclosures, used, 0)
    if set(disclosures) - used:
        raise CredentialError("disclosure_not_referenced")
    claims.pop("_sd_alg", None)
    if check_period:
        _check_period(claims, moment)
    if parsed.key_binding is not None:
        _check_key_binding(parsed, claims, audience, nonce, moment)
    elif require_key_binding:
        raise CredentialError("kb_missing")
    return VerifiedCredential(claims, header, parsed.issuer_jwt, parsed.key_binding is not None)


def _issuer_payload(issuer_jwt: str, keys: KeySet, typs: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = _header(issuer_jwt.split(".")[0], "credential")
    except Invalid as exc:
        raise CredentialError("malformed") from exc
    kid = header.get("kid")
    if header.get("alg") != ES256 or header.get("typ") not in typs or not isinstance(kid, str) or "crit" in header:
        raise CredentialError("header_invalid")
    matching = [k for k in keys.keys if k.kid == kid]
    if not matching:
        raise CredentialError("unknown_issuer_key")
    try:
        payload = json.loads(jws.deserialize_compact(issuer_jwt, matching[0], algorithms=[ES256]).payload)
    except (JoseError, ValueError) as exc:
        raise CredentialError("signature_invalid") from exc
    if not isinstance(payload, dict):
        raise CredentialError("malformed")
    return header, payload


def _reveal(value: Any, disclosures: dict[str, str], used: set[str], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CredentialError("disclosure_invalid", "The credential's claims are nested too deeply.")
    if isinstance(value, dict):
        return _reveal_object(value, disclosures, used, depth)
    if isinstance(value, list):
        revealed = []
        for element in value:
            if isinstance(element, dict) and "..." in element:
                digest = element["..."]
                if set(element) != {"..."} or not isinstance(digest, str):
                    raise CredentialError("disclosure_invalid")
                if digest in disclosures:
                    _mark_used(digest, used)
                    revealed.append(_reveal(_decoded(disclosures[digest], 2)[1], disclosures, used, depth + 1))
            else:
                revealed.append(_reveal(element, disclosures, used, depth + 1))
        return revealed
    return value


def _reveal_object(value: dict[str, Any], disclosures: dict[str, str], used: set[str], depth: int) -> dict[str, Any]:
    digests = value.get("_sd", [])
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise CredentialError("disclosure_invalid")
    if len(set(digests)) != len(digests):
        raise CredentialError("disclosure_repeated")
    revealed = {name: _reveal(v, disclosures, used, depth + 1) for name, v in value.items() if name != "_sd"}
    for digest in digests:
        if digest not in disclosures:
            continue  # withheld by the holder, or a decoy
        _mark_used(digest, used)
        _, name, inner = _decoded(disclosures[digest], 3)
        if not isinstance(name, str) or name in RESERVED:
            raise CredentialError("disclosure_invalid")
        if name in revealed:
            raise CredentialError("claim_conflict")
        revealed[name] = _reveal(inner, disclosures, used, depth + 1)
    return revealed


def _mark_used(digest: str, used: set[str]) -> None:
    if digest in used:
        raise CredentialError("disclosure_repeated")
    used.add(digest)


def _decoded(disclosure: str, length: int) -> list[Any]:
    try:
        content = json.loads(_b64decode(disclosure))
    except (ValueError, TypeError) as exc:
        raise CredentialError("disclosure_invalid") from exc
    if not isinstance(content, list) or len(content) != length or not isinstance(content[0], str):
        raise CredentialError("disclosure_invalid")
    return content


def _check_period(claims: dict[str, Any], moment: int) -> None:
    for name in ("iat", "nbf", "exp"):
        if name in claims and (not isinstance(claims[name], int) or isinstance(claims[name], bool)):
            raise CredentialError("malformed", f"The credential's {name} is not a time.")
    if "nbf" in claims and claims["nbf"] > moment + LEEWAY:
        raise CredentialError("not_yet_valid")
    if "exp" in claims and claims["exp"] <= moment - LEEWAY:
        raise CredentialError("expired")


def _check_key_binding(
    parsed: SdJwt, claims: dict[str, Any], audience: str | None, nonce: str | None, moment: int
) -> None:
    assert parsed.key_binding is not None
    jwk = claims.get("cnf", {}).get("jwk") if isinstance(claims.get("cnf"), dict) else None
    try:
        header = _header(parsed.key_binding.split(".")[0], "key binding")
        if header.get("alg") != ES256 or header.get("typ") != KB_TYP or not isinstance(jwk, dict):
            raise CredentialError("kb_invalid")
        holder = ECKey.import_key(jwk)
        bound = json.loads(jws.deserialize_compact(parsed.key_binding, holder, algorithms=[ES256]).payload)
    except (Invalid, JoseError, ValueError, TypeError) as exc:
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
    if not isinstance(issued, int) or not moment - KB_MAX_AGE <= issued <= moment + LEEWAY:
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
