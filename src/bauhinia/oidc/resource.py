"""Protected resources: the access token (Bearer or DPoP) a caller presents, checked the same way everywhere.

UserInfo answers with OAuth errors; the platform's JSON APIs (operator, exchange) answer with problem
details through ``token_caller``. Kept apart from ``api`` and ``service`` so both can use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core.errors import Problem
from bauhinia.oidc import dpop
from bauhinia.oidc.errors import OAuthError, ResourceError

if TYPE_CHECKING:
    from bauhinia.oidc.service import OidcService


def single_dpop_header(request: Request) -> str | None:
    proofs = request.headers.getlist("dpop")
    if len(proofs) > 1:
        raise OAuthError("invalid_dpop_proof", "send exactly one DPoP header")
    return proofs[0] if proofs else None


async def resource_request(
    request: Request, db: AsyncSession, service: OidcService, path: str
) -> tuple[str, str, dpop.Proof | None]:
    authorization_header = request.headers.get("authorization", "")
    scheme, _, token_value = authorization_header.partition(" ")
    scheme = {"bearer": "Bearer", "dpop": "DPoP"}.get(scheme.lower(), "")
    if not scheme or not token_value.strip():
        raise ResourceError("invalid_request", "send the access token in the Authorization header", status=401)
    token_value = token_value.strip()
    proof = None
    if scheme == "DPoP":
        try:
            header = single_dpop_header(request)
        except OAuthError as exc:
            raise ResourceError("invalid_dpop_proof", exc.description, scheme="DPoP") from exc
        if header is None:
            raise ResourceError("invalid_dpop_proof", "a DPoP proof is required with a DPoP token", scheme="DPoP")
        try:
            proof = dpop.check_proof(
                header,
                method=request.method,
                uri=service.endpoint(path),
                nonces=service.proof_nonces,
                access_token=token_value,
            )
        except dpop.ProofRefused as exc:
            raise dpop.resource_error(exc, service.nonces) from exc
        try:
            await service.check_dpop_replay(db, proof)
        except OAuthError as exc:
            raise ResourceError("invalid_dpop_proof", exc.description, scheme="DPoP") from exc
    return scheme, token_value, proof


async def token_caller(request: Request, db: AsyncSession, service: OidcService, scope: str | None) -> str:
    """The calling client's id, from a live access token (carrying ``scope`` when one is named);
    otherwise a 401 or 403 problem."""
    try:
        _, token, proof = await resource_request(request, db, service, request.url.path)
    except ResourceError as exc:
        challenge = exc.response().headers
        headers = {"WWW-Authenticate": challenge["www-authenticate"]}
        if "dpop-nonce" in challenge:  # RFC 9449 §9: the nonce the client must use next
            headers["DPoP-Nonce"] = challenge["dpop-nonce"]
        raise Problem(exc.status, "Unauthorized", exc.description, headers=headers) from exc
    claims = await service.access_token_claims(db, token)
    if claims is None:
        raise Problem(401, "Unauthorized", "The access token is invalid, expired or revoked.")
    if not dpop.holds_bound_key(claims, proof):
        raise Problem(401, "Unauthorized", "The access token is DPoP-bound: present it with its proof.")
    if scope is not None and scope not in str(claims.get("scope", "")).split():
        raise Problem(403, "Forbidden", f"The {scope} scope is required.")
    return str(claims["client_id"])
