"""Validating authorization requests: plain, pushed (PAR, RFC 9126) and signed (JAR, RFC 9101).

Until the redirect URI is known to be registered for the client, errors are shown to the
person (never redirected); after that they go back to the client with ``state`` and ``iss``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bauhinia.oidc import claims as claim_rules
from bauhinia.oidc import jose
from bauhinia.oidc.clients import Client, ClientRegistry
from bauhinia.oidc.schemas import GrantType

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
REQUEST_OBJECT_MAX_LIFETIME = 3600
PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
PROMPTS = {"none", "login", "consent"}
# Parameters we take from a request; anything else is ignored (RFC 6749 §3.1).
KNOWN_PARAMETERS = (
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "acr_values",
    "claims",
    "ui_locales",
    "login_hint",
    "dpop_jkt",
    "response_mode",
)
MAX_PARAMETER_LENGTH = 4096


class AuthorizeError(Exception):
    """An authorization error: redirected to the client when ``redirect_uri`` is set, else shown."""

    def __init__(self, error: str, description: str, *, redirect_uri: str | None = None, state: str | None = None):
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.redirect_uri, self.state = error, description, redirect_uri, state

    def location(self, issuer: str) -> str:
        assert self.redirect_uri is not None
        params = {"error": self.error, "error_description": self.description, "iss": issuer}
        if self.state is not None:
            params["state"] = self.state
        return _with_query(self.redirect_uri, params)


def _with_query(uri: str, params: dict[str, str]) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}"


def authorization_response(redirect_uri: str, code: str, state: str | None, issuer: str) -> str:
    """RFC 6749 §4.1.2 with RFC 9207's ``iss``."""
    params = {"code": code, "iss": issuer}
    if state is not None:
        params["state"] = state
    return _with_query(redirect_uri, params)


@dataclass(frozen=True)
class ValidRequest:
    """An authorization request that passed every check; stored as ``parameters`` while in progress."""

    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: set[str]
    max_age: int | None
    acr_values: list[str]
    essential_acr: list[str]
    claims: dict[str, Any] | None
    ui_locales: str | None
    dpop_jkt: str | None

    def as_parameters(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": self.scopes,
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "prompt": sorted(self.prompt),
            "max_age": self.max_age,
            "acr_values": self.acr_values,
            "essential_acr": self.essential_acr,
            "claims": self.claims,
            "ui_locales": self.ui_locales,
            "dpop_jkt": self.dpop_jkt,
        }

    @classmethod
    def from_parameters(cls, stored: dict[str, Any]) -> ValidRequest:
        return cls(**{**stored, "prompt": set(stored["prompt"])})

    def required_acr(self, client: Client) -> str | None:
        """The weakest acr this request accepts, or None when any will do.

        Each list (``acr_values``, the essential ``acr`` claim) is satisfied by its weakest
        member or anything stronger; the client's registered floor always applies.
        """
        floors = [client.metadata.required_acr] if client.metadata.required_acr else []
        for listed in (self.acr_values, self.essential_acr):
            known = [acr for acr in listed if claim_rules.acr_rank(acr) >= 0]
            if known:
                floors.append(min(known, key=claim_rules.acr_rank))
            elif listed and listed is self.essential_acr:
                floors.append("unknown")  # an essential acr we cannot provide
        if not floors:
            return None
        return max(floors, key=claim_rules.acr_rank) if "unknown" not in floors else "unknown"

    def items(self, client: Client) -> list[str]:
        wanted = claim_rules.requested_items(self.scopes, self.claims)
        return [item for item in wanted if item in client.metadata.items]

    def id_token_items(self, approved: list[str]) -> list[str]:
        section = (self.claims or {}).get("id_token") or {}
        named = {claim_rules.CLAIM_ITEM[c] for c in section if c in claim_rules.CLAIM_ITEM}
        return sorted(named & set(approved))


def plain_parameters(source: dict[str, str]) -> dict[str, str]:
    """The parameters we use, each a string of bounded length."""
    chosen = {}
    for name in (*KNOWN_PARAMETERS, "request", "request_uri"):
        value = source.get(name)
        if value is not None:
            chosen[name] = value
    return chosen


async def resolve_client(registry: Any, db: Any, client_id: str | None) -> Client:
    client: Client | None = await registry.get(db, client_id or "")
    if client is None or client.disabled:
        raise AuthorizeError("invalid_request", "unknown or disabled client_id")
    if GrantType.AUTHORIZATION_CODE not in client.metadata.grant_types:
        raise AuthorizeError("unauthorized_client", "this client may not use the authorization code flow")
    return client


async def request_object_parameters(
    registry: ClientRegistry, client: Client, request_object: str, issuer: str
) -> dict[str, str]:
    """The parameters inside a signed request object (JAR); the outer ones are then ignored (RFC 9101 §6.3)."""
    try:
        claims = jose.verify(request_object, await registry.keys_of(client))
    except jose.JwtRefused as exc:
        raise AuthorizeError("invalid_request_object", f"request object refused: {exc}") from exc
    now = int(time.time())
    exp = claims.get("exp")
    problems = [
        (claims.get("iss") != client.client_id, "iss must be the client id"),
        (claims.get("client_id") != client.client_id, "client_id inside must match"),
        (not _names_audience(claims.get("aud"), issuer), "aud must be this provider's issuer identifier"),
        (not isinstance(exp, int) or exp < now, "the request object has expired"),
        (isinstance(exp, int) and exp > now + REQUEST_OBJECT_MAX_LIFETIME, "the request object lives too long"),
        (isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 30, "the request object is not valid yet"),
    ]
    for failed, description in problems:
        if failed:
            raise AuthorizeError("invalid_request_object", description)
    values = {}
    for name in KNOWN_PARAMETERS:
        value = claims.get(name)
        if value is None:
            continue
        values[name] = value if isinstance(value, str) else json.dumps(value) if name == "claims" else str(value)
    return values


def _names_audience(aud: object, issuer: str) -> bool:
    return aud == issuer or (isinstance(aud, list) and issuer in aud)


def validate(client: Client, params: dict[str, str], *, pushed: bool) -> ValidRequest:
    """Every check of an authorization request (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2.1)."""
    for name, value in params.items():
        if not isinstance(value, str) or len(value) > MAX_PARAMETER_LENGTH:
            raise AuthorizeError("invalid_request", f"{name} is too long")
    if params.get("client_id") != client.client_id:
        raise AuthorizeError("invalid_request", "client_id is missing or differs from the client's")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri and len(client.metadata.redirect_uris) == 1 and pushed:
        redirect_uri = client.metadata.redirect_uris[0]
    if redirect_uri not in client.metadata.redirect_uris:
        # Exact string match only (OAuth 2.0 Security BCP §4.1.3): no prefix, no pattern, no normalising.
        raise AuthorizeError("invalid_request", "redirect_uri is missing or not registered for this client")
    state = params.get("state")

    def fail(error: str, description: str) -> AuthorizeError:
        return AuthorizeError(error, description, redirect_uri=redirect_uri, state=state)

    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode") not in (None, "query"):
        raise fail("invalid_request", "only response_mode=query is supported")
    scopes = sorted(set((params.get("scope") or "").split()))
    if "openid" not in scopes:
        raise fail("invalid_scope", "scope must include openid")
    unknown = [s for s in scopes if s not in client.metadata.scopes]
    if unknown:
        raise fail("invalid_scope", f"scope not allowed for this client: {' '.join(unknown)}")
    challenge = _pkce_challenge(params, fail)
    prompt = set((params.get("prompt") or "").split())
    if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise fail("invalid_request", "prompt must be none, or any of login and consent")
    try:
        claims_request = claim_rules.parse_claims_parameter(params.get("claims"))
    except ValueError as exc:
        raise fail("invalid_request", f"claims: {exc}") from exc
    return ValidRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        nonce=params.get("nonce"),
        code_challenge=challenge,
        prompt=prompt,
        max_age=_max_age(params.get("max_age"), fail),
        acr_values=(params.get("acr_values") or "").split(),
        essential_acr=_essential_acr(claims_request),
        claims=claims_request,
        ui_locales=params.get("ui_locales"),
        dpop_jkt=_dpop_jkt(params.get("dpop_jkt"), fail),
    )


def _pkce_challenge(params: dict[str, str], fail: Any) -> str:
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if not challenge:
        raise fail("invalid_request", "code_challenge is required (PKCE)")
    if method != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256 (plain is refused)")
    if not PKCE_CHALLENGE.match(challenge):
        raise fail("invalid_request", "code_challenge must be a base64url SHA-256 digest")
    return challenge


def _max_age(raw: str | None, fail: Any) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:  # isdigit alone takes "²"
        raise fail("invalid_request", "max_age must be a non-negative integer")
    return int(raw)


def _dpop_jkt(raw: str | None, fail: Any) -> str | None:
    if raw is not None and not re.fullmatch(r"[A-Za-z0-9_-]{43}", raw):
        raise fail("invalid_request", "dpop_jkt must be a JWK SHA-256 thumbprint")
    return raw


def _essential_acr(claims_request: dict[str, Any] | None) -> list[str]:
    spec = ((claims_request or {}).get("id_token") or {}).get("acr")
    if not isinstance(spec, dict) or not spec.get("essential"):
        return []
    values = spec.get("values") or ([spec["value"]] if "value" in spec else [])
    return [v for v in values if isinstance(v, str)]


def verifier_matches(verifier: str, challenge: str) -> bool:
    return bool(PKCE_VERIFIER.match(verifier)) and jose.sha256_b64url(verifier) == challenge
