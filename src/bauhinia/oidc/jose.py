"""Verifying JWTs that clients send us (assertions, request objects, DPoP proofs, ID token hints).

Only asymmetric algorithms from an explicit list are accepted, and only with keys pinned
to the sender: ``alg: none`` and HMAC "signed" with a public key (algorithm confusion) are
refused before any key is touched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import warnings
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

ASYMMETRIC_ALGS = ("ES256", "PS256", "EdDSA", "Ed25519")
KEY_TYPE_OF_ALG = {"ES256": "EC", "PS256": "RSA", "EdDSA": "OKP", "Ed25519": "OKP"}
PublicKey = ECKey | OKPKey | RSAKey
# RFC 9864 names Ed25519 as the fully-specified algorithm; the polymorphic EdDSA stays offered for relying
# parties that know only that name, so joserfc's warning on each use is silenced for it alone.
warnings.filterwarnings("ignore", message="EdDSA is deprecated via RFC 9864", category=SecurityWarning)


class JwtRefused(Exception):
    """The JWT is malformed, unsigned, signed with a refused algorithm, or its signature does not verify."""


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, unverified: only to find the key, never to trust."""
    try:
        compact = jws.extract_compact(token.encode())
        claims = json.loads(compact.payload)
        header = compact.headers()
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise JwtRefused("not a compact JWS") from exc
    if not isinstance(claims, dict):
        raise JwtRefused("the JWT's payload is not a JSON object")
    return dict(header), claims


def checked_alg(header: dict[str, Any], allowed: tuple[str, ...] = ASYMMETRIC_ALGS) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise JwtRefused(f"alg {alg!r} is not accepted; use one of {', '.join(allowed)}")
    if header.get("crit") is not None:
        raise JwtRefused("critical header parameters are not supported")
    return alg


def verify(token: str, keys: KeySet | PublicKey, allowed: tuple[str, ...] = ASYMMETRIC_ALGS) -> dict[str, Any]:
    """The verified claims, or JwtRefused. The key type must match the algorithm's."""
    header, _ = unverified_parts(token)
    alg = checked_alg(header, allowed)
    candidates = keys.keys if isinstance(keys, KeySet) else [keys]
    wanted_kid = header.get("kid")
    matching = [
        k
        for k in candidates
        if k.key_type == KEY_TYPE_OF_ALG[alg] and (wanted_kid is None or k.kid is None or k.kid == wanted_kid)
    ]
    for key in matching:
        try:
            return dict(jwt.decode(token, key, algorithms=[alg]).claims)
        except (JoseError, ValueError, TypeError):
            continue
    raise JwtRefused("the signature does not verify with the sender's keys")


def import_public_key(jwk: object) -> PublicKey:
    """A public JWK given in a JWT header (DPoP): refuse private and symmetric keys."""
    if not isinstance(jwk, dict) or jwk.get("kty") not in {"EC", "OKP", "RSA"}:
        raise JwtRefused("jwk must be a public EC, OKP or RSA key")
    if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi")):
        raise JwtRefused("jwk must not contain a private key")
    try:
        key: PublicKey
        if jwk["kty"] == "EC":
            key = ECKey.import_key(jwk)
        elif jwk["kty"] == "OKP":
            key = OKPKey.import_key(jwk)
        else:
            key = RSAKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise JwtRefused("jwk is not a valid public key") from exc
    return key


def public_key_set(value: object) -> KeySet:
    """A JWK set that a party registers as its own: public asymmetric keys only, at least one."""
    try:
        keys = KeySet.import_key_set(value)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a valid JWK set: {exc}") from exc
    if not keys.keys:
        raise ValueError("the JWK set holds no keys")
    for key in keys.keys:
        if key.is_private:
            raise ValueError("public keys only: a private key was given")
        if key.key_type == "oct":
            raise ValueError("symmetric keys are not accepted")
    return keys


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` (OIDC Core §3.1.3.6): the left half of the hash the signing algorithm uses
    (SHA-512 for Ed25519, as the OpenID Foundation's EdDSA note says)."""
    digest = hashlib.sha512 if KEY_TYPE_OF_ALG.get(alg) == "OKP" else hashlib.sha256
    full = digest(value.encode()).digest()
    return b64url(full[: len(full) // 2])


def sha256_b64url(value: str) -> str:
    return b64url(hashlib.sha256(value.encode()).digest())
