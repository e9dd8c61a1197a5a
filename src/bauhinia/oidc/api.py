"""The provider's JSON endpoints: discovery, JWKS, PAR, token, userinfo, introspection, revocation.

Form bodies are parsed here rather than by FastAPI so that every malformed request gets
its OAuth error code (RFC 6749 §5.2) instead of a generic validation error.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from bauhinia.core.database import SessionDep
from bauhinia.core.i18n import LANGUAGES
from bauhinia.oidc import authorization, clients, dpop
from bauhinia.oidc.authorization import REQUEST_URI_PREFIX, AuthorizeError
from bauhinia.oidc.claims import ACR_ORDER, CLAIM_ITEM, STANDARD_SCOPES
from bauhinia.oidc.errors import NO_STORE, OAuthError, ResourceError, invalid_request
from bauhinia.oidc.jose import ASYMMETRIC_ALGS
from bauhinia.oidc.resource import resource_request, single_dpop_header
from bauhinia.oidc.schemas import ID_TOKEN_ALGS, AuthMethod, GrantType
from bauhinia.oidc.service import OidcService, oidc_service

router = APIRouter(tags=["OpenID provider"])

PATHS = {
    "authorization_endpoint": "/oidc/authorize",
    "pushed_authorization_request_endpoint": "/oidc/par",
    "token_endpoint": "/oidc/token",
    "userinfo_endpoint": "/oidc/userinfo",
    "introspection_endpoint": "/oidc/introspect",
    "revocation_endpoint": "/oidc/revoke",
    "end_session_endpoint": "/oidc/logout",
    "jwks_uri": "/jwks.json",
}
PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}
AUTH_METHODS = [m.value for m in AuthMethod]


def _form_schema(required: list[str], properties: dict[str, str]) -> dict[str, Any]:
    """An OpenAPI request body for a form-encoded OAuth endpoint (the contract schemathesis fuzzes)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": required,
                        "properties": {name: {"type": "string", "description": d} for name, d in properties.items()},
                    }
                }
            },
        }
    }


def discovery_document(service: OidcService) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 §3, RFC 8414, with the PAR, DPoP, RFC 9207 and logout members."""
    endpoints = {name: service.endpoint(path) for name, path in PATHS.items()}
    return {
        "issuer": service.issuer,
        **endpoints,
        "scopes_supported": sorted(STANDARD_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [g.value for g in GrantType],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGS),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ASYMMETRIC_ALGS),
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS[:2],
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "request_parameter_supported": True,
        "request_uri_parameter_supported": False,  # request_uri only from our own PAR endpoint
        "request_object_signing_alg_values_supported": list(ASYMMETRIC_ALGS),
        "require_pushed_authorization_requests": False,  # per client: see the client's metadata
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": list(ASYMMETRIC_ALGS),
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": True,
        "claims_supported": ["sub", "iss", "auth_time", "acr", "amr", "sid", *sorted(CLAIM_ITEM)],
        "acr_values_supported": list(ACR_ORDER),
        "ui_locales_supported": list(LANGUAGES),
        "claims_locales_supported": ["en", "zh-Hant"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "service_documentation": service.endpoint("/docs/oidc"),
    }


@router.get("/.well-known/openid-configuration", summary="OpenID Connect discovery document")
async def discovery(request: Request) -> JSONResponse:
    return JSONResponse(discovery_document(oidc_service(request)), headers=PUBLIC_CACHE)


@router.get("/.well-known/oauth-authorization-server", summary="RFC 8414 metadata (same document)")
async def authorization_server_metadata(request: Request) -> JSONResponse:
    return JSONResponse(discovery_document(oidc_service(request)), headers=PUBLIC_CACHE)


@router.get("/jwks.json", summary="The provider's public signing keys (old and new during a rotation)")
async def jwks(request: Request, db: SessionDep) -> JSONResponse:
    service = oidc_service(request)
    await service.keys.refresh(db)
    return JSONResponse(service.keys.published(), headers=PUBLIC_CACHE, media_type="application/jwk-set+json")


async def oauth_form(request: Request) -> dict[str, str]:
    """The form parameters; repeated parameters and non-UTF-8 bodies are refused (RFC 6749 §3.1, Appendix B).

    Parsed with ``parse_qsl`` rather than Starlette's multipart-capable parser: a form post is all
    OAuth uses, and this is the token endpoint's hottest step. The edge middleware caps the size.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise invalid_request("the body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_request("the body is not a valid UTF-8 form") from exc
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise invalid_request(f"{name} is repeated")
        if "\x00" in value or len(value) > 8192:
            raise invalid_request(f"{name} is not acceptable")
        values[name] = value
    return values


async def dpop_proof(
    request: Request, db: SessionDep, service: OidcService, path: str, *, required: bool
) -> dpop.Proof | None:
    header = single_dpop_header(request)
    if header is None:
        if required:
            raise invalid_request("this client must send a DPoP proof")
        return None
    try:
        proof = dpop.check_proof(header, method=request.method, uri=service.endpoint(path), nonces=service.proof_nonces)
    except dpop.ProofRefused as exc:
        raise dpop.token_endpoint_error(exc, service.nonces) from exc
    await service.check_dpop_replay(db, proof)
    return proof


async def authenticated_client(
    request: Request, db: SessionDep, service: OidcService, form: dict[str, str]
) -> clients.Client:
    credentials = clients.presented_credentials(form, request.headers.get("authorization"))
    audiences = {service.issuer, service.endpoint(request.url.path)}
    return await clients.authenticate(db, service.clients, credentials, audiences)


def _with_nonce(response: Response, service: OidcService, proof: dpop.Proof | None) -> Response:
    if proof is not None:
        response.headers[dpop.NONCE_HEADER] = service.nonces.current()
    return response


@router.post(
    "/oidc/token",
    summary="Token endpoint (authorization_code, refresh_token, client_credentials)",
    openapi_extra=_form_schema(
        ["grant_type"],
        {
            "grant_type": "authorization_code, refresh_token or client_credentials",
            "code": "the authorization code",
            "redirect_uri": "as in the authorization request",
            "code_verifier": "PKCE verifier",
            "refresh_token": "a refresh token",
            "scope": "space-separated scopes",
            "resource": "RFC 8707 resource indicator",
            "client_id": "the client (public clients)",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "private_key_jwt assertion",
        },
    ),
)
async def token(request: Request, db: SessionDep) -> Response:
    service = oidc_service(request)
    proof: dpop.Proof | None = None
    try:
        form = await oauth_form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise invalid_request("grant_type is required")
        # Before anything is written: loading the keys may create the first ones and commit. After the client
        # assertion, that commit would spend its jti even when this request is then refused (use_dpop_nonce),
        # and the client's retry would be taken for a replay.
        await service.keys.refresh(db)
        client = await authenticated_client(request, db, service, form)
        required = client.metadata.dpop_bound_access_tokens
        proof = await dpop_proof(request, db, service, PATHS["token_endpoint"], required=required)
        if grant_type == GrantType.AUTHORIZATION_CODE:
            result = await service.exchange_code(db, client, form, proof)
        elif grant_type == GrantType.REFRESH_TOKEN:
            if GrantType.REFRESH_TOKEN not in client.metadata.grant_types:
                raise OAuthError("unauthorized_client", "this client may not use refresh tokens")
            result = await service.refresh(db, client, form, proof)
        elif grant_type == GrantType.CLIENT_CREDENTIALS:
            result = await service.client_credentials(db, client, form, proof)
        else:
            raise OAuthError(
                "unsupported_grant_type", "grant_type must be authorization_code, refresh_token or client_credentials"
            )
    except OAuthError as exc:
        await db.rollback()
        return exc.response()
    return _with_nonce(JSONResponse(result.as_json(), headers=NO_STORE), service, proof)


@router.post(
    "/oidc/par",
    status_code=201,
    summary="Pushed authorization requests (RFC 9126)",
    openapi_extra=_form_schema(
        ["client_id", "response_type", "redirect_uri", "scope", "code_challenge", "code_challenge_method"],
        dict.fromkeys((*authorization.KNOWN_PARAMETERS, "request"), "authorization request parameter"),
    ),
)
async def pushed_authorization_request(request: Request, db: SessionDep) -> Response:
    service = oidc_service(request)
    try:
        form = await oauth_form(request)
        if "request_uri" in form:
            raise invalid_request("request_uri is not allowed in a pushed request")
        client = await authenticated_client(request, db, service, form)
        params = authorization.plain_parameters(form)
        if "request" in params:
            params = await authorization.request_object_parameters(
                service.clients, client, params["request"], service.issuer
            )
            if form.get("client_id") not in (None, client.client_id):
                raise invalid_request("client_id differs from the authenticated client")
        params.setdefault("client_id", client.client_id)
        proof = await dpop_proof(request, db, service, PATHS["pushed_authorization_request_endpoint"], required=False)
        if proof is not None:
            if params.get("dpop_jkt") not in (None, proof.jkt):
                raise invalid_request("dpop_jkt differs from the DPoP proof's key")
            params["dpop_jkt"] = proof.jkt
        valid = authorization.validate(client, params, pushed=True)
        row = await service.store_request(db, valid, pushed=True)
        await db.commit()
    except AuthorizeError as exc:
        await db.rollback()
        return OAuthError(exc.error, exc.description).response()
    except OAuthError as exc:
        await db.rollback()
        return exc.response()
    body = {
        "request_uri": f"{REQUEST_URI_PREFIX}{row.id}",
        "expires_in": int((row.expires_at - row.created_at).total_seconds()),
    }
    return JSONResponse(body, status_code=201, headers=NO_STORE)


@router.get("/oidc/userinfo", summary="UserInfo: the approved items of the resident", operation_id="userinfo_get")
@router.post("/oidc/userinfo", summary="UserInfo (POST)", operation_id="userinfo_post")
async def userinfo(request: Request, db: SessionDep) -> Response:
    service = oidc_service(request)
    try:
        scheme, token_value, proof = await resource_request(request, db, service, PATHS["userinfo_endpoint"])
        claims = await service.userinfo(db, token_value, proof, scheme)
        await db.commit()  # the DPoP proof's jti
    except ResourceError as exc:
        await db.rollback()
        return exc.response()
    return _with_nonce(JSONResponse(claims, headers=NO_STORE), service, proof)


@router.post(
    "/oidc/introspect",
    summary="Token introspection (RFC 7662)",
    openapi_extra=_form_schema(["token"], {"token": "the token", "token_type_hint": "access_token or refresh_token"}),
)
async def introspect(request: Request, db: SessionDep) -> Response:
    try:
        service, client, token_value = await _client_and_token(request, db)
        if client.metadata.token_endpoint_auth_method is AuthMethod.NONE:
            raise OAuthError("invalid_client", "public clients may not introspect", status=401)
        body = await service.introspect(db, client, token_value)
        await db.commit()
    except OAuthError as exc:
        await db.rollback()
        return exc.response()
    return JSONResponse(body, headers=NO_STORE)


async def _client_and_token(request: Request, db: AsyncSession) -> tuple[OidcService, clients.Client, str]:
    """Introspection and revocation: an authenticated client and the ``token`` it asks about."""
    service = oidc_service(request)
    form = await oauth_form(request)
    client = await authenticated_client(request, db, service, form)
    if not form.get("token"):
        raise invalid_request("token is required")
    return service, client, form["token"]


@router.post(
    "/oidc/revoke",
    summary="Token revocation (RFC 7009)",
    openapi_extra=_form_schema(["token"], {"token": "the token", "token_type_hint": "access_token or refresh_token"}),
)
async def revoke(request: Request, db: SessionDep) -> Response:
    try:
        service, client, token_value = await _client_and_token(request, db)
        await service.revoke(db, client, token_value)
        await db.commit()
    except OAuthError as exc:
        await db.rollback()
        return exc.response()
    return Response(status_code=200, headers=NO_STORE)


class LazySession:
    """An AsyncSession created on first use: a token request served from the caches needs none."""

    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self._maker: async_sessionmaker[AsyncSession] = maker
        self._session: AsyncSession | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._maker()
        return getattr(self._session, name)

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()

    async def rollback(self) -> None:
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class TokenFastPath:
    """Serves ``POST /oidc/token`` as plain ASGI, inside the edge middleware and outside FastAPI's
    routing and dependency solving, which cost more than a client-credentials grant (docs/performance.md).
    The handler, its errors and its OpenAPI description are the route's own."""

    def __init__(self, app: ASGIApp, *, application: Any) -> None:
        self.app, self.application = app, application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATHS["token_endpoint"] or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.application
        request = Request(scope, receive)
        session = LazySession(self.application.state.sessionmaker)
        try:
            response = await token(request, cast(AsyncSession, session))
        finally:
            await session.close()
        await response(scope, receive, send)
