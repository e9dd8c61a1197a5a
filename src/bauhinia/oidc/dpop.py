"""DPoP proofs (RFC 9449): sender-constrained tokens, server nonces and replay detection.

Nonces are stateless: a time bucket and its HMAC, so any process of the platform
accepts a nonce another one issued; a proof's ``jti`` is remembered (SeenJti) for as
long as the proof could be accepted.
"""

from __future__ import annotations

import hmac
import struct
import time
from dataclasses import dataclass
from hashlib import sha256
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc.jwk import thumbprint

from bauhinia.oidc import jose
from bauhinia.oidc.errors import OAuthError, ResourceError

PROOF_MAX_AGE = 300  # seconds a proof's iat may lie in the past
PROOF_MAX_SKEW = 60  # ...or in the future (clock skew)
NONCE_WINDOW = 300  # a nonce is good in its window and the next one
NONCE_HEADER = "DPoP-Nonce"


@dataclass(frozen=True)
class Proof:
    jkt: str  # JWK SHA-256 thumbprint (RFC 7638) of the proof's key
    jti: str
    iat: int


class ProofRefused(Exception):
    def __init__(self, description: str, *, nonce: bool = False) -> None:
        super().__init__(description)
        self.description, self.needs_nonce = description, nonce


def normalised_uri(uri: str) -> str:
    """RFC 9449 §4.3: compare ``htu`` without query and fragment, scheme and host case-insensitively."""
    parts = urlsplit(uri)
    port = parts.port
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    host = (parts.hostname or "").lower()
    netloc = host if port in (None, default) else f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", "", ""))


@dataclass(frozen=True)
class NonceSource:
    key: bytes

    def _for(self, window: int) -> str:
        packed = struct.pack(">Q", window)
        return jose.b64url(packed + hmac.new(self.key, packed, sha256).digest()[:16])

    def current(self) -> str:
        return self._for(int(time.time()) // NONCE_WINDOW)

    def valid(self, nonce: object) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        window = int(time.time()) // NONCE_WINDOW
        return any(hmac.compare_digest(nonce, self._for(w)) for w in (window, window - 1))


def check_proof(
    header_value: str,
    *,
    method: str,
    uri: str,
    nonces: NonceSource | None,
    access_token: str | None = None,
) -> Proof:
    """Verify one DPoP proof for this request; ProofRefused says which check failed."""
    try:
        header, _ = jose.unverified_parts(header_value)
        if header.get("typ") != "dpop+jwt":
            raise ProofRefused("the proof's typ must be dpop+jwt")
        jose.checked_alg(header)
        key = jose.import_public_key(header.get("jwk"))
        claims = jose.verify(header_value, key)
    except jose.JwtRefused as exc:
        raise ProofRefused(str(exc)) from exc
    _check_claims(claims, method=method, uri=uri, access_token=access_token)
    if nonces is not None and not nonces.valid(claims.get("nonce")):
        raise ProofRefused("a fresh server nonce is required in the proof", nonce=True)
    return Proof(thumbprint(header["jwk"]), claims["jti"], claims["iat"])


def _check_claims(claims: dict[str, Any], *, method: str, uri: str, access_token: str | None) -> None:
    jti, iat = claims.get("jti"), claims.get("iat")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 128 or "\x00" in jti:  # stored: PostgreSQL holds no NUL
        raise ProofRefused("the proof needs a jti of 8 to 128 characters")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise ProofRefused("the proof needs an integer iat")
    now = int(time.time())
    if iat < now - PROOF_MAX_AGE or iat > now + PROOF_MAX_SKEW:
        raise ProofRefused("the proof's iat is too old or in the future")
    if claims.get("htm") != method:
        raise ProofRefused("the proof's htm does not match the request method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalised_uri(htu) != normalised_uri(uri):
        raise ProofRefused("the proof's htu does not match the request URI")
    if access_token is not None and claims.get("ath") != jose.sha256_b64url(access_token):
        raise ProofRefused("the proof's ath does not match the access token")


def holds_bound_key(claims: dict[str, Any], proof: Proof | None) -> bool:
    """RFC 9449 §7: a token with ``cnf.jkt`` is good only with a proof from that key."""
    bound = (claims.get("cnf") or {}).get("jkt")
    return bound is None or (proof is not None and proof.jkt == bound)


def replay_key(proof: Proof) -> str:
    return f"dpop:{proof.jkt}:{proof.jti}"[:128]


def token_endpoint_error(exc: ProofRefused, nonces: NonceSource) -> OAuthError:
    if exc.needs_nonce:
        error = OAuthError("use_dpop_nonce", exc.description, headers={NONCE_HEADER: nonces.current()})
    else:
        error = OAuthError("invalid_dpop_proof", exc.description)
    return error


def resource_error(exc: ProofRefused, nonces: NonceSource) -> ResourceError:
    error = ResourceError("use_dpop_nonce" if exc.needs_nonce else "invalid_dpop_proof", exc.description, scheme="DPoP")
    if exc.needs_nonce:
        error.extra_headers[NONCE_HEADER] = nonces.current()
    return error
