"""Tokens the provider signs: JWT access tokens (RFC 9068), ID tokens, logout tokens; refresh tokens.

Access tokens are JWTs a resource server can check offline against the JWKS; every
token also has a row (IssuedAccessToken) so it can be revoked before it expires and
introspected. Refresh tokens are opaque 256-bit values stored as digests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc import jwt
from joserfc.jwk import ECKey

from bauhinia.oidc import jose
from bauhinia.oidc.keys import LONGEST_SIGNED_LIFETIME, SigningKeys

# What the provider signs with: ES256 (P-256 keys) and, for ID tokens on request, EdDSA / Ed25519.
SIGNING_ALGS = ("ES256", "EdDSA", "Ed25519")
ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)
ID_TOKEN_LIFETIME = timedelta(minutes=10)
LOGOUT_TOKEN_LIFETIME = timedelta(minutes=2)
CODE_LIFETIME = timedelta(seconds=60)
REFRESH_TOKEN_LIFETIME = timedelta(days=30)
REQUEST_URI_LIFETIME = timedelta(seconds=90)
INTERACTION_LIFETIME = timedelta(minutes=30)
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
assert max(ACCESS_TOKEN_LIFETIME, ID_TOKEN_LIFETIME, LOGOUT_TOKEN_LIFETIME) <= LONGEST_SIGNED_LIFETIME


def opaque() -> str:
    return secrets.token_urlsafe(32)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Signer:
    """Signs with the provider's current keys."""

    keys: SigningKeys
    issuer: str

    _headers: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def sign(self, claims: dict[str, Any], *, typ: str, alg: str = "ES256") -> str:
        key = self.keys.current(jose.KEY_TYPE_OF_ALG[alg])
        if alg == "ES256" and isinstance(key.key, ECKey):
            return self._sign_es256(claims, typ, key.kid, key.key)
        header = {"alg": alg, "typ": typ, "kid": key.kid}
        return jwt.encode(header, claims, key.key, algorithms=[alg])

    def _sign_es256(self, claims: dict[str, Any], typ: str, kid: str, key: ECKey) -> str:
        """RFC 7515 compact serialisation of an ES256 JWS (RFC 7518 §3.4: r and s, 32 bytes each), composed
        directly on ``cryptography``'s ECDSA. Measured: joserfc's generic path cost twice the signature itself
        on the token endpoint; every token is still verified with joserfc in the tests."""
        header = self._headers.get((kid, typ))
        if header is None:
            header = self._headers[(kid, typ)] = _b64(_compact_json({"alg": "ES256", "typ": typ, "kid": kid}))
        signing_input = header + b"." + _b64(_compact_json(claims))
        r, s = decode_dss_signature(key.private_key.sign(signing_input, ECDSA(SHA256())))  # type: ignore[union-attr]
        return (signing_input + b"." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))).decode()

    def verify_own(self, token: str, *, typ: str | None) -> dict[str, Any]:
        """Claims of a JWT this provider signed (any published key); JwtRefused otherwise. No time checks."""
        header, _ = jose.unverified_parts(token)
        if typ is not None and header.get("typ") != typ:
            raise jose.JwtRefused(f"typ must be {typ}")
        claims = jose.verify(token, self.keys.verification_keys(), SIGNING_ALGS)
        if claims.get("iss") != self.issuer:
            raise jose.JwtRefused("issued by another issuer")
        return claims


@dataclass
class AccessTokenClaims:
    """RFC 9068 §2.2 claims of one access token."""

    sub: str
    client_id: str
    scope: list[str]
    audience: str
    jkt: str | None = None
    auth: dict[str, Any] = field(default_factory=dict)  # auth_time, acr, amr for a resident's token

    def to_claims(self, issuer: str, jti: str, now: int) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": self.sub,
            "aud": self.audience,
            "client_id": self.client_id,
            "iat": now,
            "exp": now + int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "jti": jti,
            "scope": " ".join(self.scope),
            **self.auth,
        }
        if self.jkt:
            claims["cnf"] = {"jkt": self.jkt}
        return claims


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _compact_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def now_seconds() -> int:
    return int(time.time())
