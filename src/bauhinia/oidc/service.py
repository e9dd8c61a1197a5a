"""The OpenID provider's service: the only module other domains may import.

Grants, codes and tokens; userinfo, introspection, revocation; remembered consents;
back-channel logout. Every security event goes to the audit log in the transaction of
the change it describes; back-channel logout tokens go to the outbox in the transaction that ends the
session, and the outbox's worker delivers them.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core import audit, outbox
from bauhinia.core.database import utcnow
from bauhinia.core.keys import KeyRing, Purpose
from bauhinia.identity.service import IdentityService
from bauhinia.oidc import claims as claim_rules
from bauhinia.oidc import jose
from bauhinia.oidc.authorization import ValidRequest, verifier_matches
from bauhinia.oidc.clients import Client, ClientRegistry, first_use
from bauhinia.oidc.dpop import PROOF_MAX_AGE, PROOF_MAX_SKEW, NonceSource, Proof, holds_bound_key, replay_key
from bauhinia.oidc.errors import OAuthError, ResourceError, invalid_grant, invalid_request
from bauhinia.oidc.jose import public_key_set as public_key_set  # re-exported for other domains
from bauhinia.oidc.keys import SigningKeys
from bauhinia.oidc.ledger import TokenLedger
from bauhinia.oidc.models import (
    AuthorizationCode,
    AuthorizationRequest,
    ClaimConsent,
    Grant,
    IssuedAccessToken,
    RefreshToken,
    SeenJti,
)
from bauhinia.oidc.resource import token_caller
from bauhinia.oidc.schemas import GrantType, SubjectType
from bauhinia.oidc.schemas import LocalisedText as LocalisedText  # re-exported for other domains
from bauhinia.oidc.tokens import (
    ACCESS_TOKEN_LIFETIME,
    BACKCHANNEL_LOGOUT_EVENT,
    CODE_LIFETIME,
    ID_TOKEN_LIFETIME,
    INTERACTION_LIFETIME,
    LOGOUT_TOKEN_LIFETIME,
    REFRESH_TOKEN_LIFETIME,
    REQUEST_URI_LIFETIME,
    AccessTokenClaims,
    Signer,
    digest,
    now_seconds,
    opaque,
)

DPOP_REPLAY_WINDOW = timedelta(seconds=PROOF_MAX_AGE + PROOF_MAX_SKEW)
REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # secrets.token_urlsafe: the ids of authorization requests
BACKCHANNEL_LOGOUT_KIND = "oidc.backchannel_logout"  # the outbox messages that carry logout tokens
# The scope of the platform's operator clients (the operator and exchange registration APIs).
OPERATOR_SCOPE = "bauhinia.operator"


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class ServiceConsent:
    """A remembered consent, as the resident's account page lists it."""

    client: Client
    approved: list[str]
    declined: list[str]
    granted_at: datetime


class OidcService:
    def __init__(
        self,
        *,
        issuer: str,
        keyring: KeyRing,
        identity: IdentityService,
        ledger: TokenLedger,
        persist_client_credentials_tokens: bool = True,
        require_dpop_nonce: bool = True,
    ) -> None:
        self.issuer = issuer
        self.keyring = keyring
        self.identity = identity
        self.keys = SigningKeys(keyring)
        self.signer = Signer(self.keys, issuer)
        self.clients = ClientRegistry()
        self.nonces = NonceSource(keyring.derive(Purpose.DPOP_NONCE))
        self.persist_client_credentials_tokens = persist_client_credentials_tokens
        self.require_dpop_nonce = require_dpop_nonce
        self.ledger = ledger

    @property
    def proof_nonces(self) -> NonceSource | None:
        """The nonces DPoP proofs must carry, or None when the setting turns them off."""
        return self.nonces if self.require_dpop_nonce else None

    def endpoint(self, path: str) -> str:
        return f"{self.issuer}{path}"

    # --- subjects ---------------------------------------------------------------------------------

    def subject(self, client: Client, resident_id: str) -> str:
        if client.metadata.subject_type is SubjectType.PUBLIC:
            return resident_id
        return claim_rules.pairwise_subject(
            self.keyring.derive(Purpose.PAIRWISE_SUBJECT), sector_of(client), resident_id
        )

    # --- authorization requests -------------------------------------------------------------------

    async def store_request(self, db: AsyncSession, request: ValidRequest, *, pushed: bool) -> AuthorizationRequest:
        now = utcnow()
        row = AuthorizationRequest(
            id=secrets.token_urlsafe(32),
            client_id=request.client_id,
            parameters=request.as_parameters(),
            pushed=pushed,
            created_at=now,
            expires_at=now + (REQUEST_URI_LIFETIME if pushed else INTERACTION_LIFETIME),
        )
        db.add(row)
        await db.flush()
        return row

    async def take_pushed_request(self, db: AsyncSession, client_id: str, request_id: str) -> ValidRequest | None:
        """A pushed request, good once and only for its client (RFC 9126 §4)."""
        if not REQUEST_ID.fullmatch(request_id):  # what store_request makes; a NUL would fail on PostgreSQL
            return None
        result = await db.execute(
            update(AuthorizationRequest)
            .where(
                AuthorizationRequest.id == request_id,
                AuthorizationRequest.client_id == client_id,
                AuthorizationRequest.pushed.is_(True),
                AuthorizationRequest.used_at.is_(None),
                AuthorizationRequest.expires_at > utcnow(),
            )
            .values(used_at=utcnow())
            .returning(AuthorizationRequest.parameters)
        )
        stored = result.scalar_one_or_none()
        return ValidRequest.from_parameters(stored) if stored is not None else None

    async def interaction(self, db: AsyncSession, interaction_id: str) -> tuple[AuthorizationRequest, Client] | None:
        if not REQUEST_ID.fullmatch(interaction_id):  # what store_request makes; a NUL would fail on PostgreSQL
            return None
        row = await db.get(AuthorizationRequest, interaction_id)
        if row is None or row.pushed or row.used_at is not None or row.expires_at <= utcnow():
            return None
        client = await self.clients.get(db, row.client_id)
        if client is None or client.disabled:
            return None
        return row, client

    # --- consent ----------------------------------------------------------------------------------

    async def remembered(self, db: AsyncSession, resident_id: str, client_id: str) -> ClaimConsent | None:
        return await db.get(ClaimConsent, (resident_id, client_id))

    async def remember(
        self, db: AsyncSession, resident_id: str, client_id: str, approved: list[str], declined: list[str]
    ) -> None:
        row = await self.remembered(db, resident_id, client_id)
        if row is None:
            row = ClaimConsent(resident_id=resident_id, client_id=client_id)
            db.add(row)
        row.approved, row.declined, row.granted_at = sorted(approved), sorted(declined), utcnow()
        await audit.record(
            db,
            "oidc.consent_remembered",
            actor=f"resident:{resident_id}",
            subject=f"client:{client_id}",
            data={"approved": sorted(approved), "declined": sorted(declined)},
        )

    async def consents(self, db: AsyncSession, resident_id: str) -> list[ServiceConsent]:
        rows = (
            await db.scalars(
                select(ClaimConsent).where(ClaimConsent.resident_id == resident_id).order_by(ClaimConsent.granted_at)
            )
        ).all()
        listed = []
        for row in rows:
            client = await self.clients.get(db, row.client_id)
            if client is not None:
                listed.append(ServiceConsent(client, row.approved, row.declined, row.granted_at))
        return listed

    async def withdraw(self, db: AsyncSession, resident_id: str, client_id: str) -> bool:
        """Forget the consent and revoke every grant the client holds for the resident."""
        if "\x00" in client_id:  # from the page's path: PostgreSQL text holds no NUL, and no client has one
            return False
        result = await db.execute(
            delete(ClaimConsent).where(ClaimConsent.resident_id == resident_id, ClaimConsent.client_id == client_id)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        await db.execute(
            update(Grant)
            .where(Grant.resident_id == resident_id, Grant.client_id == client_id, Grant.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await audit.record(
            db, "oidc.consent_withdrawn", actor=f"resident:{resident_id}", subject=f"client:{client_id}", data={}
        )
        return True

    # --- codes ------------------------------------------------------------------------------------

    async def issue_code(
        self,
        db: AsyncSession,
        request: ValidRequest,
        *,
        resident_id: str,
        items: list[str],
        acr: str,
        amr: list[str],
        auth_time: int,
        sid: str,
    ) -> str:
        grant = Grant(
            client_id=request.client_id,
            resident_id=resident_id,
            scopes=request.scopes,
            items=sorted(items),
            id_token_items=request.id_token_items(items),
            acr=acr,
            amr=amr,
            auth_time=auth_time,
            sid=sid,
            created_at=utcnow(),
        )
        db.add(grant)
        await db.flush()
        code = opaque()
        db.add(
            AuthorizationCode(
                code_hash=digest(code),
                grant_id=grant.id,
                client_id=request.client_id,
                redirect_uri=request.redirect_uri,
                code_challenge=request.code_challenge,
                nonce=request.nonce,
                dpop_jkt=request.dpop_jkt,
                expires_at=utcnow() + CODE_LIFETIME,
            )
        )
        await audit.record(
            db,
            "oidc.authorized",
            actor=f"resident:{resident_id}",
            subject=f"client:{request.client_id}",
            data={"grant": grant.id, "scopes": request.scopes, "items": sorted(items), "acr": acr},
        )
        return code

    # --- the token endpoint -----------------------------------------------------------------------

    async def check_dpop_replay(self, db: AsyncSession, proof: Proof) -> None:
        if not await first_use(db, replay_key(proof), utcnow() + DPOP_REPLAY_WINDOW):
            raise OAuthError("invalid_dpop_proof", "the DPoP proof was already used (replay)")

    async def exchange_code(
        self, db: AsyncSession, client: Client, form: dict[str, str], proof: Proof | None
    ) -> TokenResponse:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code:
            raise invalid_request("code is required")
        if not verifier:
            raise invalid_request("code_verifier is required (PKCE)")
        row = await db.get(AuthorizationCode, digest(code), with_for_update=True)
        if row is None:
            raise invalid_grant("unknown code")
        if row.used_at is not None:
            # RFC 6749 §4.1.2: a replayed code revokes what the first redemption issued.
            await self._revoke_grant(db, row.grant_id, "code_replayed")
            await db.commit()
            raise invalid_grant("the code was already used; its tokens are revoked")
        row.used_at = utcnow()
        checks = [
            (row.client_id != client.client_id, "the code was issued to another client"),
            (row.expires_at <= utcnow(), "the code has expired"),
            (form.get("redirect_uri") != row.redirect_uri, "redirect_uri differs from the authorization request's"),
            (not verifier_matches(verifier, row.code_challenge), "code_verifier does not match the code_challenge"),
            (row.dpop_jkt is not None and (proof is None or proof.jkt != row.dpop_jkt), "DPoP key differs"),
        ]
        for failed, description in checks:
            if failed:
                await db.commit()  # the code is spent either way
                raise invalid_grant(description)
        grant = await db.get(Grant, row.grant_id)
        if grant is None or grant.revoked_at is not None:
            await db.commit()
            raise invalid_grant("the grant has been revoked")
        response = await self._resident_tokens(db, client, grant, proof, nonce=row.nonce)
        await db.commit()
        return response

    async def refresh(
        self, db: AsyncSession, client: Client, form: dict[str, str], proof: Proof | None
    ) -> TokenResponse:
        presented = form.get("refresh_token")
        if not presented:
            raise invalid_request("refresh_token is required")
        row = await db.get(RefreshToken, digest(presented), with_for_update=True)
        if row is None or row.client_id != client.client_id:
            raise invalid_grant("unknown refresh token")
        if row.used_at is not None:
            await self._revoke_grant(db, row.grant_id, "refresh_token_reused")
            await db.commit()
            raise invalid_grant("the refresh token was already used; the whole grant is revoked")
        if row.jkt is not None and (proof is None or proof.jkt != row.jkt):
            raise invalid_grant("the refresh token is bound to another DPoP key")
        grant = await db.get(Grant, row.grant_id)
        if row.expires_at <= utcnow() or grant is None or grant.revoked_at is not None:
            raise invalid_grant("the refresh token has expired or its grant was revoked")
        scopes = (form.get("scope") or "").split()
        if scopes and not set(scopes) <= set(grant.scopes):
            raise OAuthError("invalid_scope", "a refresh may only narrow the granted scope")
        row.used_at = utcnow()
        response = await self._resident_tokens(db, client, grant, proof, nonce=None, scopes=scopes or None)
        await db.commit()
        return response

    async def client_credentials(
        self, db: AsyncSession, client: Client, form: dict[str, str], proof: Proof | None
    ) -> TokenResponse:
        if GrantType.CLIENT_CREDENTIALS not in client.metadata.grant_types:
            raise OAuthError("unauthorized_client", "this client may not use client_credentials")
        asked = (form.get("scope") or "").split()
        allowed = [s for s in client.metadata.scopes if s != "openid"]
        if any(s not in allowed for s in asked):
            raise OAuthError("invalid_scope", "scope not allowed for this client")
        scopes = sorted(set(asked)) if asked else allowed
        audience = _resource(form.get("resource"), self.issuer)
        claims = AccessTokenClaims(client.client_id, client.client_id, scopes, audience, proof.jkt if proof else None)
        token, jti, expires = self._sign_access_token(claims)
        await db.commit()  # the DPoP proof's or the client assertion's jti, if any
        if self.persist_client_credentials_tokens:
            await self.ledger.record(jti, client.client_id, None, expires)
        return TokenResponse(token, "DPoP" if proof else "Bearer", _seconds(ACCESS_TOKEN_LIFETIME), " ".join(scopes))

    def _sign_access_token(self, claims: AccessTokenClaims) -> tuple[str, str, datetime]:
        jti = secrets.token_urlsafe(18)
        now = now_seconds()
        token = self.signer.sign(claims.to_claims(self.issuer, jti, now), typ="at+jwt")
        return token, jti, utcnow() + ACCESS_TOKEN_LIFETIME

    async def _resident_tokens(
        self,
        db: AsyncSession,
        client: Client,
        grant: Grant,
        proof: Proof | None,
        *,
        nonce: str | None,
        scopes: list[str] | None = None,
    ) -> TokenResponse:
        assert grant.resident_id is not None
        sub = self.subject(client, grant.resident_id)
        granted = scopes or grant.scopes
        auth = {"auth_time": grant.auth_time, "acr": grant.acr, "amr": grant.amr}
        claims = AccessTokenClaims(sub, client.client_id, granted, self.issuer, proof.jkt if proof else None, auth)
        access, jti, expires = self._sign_access_token(claims)
        db.add(IssuedAccessToken(jti=jti, client_id=client.client_id, grant_id=grant.id, expires_at=expires))
        refresh = None
        if GrantType.REFRESH_TOKEN in client.metadata.grant_types:
            refresh = opaque()
            db.add(
                RefreshToken(
                    token_hash=digest(refresh),
                    grant_id=grant.id,
                    client_id=client.client_id,
                    jkt=proof.jkt if proof else None,
                    created_at=utcnow(),
                    expires_at=utcnow() + REFRESH_TOKEN_LIFETIME,
                )
            )
        id_token = await self._id_token(db, client, grant, sub, access, nonce)
        token_type = "DPoP" if proof else "Bearer"
        return TokenResponse(access, token_type, _seconds(ACCESS_TOKEN_LIFETIME), " ".join(granted), refresh, id_token)

    async def _id_token(
        self, db: AsyncSession, client: Client, grant: Grant, sub: str, access_token: str, nonce: str | None
    ) -> str:
        alg = client.metadata.id_token_signed_response_alg
        now = now_seconds()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": client.client_id,
            "iat": now,
            "exp": now + _seconds(ID_TOKEN_LIFETIME),
            "auth_time": grant.auth_time,
            "acr": grant.acr,
            "amr": grant.amr,
            "at_hash": jose.half_hash(access_token, alg),
        }
        if grant.sid:
            claims["sid"] = grant.sid
        if nonce is not None:
            claims["nonce"] = nonce
        if grant.id_token_items and grant.resident_id:
            profile = await self.identity.profile(db, grant.resident_id)
            if profile is not None:
                claims.update(claim_rules.claims_for(profile, grant.id_token_items))
        return self.signer.sign(claims, typ="JWT", alg=alg)

    async def _revoke_grant(self, db: AsyncSession, grant_id: str, reason: str) -> None:
        grant = await db.get(Grant, grant_id)
        if grant is None or grant.revoked_at is not None:
            return
        grant.revoked_at = utcnow()
        await db.execute(
            update(IssuedAccessToken)
            .where(IssuedAccessToken.grant_id == grant_id, IssuedAccessToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await audit.record(
            db,
            "oidc.grant_revoked",
            actor=f"client:{grant.client_id}",
            subject=f"resident:{grant.resident_id}" if grant.resident_id else f"client:{grant.client_id}",
            data={"grant": grant_id, "reason": reason},
        )

    # --- resources: userinfo, introspection, revocation -------------------------------------------

    async def access_token_claims(self, db: AsyncSession, token: str) -> dict[str, Any] | None:
        """The claims of a live access token this provider issued, or None (expired, revoked, foreign)."""
        await self.keys.refresh(db)
        try:
            claims = self.signer.verify_own(token, typ="at+jwt")
        except jose.JwtRefused:
            return None
        exp, jti = claims.get("exp"), claims.get("jti")
        if not isinstance(exp, int) or exp <= now_seconds() or not isinstance(jti, str):
            return None
        record = await db.get(IssuedAccessToken, jti)
        if record is None:
            persisted = self.persist_client_credentials_tokens or claims.get("sub") != claims.get("client_id")
            return None if persisted else claims
        if record.revoked_at is not None:
            return None
        if record.grant_id is not None:
            grant = await db.get(Grant, record.grant_id)
            if grant is None or grant.revoked_at is not None:
                return None
        return claims

    async def userinfo(self, db: AsyncSession, token: str, proof: Proof | None, scheme: str) -> dict[str, Any]:
        claims = await self.access_token_claims(db, token)
        if claims is None:
            raise ResourceError("invalid_token", "the access token is invalid, expired or revoked", scheme=scheme)
        # A proof exists only with the DPoP scheme, so a bound token sent as Bearer fails here too.
        if not holds_bound_key(claims, proof):
            raise ResourceError(
                "invalid_token", "the access token is DPoP-bound: present it with its proof", scheme="DPoP"
            )
        if scheme == "DPoP" and not (claims.get("cnf") or {}).get("jkt"):
            raise ResourceError("invalid_token", "the access token is not DPoP-bound", scheme="DPoP")
        if "openid" not in str(claims.get("scope", "")).split():
            raise ResourceError("insufficient_scope", "the openid scope is required", status=403, scheme=scheme)
        record = await db.get(IssuedAccessToken, claims["jti"])
        grant = await db.get(Grant, record.grant_id) if record and record.grant_id else None
        if grant is None or grant.resident_id is None:
            raise ResourceError("invalid_token", "the access token does not belong to a resident", scheme=scheme)
        profile = await self.identity.profile(db, grant.resident_id)
        if profile is None:
            raise ResourceError("invalid_token", "the resident no longer exists", scheme=scheme)
        return {"sub": claims["sub"], **claim_rules.claims_for(profile, grant.items)}

    async def introspect(self, db: AsyncSession, client: Client, token: str) -> dict[str, Any]:
        """RFC 7662: only the client a token was issued to learns anything about it."""
        claims = await self.access_token_claims(db, token)
        if claims is not None:
            if claims.get("client_id") != client.client_id:
                return {"active": False}
            cnf = claims.get("cnf")
            return {
                "active": True,
                "token_type": "DPoP" if cnf else "Bearer",
                **{
                    k: claims[k]
                    for k in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti")
                    if k in claims
                },
                **({"cnf": cnf} if cnf else {}),
                **{k: claims[k] for k in ("acr", "amr", "auth_time") if k in claims},
            }
        row = await db.get(RefreshToken, digest(token)) if len(token) <= 100 else None
        if row is None or row.client_id != client.client_id or row.used_at is not None or row.expires_at <= utcnow():
            return {"active": False}
        grant = await db.get(Grant, row.grant_id)
        if grant is None or grant.revoked_at is not None or grant.resident_id is None:
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": client.client_id,
            "scope": " ".join(grant.scopes),
            "sub": self.subject(client, grant.resident_id),
            "exp": int(row.expires_at.timestamp()),
            "iss": self.issuer,
        }

    async def revoke(self, db: AsyncSession, client: Client, token: str) -> None:
        """RFC 7009: revoking a refresh token ends its grant; an access token is revoked alone.
        Unknown tokens, and tokens of other clients, are ignored (the answer is 200 either way)."""
        row = await db.get(RefreshToken, digest(token)) if len(token) <= 100 else None
        if row is not None and row.client_id == client.client_id:
            await self._revoke_grant(db, row.grant_id, "revoked_by_client")
            await db.commit()
            return
        await self.keys.refresh(db)
        try:
            claims = self.signer.verify_own(token, typ="at+jwt")
        except jose.JwtRefused:
            return
        if claims.get("client_id") != client.client_id or not isinstance(claims.get("jti"), str):
            return
        record = await db.get(IssuedAccessToken, claims["jti"])
        if record is None:
            exp = claims.get("exp")
            expires = datetime.fromtimestamp(exp if isinstance(exp, int) else 0, tz=utcnow().tzinfo)
            record = IssuedAccessToken(jti=claims["jti"], client_id=client.client_id, grant_id=None, expires_at=expires)
            db.add(record)
        record.revoked_at = record.revoked_at or utcnow()
        await audit.record(
            db,
            "oidc.access_token_revoked",
            actor=f"client:{client.client_id}",
            subject=f"client:{client.client_id}",
            data={"jti": claims["jti"]},
        )
        await db.commit()

    # --- logout -----------------------------------------------------------------------------------

    async def end_resident_session(self, db: AsyncSession, resident_id: str, sid: str | None) -> None:
        """Revoke the grants of this browser session and put a logout token for each client that asked for
        one in the outbox (OIDC Back-Channel Logout 1.0 §2.5), in the caller's transaction: the tokens
        exist if and only if the session's end is committed, and the outbox's worker sends them."""
        if sid is None:
            return
        await self.keys.refresh(db)
        grants = (await db.scalars(select(Grant).where(Grant.sid == sid, Grant.resident_id == resident_id))).all()
        notified: set[str] = set()
        for grant in grants:
            client = await self.clients.get(db, grant.client_id)
            if grant.revoked_at is None:
                grant.revoked_at = utcnow()
            if client is None or not client.metadata.backchannel_logout_uri or client.client_id in notified:
                continue
            notified.add(client.client_id)
            await outbox.enqueue(
                db,
                kind=BACKCHANNEL_LOGOUT_KIND,
                url=client.metadata.backchannel_logout_uri,
                body=urlencode({"logout_token": self._logout_token(client, resident_id, sid)}),
                content_type="application/x-www-form-urlencoded",
                expires_in=LOGOUT_TOKEN_LIFETIME,  # retrying an expired token is pointless: the client refuses it
            )
        await audit.record(
            db,
            "oidc.session_ended",
            actor=f"resident:{resident_id}",
            subject=f"resident:{resident_id}",
            data={"clients": sorted(notified)},
        )

    def _logout_token(self, client: Client, resident_id: str, sid: str) -> str:
        now = now_seconds()
        claims = {
            "iss": self.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + _seconds(LOGOUT_TOKEN_LIFETIME),
            "jti": secrets.token_urlsafe(18),
            "sub": self.subject(client, resident_id),
            "sid": sid,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        }
        return self.signer.sign(claims, typ="logout+jwt")

    async def id_token_hint(self, db: AsyncSession, hint: str) -> dict[str, Any] | None:
        """The claims of an ID token we issued (expired ones too: OIDC RP-Initiated Logout §2)."""
        await self.keys.refresh(db)
        try:
            return self.signer.verify_own(hint, typ=None)
        except jose.JwtRefused:
            return None

    # --- housekeeping -----------------------------------------------------------------------------

    async def purge_expired(self, db: AsyncSession) -> int:
        """Delete what can no longer be used: spent one-time values, expired requests, codes and tokens."""
        now = utcnow()
        removed = 0
        for model, column in (
            (SeenJti, SeenJti.expires_at),
            (AuthorizationRequest, AuthorizationRequest.expires_at),
            (AuthorizationCode, AuthorizationCode.expires_at),
            (IssuedAccessToken, IssuedAccessToken.expires_at),
            (RefreshToken, RefreshToken.expires_at),
        ):
            result = await db.execute(delete(model).where(column <= now))
            removed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return removed


def sector_of(client: Client) -> str:
    """OIDC Core §8.1: the operator-set sector, else the host of the (single-host) redirect URIs."""
    if client.metadata.sector_identifier:
        return client.metadata.sector_identifier
    hosts = sorted({urlsplit(uri).hostname or "" for uri in client.metadata.redirect_uris})
    return hosts[0] if hosts else client.client_id


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _resource(raw: str | None, issuer: str) -> str:
    """RFC 8707 ``resource``: an absolute URI without a fragment; the issuer by default."""
    if raw is None:
        return issuer
    parts = urlsplit(raw)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment or len(raw) > 500:
        raise OAuthError("invalid_target", "resource must be an absolute URI without a fragment")
    return raw


def oidc_service(request: Request) -> OidcService:
    service: OidcService = request.app.state.oidc
    return service


async def calling_client(request: Request, db: AsyncSession, *, scope: str | None = None) -> str:
    """For the platform's JSON APIs: the id of the client whose live access token (Bearer or DPoP) came
    with the request, carrying ``scope`` when one is named; otherwise a 401 or 403 problem."""
    return await token_caller(request, db, oidc_service(request), scope)
