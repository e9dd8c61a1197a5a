"""The OpenID provider's tables.

Codes, refresh tokens and client secrets are stored only as SHA-256 digests: each is
at least 256 random bits, so a fast hash is enough, and a copy of the table redeems nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bauhinia.core.database import Base, UTCDateTime, new_id


class OidcClient(Base):
    """A relying party (a department's service) or a department's back-end, registered by an operator."""

    __tablename__ = "oidc_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The validated metadata (see schemas.ClientMetadata): names, URIs, keys, scopes, claims, policy.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SigningKey(Base):
    """One of the provider's signing keys; published in the JWKS until every token it signed has expired."""

    __tablename__ = "oidc_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    kty: Mapped[str] = mapped_column(String(8))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_sealed: Mapped[bytes] = mapped_column(LargeBinary(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Signing starts here: after every cache of the JWKS has seen the key (rotation without downtime).
    active_from: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Published until here: retirement plus the longest lifetime of anything it signed.
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthorizationRequest(Base):
    """A validated authorization request: pushed (PAR, RFC 9126) or in progress while the resident
    signs in and consents. Its id is the secret part of a ``request_uri``."""

    __tablename__ = "oidc_authorization_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id", ondelete="CASCADE"), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    pushed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # A pushed request is good once (RFC 9126 §4): set when /authorize takes it up.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Grant(Base):
    """What one resident allowed one client, from one sign-in: the root of its codes and tokens.

    Revoking the grant (refresh-token reuse, code replay, withdrawal, revocation) revokes
    every token issued under it.
    """

    __tablename__ = "oidc_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[str | None] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    items: Mapped[list[str]] = mapped_column(JSON)  # the claim items the resident approved
    id_token_items: Mapped[list[str]] = mapped_column(JSON, default=list)  # asked for in the ID token too
    acr: Mapped[str] = mapped_column(String(16))
    amr: Mapped[list[str]] = mapped_column(JSON)
    auth_time: Mapped[int] = mapped_column(Integer)
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthorizationCode(Base):
    __tablename__ = "oidc_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("oidc_grants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(String(512))
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RefreshToken(Base):
    """Rotated at every use; presenting a used one again revokes the whole grant."""

    __tablename__ = "oidc_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("oidc_grants.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    jkt: Mapped[str | None] = mapped_column(String(64))  # DPoP key the token is bound to
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IssuedAccessToken(Base):
    """The record of an access token (a JWT): what introspection and revocation consult."""

    __tablename__ = "oidc_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    grant_id: Mapped[str | None] = mapped_column(String(36), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SeenJti(Base):
    """One-time values already used: client assertion and DPoP proof ``jti``s, kept until they expire."""

    __tablename__ = "oidc_seen_jtis"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ClaimConsent(Base):
    """A resident's remembered decision about which items a service may receive."""

    __tablename__ = "oidc_claim_consents"

    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id", ondelete="CASCADE"), primary_key=True)
    approved: Mapped[list[str]] = mapped_column(JSON)
    declined: Mapped[list[str]] = mapped_column(JSON)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
