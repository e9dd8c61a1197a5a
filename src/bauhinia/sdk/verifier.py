"""Verifying an e-Proof credential the way a bank, a shop or a border officer would: offline, against a
trust file fetched beforehand from the platform's discovery document.

The trust file pins the log's verifier key (C2SP vkey), the issuers' keys, and holds the Status List
Tokens as last fetched. ``verify`` accepts what a holder hands over:

- a printed code (``BH1:…``, the QR form);
- an SD-JWT VC or a presentation of one (``…~…~``);
- a credential file: JSON ``{"credential": <either of the above>, "proof": <tlog-proof bundle>}``.

Each check gives its own outcome, so a page or a command can say exactly what held and what did not.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, KeySet

from bauhinia.sdk import printed as printed_form
from bauhinia.sdk import sdjwt
from bauhinia.sdk.status_list import STATUS_NAMES, StatusListError, status_reference, verify_status_list_token
from bauhinia.sdk.transparency import LogProofError, NoteVerifier, parse_proof_bundle, verify_proof_bundle

CHECKS = ("signature", "log", "status", "validity", "holder")


@dataclass
class Trust:
    """What a verifier pins and caches (the trust file)."""

    base_url: str
    log_vkey: str
    issuers: dict[str, dict[str, Any]]  # member id -> {"id": issuer URL, "jwks": {...}}
    status_lists: dict[str, str]  # list id -> URI
    status_tokens: dict[str, str]  # URI -> Status List Token
    credential_types: dict[str, dict[str, Any]]  # type id -> its registration (names, claim titles)
    fetched_at: int
    witnesses: list[str] = field(default_factory=list)  # witnesses' vkeys whose cosignatures are shown

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Trust:
        values = json.loads(text)
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})


def fetch_trust(base_url: str, http: httpx.Client | None = None) -> Trust:
    """Fetch the discovery document and every status list: the trust file for offline verification."""
    client = http or httpx.Client(timeout=10, follow_redirects=False)
    try:
        document = client.get(f"{base_url.rstrip('/')}/.well-known/bauhinia-eproof").raise_for_status().json()
        tokens = {uri: client.get(uri).raise_for_status().text for uri in document["status_lists"].values()}
    finally:
        if http is None:
            client.close()
    return trust_from(document, tokens)


def trust_from(document: dict[str, Any], status_tokens: dict[str, str]) -> Trust:
    """The trust file from a discovery document and the Status List Tokens it names."""
    return Trust(
        base_url=str(document["issuer"]),
        log_vkey=document["log"]["vkey"],
        issuers=document["issuers"],
        status_lists=document["status_lists"],
        status_tokens=status_tokens,
        credential_types={t["id"]: t for t in document["credential_types"]},
        fetched_at=int(time.time()),
        witnesses=[w["vkey"] for w in document.get("witnesses", [])],
    )


@dataclass
class Verdict:
    form: str  # "printed", "sd-jwt" or "unknown"
    outcomes: dict[str, tuple[bool, str]] = field(default_factory=dict)  # check -> (passed, reason)
    unchecked: list[str] = field(default_factory=list)  # checks that need what was not handed over
    issuer: str | None = None
    type_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    expires_at: int | None = None
    status: str | None = None
    credential_id: str | None = None
    credential: str = ""  # what was verified (the credential itself, out of a credential file)
    witnessed: dict[str, int] = field(default_factory=dict)  # trusted witnesses that cosigned: name -> time

    @property
    def valid(self) -> bool:
        return bool(self.outcomes) and all(passed for passed, _ in self.outcomes.values())

    def fail(self, check: str, reason: str) -> Verdict:
        self.outcomes[check] = (False, reason)
        return self


def verify(
    text: str, trust: Trust, *, audience: str | None = None, nonce: str | None = None, now: int | None = None
) -> Verdict:
    """Every check on what the holder handed over; nothing here touches the network."""
    moment = int(time.time()) if now is None else now
    credential, proof = _unpacked(text.strip())
    if credential.startswith(printed_form.PREFIX):
        verdict = _printed(credential, trust, moment)
    elif "~" in credential:
        verdict = _sd_jwt(credential, trust, moment, audience, nonce)
    else:
        return Verdict("unknown").fail("signature", "malformed")
    verdict.credential = credential
    if verdict.outcomes.get("signature", (False, ""))[0]:
        if proof is None:
            verdict.unchecked.append("log")  # a printed code alone: its log entry is checked online
        else:
            verdict.outcomes["log"] = check_log_proof(credential, proof, trust, verdict)
    return verdict


def _unpacked(text: str) -> tuple[str, str | None]:
    if text.startswith("{"):
        try:
            packed = json.loads(text)
            return str(packed["credential"]).strip(), packed.get("proof")
        except (ValueError, KeyError, TypeError):
            return text, None
    return text, None


def _printed(text: str, trust: Trust, moment: int) -> Verdict:
    verdict = Verdict("printed")
    # Each key is pinned to its department: a code signed by one and naming another is refused, and a
    # key id two departments publish speaks for neither.
    keys: dict[bytes, printed_form.IssuerKey] = {}
    ambiguous: set[bytes] = set()
    for member, issuer in trust.issuers.items():
        for jwk in issuer["jwks"]["keys"]:
            public = ECKey.import_key(jwk).public_key
            if isinstance(public, ec.EllipticCurvePublicKey):
                kid = printed_form.key_id(public)
                if kid in keys and keys[kid].issuer != member:
                    ambiguous.add(kid)
                keys[kid] = printed_form.IssuerKey(member, public)
    for kid in ambiguous:
        del keys[kid]
    try:
        credential = printed_form.decode_printed(text, keys, check_expiry=False)
    except printed_form.PrintedCredentialError as exc:
        return verdict.fail("signature", exc.reason)
    verdict.outcomes["signature"] = (True, "")
    verdict.issuer, verdict.type_id, verdict.claims = credential.issuer, credential.type, credential.claims
    verdict.credential_id = credential.credential_id
    verdict.expires_at = credential.expires_at
    verdict.outcomes["validity"] = (credential.expires_at > moment, "" if credential.expires_at > moment else "expired")
    if credential.status is not None:
        uri = trust.status_lists.get(credential.status[0], "")
        verdict.outcomes["status"] = _status(trust, credential.issuer, uri, credential.status[1], verdict, moment)
    else:
        verdict.outcomes["status"] = (False, "no_status")
    return verdict


def _sd_jwt(text: str, trust: Trust, moment: int, audience: str | None, nonce: str | None) -> Verdict:
    verdict = Verdict("sd-jwt")
    try:
        unverified = sdjwt.parse_sd_jwt(text)
    except sdjwt.CredentialError as exc:
        return verdict.fail("signature", exc.reason)
    member = _issuer_of(unverified.issuer_jwt, trust)
    if member is None:
        return verdict.fail("signature", "unknown_issuer_key")
    keys = KeySet.import_key_set(trust.issuers[member]["jwks"])
    try:
        checked = sdjwt.verify_sd_jwt(text, keys, now=moment, audience=audience, nonce=nonce, check_period=False)
    except sdjwt.CredentialError as exc:
        check = "holder" if exc.reason.startswith("kb_") else "signature"
        return verdict.fail(check, exc.reason)
    claims = checked.claims
    verdict.credential_id = str(claims["jti"]) if isinstance(claims.get("jti"), str) else None
    verdict.outcomes["signature"] = (True, "")
    verdict.outcomes["holder"] = (True, "") if checked.key_bound else (True, "not_presented_with_key_binding")
    verdict.issuer = member
    verdict.type_id = str(claims.get("vct", "")).rsplit("/", 1)[-1]
    registered = {"iss", "iat", "exp", "nbf", "vct", "jti", "status", "cnf"}
    verdict.claims = {k: v for k, v in claims.items() if k not in registered}
    expires = claims.get("exp")
    verdict.expires_at = expires if isinstance(expires, int) else None
    alive = verdict.expires_at is None or verdict.expires_at > moment
    verdict.outcomes["validity"] = (alive, "" if alive else "expired")
    try:
        uri, index = status_reference(claims)
    except StatusListError:
        verdict.outcomes["status"] = (False, "no_status")
        return verdict
    verdict.outcomes["status"] = _status(trust, member, uri, index, verdict, moment)
    return verdict


def _issuer_of(issuer_jwt: str, trust: Trust) -> str | None:
    try:
        payload = json.loads(base64.urlsafe_b64decode(issuer_jwt.split(".")[1] + "=="))
    except (ValueError, IndexError):
        return None
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return next((member for member, issuer in trust.issuers.items() if issuer["id"] == iss), None)


def _status(trust: Trust, member: str, uri: str, index: int, verdict: Verdict, moment: int) -> tuple[bool, str]:
    token = trust.status_tokens.get(uri)
    if token is None or member not in trust.issuers:
        return False, "status_unknown"
    try:
        status_list = verify_status_list_token(
            token, KeySet.import_key_set(trust.issuers[member]["jwks"]), uri, now=moment
        )
        value = status_list.get(index)
    except StatusListError:
        return False, "status_unknown"
    verdict.status = STATUS_NAMES.get(value, "unknown")
    return value == 0, "" if value == 0 else verdict.status


def check_log_proof(credential: str, proof: str, trust: Trust, verdict: Verdict | None = None) -> tuple[bool, str]:
    """Whether the credential's issuance is in the log, by its proof bundle (offline); the trusted
    witnesses that cosigned the bundle's checkpoint go into ``verdict.witnessed``."""
    try:
        bundle = parse_proof_bundle(proof)
        entry = json.loads(bundle.extra or b"{}")
        if credential.startswith(printed_form.PREFIX):
            matches = entry.get("printed") == hashlib.sha256(credential.encode("ascii")).hexdigest()
        else:
            matches = entry.get("sd_jwt") == sdjwt.credential_digest(credential)
        if not matches or bundle.extra is None:
            return False, "log_entry_mismatch"
        witnesses = [NoteVerifier.from_vkey(v) for v in trust.witnesses]
        _, cosigned = verify_proof_bundle(proof, bundle.extra, NoteVerifier.from_vkey(trust.log_vkey), witnesses)
        if verdict is not None:
            verdict.witnessed = cosigned
    except (LogProofError, ValueError, sdjwt.CredentialError):
        return False, "log_proof_invalid"
    return True, ""


__all__ = ["CHECKS", "Trust", "Verdict", "check_log_proof", "fetch_trust", "trust_from", "verify"]
