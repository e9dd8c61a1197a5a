"""The client registry and client authentication at the token, PAR, introspection and revocation endpoints.

``private_key_jwt`` (RFC 7523 as profiled by OIDC Core §9 and FAPI 2.0): the assertion must be
signed with a key the client registered (by value or by URI), name this provider as audience,
be short-lived, and its ``jti`` is good once. ``client_secret_basic``: secrets are 256-bit random
values stored as SHA-256 digests and compared in constant time.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
from joserfc.jwk import KeySet
from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core.database import utcnow
from bauhinia.oidc import jose
from bauhinia.oidc.errors import invalid_client, invalid_request
from bauhinia.oidc.models import Grant, IssuedAccessToken, OidcClient, SeenJti
from bauhinia.oidc.schemas import AuthMethod, ClientMetadata
from bauhinia.oidc.tokens import digest

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_MAX_LIFETIME = 600  # seconds between now and an assertion's exp
CLOCK_SKEW = 30
JWKS_URI_TTL = 300.0
JWKS_URI_MAX_BYTES = 64 * 1024
# How long a process trusts its copy of a client row: disabling a client reaches every node within it.
CLIENT_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Client:
    client_id: str
    metadata: ClientMetadata
    secret_hash: str | None
    disabled: bool
    created_at: datetime


class ClientRegistrationError(Exception):
    """The metadata is invalid, or the client id is taken."""


class ClientRegistry:
    """Reads clients (metadata parsed once per process: it does not change after registration)."""

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        self._parsed: dict[tuple[str, datetime], ClientMetadata] = {}
        self._recent: dict[str, tuple[float, Client]] = {}
        self._reading: set[str] = set()
        self._registered_keys: dict[tuple[str, datetime], KeySet] = {}
        self._remote_keys: dict[str, tuple[float, KeySet]] = {}
        self._http = http

    async def get(self, db: AsyncSession, client_id: str, *, fresh: bool = False) -> Client | None:
        """The client, read at most CLIENT_CACHE_SECONDS ago (``fresh``: read now)."""
        if not client_id or len(client_id) > 64 or "\x00" in client_id:  # PostgreSQL text holds no NUL
            return None
        recent = self._recent.get(client_id)
        # One request re-reads an expired entry; the others meanwhile keep the copy it replaces. Measured:
        # without this, every request in flight re-read it at once, and on SQLite their transactions
        # queued for the database lock, stalling the token endpoint for up to a second every 5 s.
        usable = recent is not None and (
            time.monotonic() - recent[0] < CLIENT_CACHE_SECONDS or client_id in self._reading
        )
        if recent is not None and usable and not fresh:
            return recent[1]
        self._reading.add(client_id)
        try:
            row = await db.get(OidcClient, client_id, populate_existing=True)
        finally:
            self._reading.discard(client_id)
        if row is None:
            self._recent.pop(client_id, None)
            return None
        cache_key = (row.client_id, row.created_at)
        metadata = self._parsed.get(cache_key)
        if metadata is None:
            metadata = self._parsed[cache_key] = ClientMetadata.model_validate(row.metadata_)
        client = Client(row.client_id, metadata, row.secret_hash, row.disabled_at is not None, row.created_at)
        self._recent[client_id] = (time.monotonic(), client)
        if len(self._recent) > 10_000:  # bounded: ids come from requests
            self._recent.clear()
        return client

    async def register(self, db: AsyncSession, metadata: ClientMetadata) -> str | None:
        """Store a new client; returns the generated secret for client_secret_basic (shown once)."""
        if await db.get(OidcClient, metadata.client_id) is not None:
            raise ClientRegistrationError(f"client id {metadata.client_id!r} is already registered")
        secret = None
        if metadata.token_endpoint_auth_method is AuthMethod.CLIENT_SECRET_BASIC:
            secret = secrets.token_urlsafe(32)
        db.add(
            OidcClient(
                client_id=metadata.client_id,
                metadata_=metadata.model_dump(mode="json", by_alias=True, exclude_none=True),
                secret_hash=digest(secret) if secret else None,
                created_at=utcnow(),
            )
        )
        return secret

    async def all(self, db: AsyncSession) -> list[Client]:
        rows = (await db.scalars(select(OidcClient).order_by(OidcClient.client_id))).all()
        return [c for row in rows if (c := await self.get(db, row.client_id, fresh=True)) is not None]

    async def disable(self, db: AsyncSession, client_id: str) -> bool:
        now = utcnow()
        result = await db.execute(
            update(OidcClient)
            .where(OidcClient.client_id == client_id, OidcClient.disabled_at.is_(None))
            .values(disabled_at=now)
        )
        self._recent.pop(client_id, None)
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        # What the client already holds ends too: its access tokens would otherwise stay good at userinfo
        # until they expire, however urgently the operator disabled it.
        await db.execute(
            update(Grant).where(Grant.client_id == client_id, Grant.revoked_at.is_(None)).values(revoked_at=now)
        )
        await db.execute(
            update(IssuedAccessToken)
            .where(IssuedAccessToken.client_id == client_id, IssuedAccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return True

    async def keys_of(self, client: Client) -> KeySet:
        """The client's public keys: registered by value, or fetched from its jwks_uri (cached briefly)."""
        metadata = client.metadata
        if metadata.jwks is not None:  # imported once per process, like the metadata it belongs to
            cache_key = (client.client_id, client.created_at)
            if cache_key not in self._registered_keys:
                self._registered_keys[cache_key] = KeySet.import_key_set(metadata.jwks)  # type: ignore[arg-type]
            return self._registered_keys[cache_key]
        if not metadata.jwks_uri:
            return KeySet([])
        cached = self._remote_keys.get(metadata.jwks_uri)
        if cached and time.monotonic() - cached[0] < JWKS_URI_TTL:
            return cached[1]
        keys = await self._fetch_keys(metadata.jwks_uri)
        self._remote_keys[metadata.jwks_uri] = (time.monotonic(), keys)
        return keys

    async def _fetch_keys(self, uri: str) -> KeySet:
        http = self._http or httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        try:
            response = await http.get(uri, headers={"Accept": "application/json"})
            if response.status_code != 200 or len(response.content) > JWKS_URI_MAX_BYTES:
                raise invalid_client("the client's jwks_uri could not be fetched")
            published = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise invalid_client("the client's jwks_uri could not be fetched") from exc
        finally:
            if self._http is None:
                await http.aclose()
        try:
            return jose.public_key_set(published)
        except ValueError as exc:
            raise invalid_client(f"the client's jwks_uri must publish public asymmetric keys: {exc}") from exc


async def first_use(db: AsyncSession, key: str, expires_at: datetime) -> bool:
    """Record a one-time value; False if it was already recorded (a replay). In the caller's transaction."""
    dialect = db.get_bind().dialect.name
    values = {"key": key[:128], "expires_at": expires_at}
    if dialect == "postgresql":
        statement: Any = postgresql.insert(SeenJti).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(SeenJti).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        statement = insert(SeenJti).values(values)
    result = await db.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Credentials:
    """What a request presented to authenticate its client."""

    method: AuthMethod
    client_id: str
    secret: str | None = None
    assertion: str | None = None


def presented_credentials(form: dict[str, str], authorization: str | None) -> Credentials:
    """Exactly one authentication method per request (RFC 6749 §2.3)."""
    basic = authorization is not None and authorization[:6].lower() == "basic "
    assertion = form.get("client_assertion")
    if basic and assertion:
        raise invalid_request("use one client authentication method, not several")
    if "client_secret" in form:
        raise invalid_client("client_secret_post is not supported; use client_secret_basic or private_key_jwt")
    if basic:
        return _basic(authorization or "", form.get("client_id"))
    if assertion is not None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise invalid_request(f"client_assertion_type must be {ASSERTION_TYPE}")
        _, claims = _unverified_assertion(assertion)
        client_id = form.get("client_id") or claims.get("sub")
        if not isinstance(client_id, str) or not client_id:
            raise invalid_client("the client assertion names no client")
        return Credentials(AuthMethod.PRIVATE_KEY_JWT, client_id, assertion=assertion)
    client_id = form.get("client_id")
    if not client_id:
        raise invalid_client("client authentication is required")
    return Credentials(AuthMethod.NONE, client_id)


def _basic(authorization: str, form_client_id: str | None) -> Credentials:
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        raw_id, raw_secret = decoded.split(":", 1)
    except (ValueError, UnicodeError) as exc:
        raise invalid_client("malformed Basic credentials", basic=True) from exc
    client_id, secret = unquote(raw_id), unquote(raw_secret)  # form-encoded, RFC 6749 §2.3.1
    if form_client_id is not None and form_client_id != client_id:
        raise invalid_request("client_id differs from the authenticated client")
    return Credentials(AuthMethod.CLIENT_SECRET_BASIC, client_id, secret=secret)


def _unverified_assertion(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header, claims = jose.unverified_parts(assertion)
        jose.checked_alg(header)
    except jose.JwtRefused as exc:
        raise invalid_client(f"client assertion refused: {exc}") from exc
    return header, claims


async def authenticate(
    db: AsyncSession, registry: ClientRegistry, credentials: Credentials, audiences: set[str]
) -> Client:
    """The authenticated client, or invalid_client. ``audiences``: what an assertion may name as ``aud``."""
    basic = credentials.method is AuthMethod.CLIENT_SECRET_BASIC
    client = await registry.get(db, credentials.client_id)
    if client is None or client.disabled:
        raise invalid_client("unknown or disabled client", basic=basic)
    if client.metadata.token_endpoint_auth_method is not credentials.method:
        raise invalid_client(
            f"this client authenticates with {client.metadata.token_endpoint_auth_method.value}", basic=basic
        )
    if credentials.method is AuthMethod.CLIENT_SECRET_BASIC:
        presented = digest(credentials.secret or "")
        if client.secret_hash is None or not hmac.compare_digest(presented, client.secret_hash):
            raise invalid_client("wrong client secret", basic=True)
    elif credentials.method is AuthMethod.PRIVATE_KEY_JWT:
        await _check_assertion(db, registry, client, credentials.assertion or "", audiences)
    return client


async def _check_assertion(
    db: AsyncSession, registry: ClientRegistry, client: Client, assertion: str, audiences: set[str]
) -> None:
    try:
        claims = jose.verify(assertion, await registry.keys_of(client))
    except jose.JwtRefused as exc:
        raise invalid_client(f"client assertion refused: {exc}") from exc
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise invalid_client("the client assertion's iss and sub must be the client id")
    aud = claims.get("aud")
    # Only strings count: a list may hold anything (a nested list is unhashable, and was a 500).
    listed = aud if isinstance(aud, list) else [aud]
    named = {a for a in listed if isinstance(a, str)}
    if not named & audiences:
        raise invalid_client("the client assertion's aud must be this provider's issuer identifier")
    now = int(time.time())
    exp, jti = claims.get("exp"), claims.get("jti")
    if not isinstance(exp, int) or exp < now - CLOCK_SKEW or exp > now + ASSERTION_MAX_LIFETIME:
        raise invalid_client("the client assertion has expired or lives too long")
    nbf = claims.get("nbf")
    if isinstance(nbf, int) and nbf > now + CLOCK_SKEW:
        raise invalid_client("the client assertion is not valid yet")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 100 or "\x00" in jti:  # stored: PostgreSQL holds no NUL
        raise invalid_client("the client assertion needs a jti")
    expires = datetime.fromtimestamp(exp, tz=utcnow().tzinfo) + timedelta(seconds=CLOCK_SKEW)
    if not await first_use(db, f"assertion:{client.client_id}:{jti}", expires):
        raise invalid_client("the client assertion was already used (replay)")
