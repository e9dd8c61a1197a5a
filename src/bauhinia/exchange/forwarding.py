"""Data requests: check the consent, forward a signed request to every provider concerned at once,
check each signed answer, record the exchange, and give the consumer a signed receipt
(docs/exchange-protocol.md §4). The gateway never holds a key that opens what providers release.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core import audit
from bauhinia.core.database import utcnow
from bauhinia.core.keys import Purpose, pairwise_identifier
from bauhinia.exchange.consents import ConsentDesk, ConsentRefused
from bauhinia.exchange.models import Consent, ExchangeRecord, MemberSystem
from bauhinia.exchange.schemas import (
    ConsentStatus,
    DataRequestAnswer,
    DataRequestBody,
    ProviderResult,
    ProviderStatus,
    member_of,
)
from bauhinia.oidc.service import OidcService, public_key_set

REQUEST_TYP = "exchange-request+jwt"
RESPONSE_TYP = "exchange-response+jwt"
RECEIPT_TYP = "exchange-receipt+jwt"
REQUEST_LIFETIME = 60
MAX_RESPONSE_BYTES = 1024 * 1024


def request_hash(compact: str) -> str:
    """base64url(SHA-256) of a compact JWS's ASCII: ties a response and a receipt to one request."""
    return base64.urlsafe_b64encode(hashlib.sha256(compact.encode("ascii")).digest()).rstrip(b"=").decode()


@dataclass
class Forwarded:
    """One provider's share of a data request and what became of it."""

    provider: MemberSystem
    items: list[str]
    request_id: str
    request: str
    status: ProviderStatus = ProviderStatus.ERROR
    response: str | None = None
    detail: str | None = None

    def result(self) -> ProviderResult:
        return ProviderResult(
            provider=self.provider.id, items=self.items, status=self.status, response=self.response, detail=self.detail
        )

    def outcome(self) -> dict[str, Any]:
        outcome: dict[str, Any] = {
            "provider": self.provider.id,
            "items": self.items,
            "status": self.status.value,
            "request_hash": request_hash(self.request),
        }
        if self.response is not None:
            outcome["response_hash"] = request_hash(self.response)
        return outcome


class Forwarder:
    def __init__(self, oidc: OidcService, desk: ConsentDesk, *, timeout: float) -> None:
        self.oidc = oidc
        self.desk = desk
        self.timeout = timeout
        self.http: httpx.AsyncClient | None = None  # made on first use; tests and the app may set their own
        self._provider_keys: dict[str, tuple[dict[str, Any], KeySet]] = {}

    def client(self) -> httpx.AsyncClient:
        if self.http is None:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
            self.http = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, limits=limits)
        return self.http

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    def provider_subject(self, member_id: str, resident_id: str) -> str:
        """How one provider member knows a resident: stable for it, unrelated to other members' (§4)."""
        key = self.oidc.keyring.derive(Purpose.EXCHANGE_SUBJECT)
        return pairwise_identifier(key, f"exchange:{member_id}", resident_id)

    async def perform(self, db: AsyncSession, consumer: MemberSystem, body: DataRequestBody) -> DataRequestAnswer:
        consent = await self.desk.for_consumer(db, consumer, body.consent_id)
        consented = list(consent.approved_items or [])
        items = consented if body.items is None else body.items
        outside = sorted(set(items) - set(consented))
        if outside:
            raise ConsentRefused(422, f"Not consented: {', '.join(outside)}.", "items")
        last_fetch = await self._count_fetch(db, consent)
        await self.oidc.keys.refresh(db)
        asked = set(items)
        providers = {
            p: await db.get(MemberSystem, p) for p in {i["provider"] for i in consent.items if i["id"] in asked}
        }
        # No transaction stays open while providers answer: on SQLite it would hold the write lock (every
        # write on the platform would wait for the slowest provider), on PostgreSQL a pooled connection.
        await db.commit()
        request_id, now = str(uuid.uuid4()), utcnow()
        shares = self._shares(consent, consumer, providers, sorted(set(items)), request_id, now)
        await asyncio.gather(*(self._forward(share, consumer) for share in shares))
        outcomes = [s.outcome() for s in shares]
        receipt = self.oidc.signer.sign(
            {
                "iss": self.oidc.issuer,
                "iat": int(now.timestamp()),
                "jti": request_id,
                "consent_id": consent.id,
                "consumer": consumer.id,
                "purpose": consent.purpose_code,
                "results": outcomes,
            },
            typ=RECEIPT_TYP,
        )
        await self._record(db, consent, request_id, sorted(set(items)), outcomes, receipt, now, last_fetch)
        return DataRequestAnswer(
            id=request_id,
            consent_id=consent.id,
            created_at=now.isoformat(),
            results=[s.result() for s in shares],
            receipt=receipt,
        )

    async def _count_fetch(self, db: AsyncSession, consent: Consent) -> bool:
        """Count the fetch, atomically with the checks, so a burst cannot exceed the consent (the caller
        commits). True when this fetch was the last one the consent allows (it is then EXPIRED)."""
        now = utcnow()
        used_up = Consent.fetches + 1 >= Consent.max_fetches
        counted = await db.execute(
            update(Consent)
            .where(
                Consent.id == consent.id,
                Consent.status == ConsentStatus.ACTIVE.value,
                Consent.fetches < Consent.max_fetches,
                Consent.valid_until > now,
            )
            .values(
                fetches=Consent.fetches + 1,
                status=case((used_up, ConsentStatus.EXPIRED.value), else_=Consent.status),
                updated_at=now,
            )
            .returning(Consent.status)
        )
        status = counted.scalar_one_or_none()
        if status is None:
            await db.rollback()
            await db.refresh(consent)
            current = consent.status
            if current == ConsentStatus.ACTIVE.value:
                current = ConsentStatus.EXPIRED.value  # its time or its fetches ran out meanwhile
            raise ConsentRefused(409, f"The consent is {current}: no data may be requested under it.")
        return bool(status == ConsentStatus.EXPIRED.value)

    def _shares(
        self,
        consent: Consent,
        consumer: MemberSystem,
        providers: dict[str, MemberSystem | None],
        items: list[str],
        request_id: str,
        now: datetime,
    ) -> list[Forwarded]:
        """One signed request per provider, each with that provider's own subject for the resident."""
        assert consent.artefact is not None
        assert consent.resident_id is not None
        by_provider: dict[str, list[str]] = {}
        for asked in consent.items:
            if asked["id"] in items:
                by_provider.setdefault(asked["provider"], []).append(asked["id"])
        consumer_key = consumer.encryption_jwks["keys"][0]
        shares = []
        for provider_id, provider_items in sorted(by_provider.items()):
            provider = providers[provider_id]
            assert provider is not None  # systems are disabled, never deleted
            claims = {
                "iss": self.oidc.issuer,
                "aud": provider_id,
                "jti": str(uuid.uuid4()),
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + REQUEST_LIFETIME,
                "request_id": request_id,
                "consent": consent.artefact,
                "sub": self.provider_subject(member_of(provider_id), consent.resident_id),
                "items": provider_items,
                "consumer": consumer.id,
                "consumer_key": consumer_key,
            }
            share = Forwarded(provider, provider_items, request_id, self.oidc.signer.sign(claims, typ=REQUEST_TYP))
            if provider.disabled_at is not None or not provider.data_endpoint:
                share.detail = "The provider is not taking part any more."
            shares.append(share)
        return shares

    async def _forward(self, share: Forwarded, consumer: MemberSystem) -> None:
        """Send one provider its request; whatever happens becomes its status, never an exception."""
        if share.detail is not None:
            return
        assert share.provider.data_endpoint is not None
        url = share.provider.data_endpoint.rstrip("/") + "/data-requests"
        try:
            # The gateway's own deadline: whatever the transport's timeouts, one slow provider never
            # holds the consumer's answer longer than this.
            async with asyncio.timeout(self.timeout):
                answer = await self.client().post(url, json={"request": share.request})
        except (TimeoutError, httpx.TimeoutException):
            share.status, share.detail = (
                ProviderStatus.TIMEOUT,
                f"The provider did not answer within {self.timeout:g} s.",
            )
            return
        except httpx.HTTPError as exc:
            share.detail = f"The provider could not be reached ({type(exc).__name__})."
            return
        if answer.status_code != 200:
            share.detail = f"The provider answered HTTP {answer.status_code}."
            return
        self._check_answer(share, consumer, answer)

    def _check_answer(self, share: Forwarded, consumer: MemberSystem, answer: httpx.Response) -> None:
        try:
            if len(answer.content) > MAX_RESPONSE_BYTES:
                raise ValueError("the answer is too large")
            response = json.loads(answer.content)["response"]
            if not isinstance(response, str):
                raise ValueError("no signed response")
            claims = self._verified_response(share.provider, response)
        except (ValueError, KeyError, TypeError, JoseError) as exc:
            share.detail = f"The provider's answer is not a valid signed response: {exc}"
            return
        problem = _response_problem(claims, share, consumer)
        if problem is not None:
            share.detail = problem
            return
        share.response = response
        share.status = ProviderStatus(claims["status"])

    def _verified_response(self, provider: MemberSystem, response: str) -> dict[str, Any]:
        header = json.loads(base64.urlsafe_b64decode(response.split(".")[0] + "=="))
        if header.get("typ") != RESPONSE_TYP or header.get("alg") != "ES256":
            raise ValueError(f"the response must be an ES256 JWS of type {RESPONSE_TYP}")
        verified = jws.deserialize_compact(response, self._keys(provider), algorithms=["ES256"])
        claims = json.loads(verified.payload)
        if not isinstance(claims, dict):
            raise ValueError("the payload is not a JSON object")
        return claims

    def _keys(self, provider: MemberSystem) -> KeySet:
        cached = self._provider_keys.get(provider.id)
        if cached is None or cached[0] != provider.signing_jwks:
            cached = (provider.signing_jwks, public_key_set(provider.signing_jwks))
            self._provider_keys[provider.id] = cached
        return cached[1]

    async def _record(
        self,
        db: AsyncSession,
        consent: Consent,
        request_id: str,
        items: list[str],
        outcomes: list[dict[str, Any]],
        receipt: str,
        now: datetime,
        last_fetch: bool,
    ) -> None:
        """The exchange record, in the resident's history and the audit log, durable before the answer;
        after the last fetch a consent allows, its expiry too (the consumer is told, as of any expiry)."""
        db.add(
            ExchangeRecord(
                id=request_id,
                resident_id=consent.resident_id,
                consent_id=consent.id,
                consumer_system_id=consent.consumer_system_id,
                event="data.requested",
                items=items,
                outcomes=outcomes,
                receipt=receipt,
                created_at=now,
            )
        )
        await audit.record(
            db,
            "exchange.data_request",
            actor=f"system:{consent.consumer_system_id}",
            subject=f"consent:{consent.id}",
            data={
                "request_id": request_id,
                "items": items,
                "outcomes": [(o["provider"], o["status"]) for o in outcomes],
            },
        )
        if last_fetch:
            await db.refresh(consent)
            await self.desk.record_expiry(db, consent)
        await db.commit()


def _response_problem(claims: dict[str, Any], share: Forwarded, consumer: MemberSystem) -> str | None:
    """Why a validly signed response must still be withheld, or None."""
    expected = {
        "iss": share.provider.id,
        "aud": consumer.id,
        "request_id": share.request_id,
        "request_hash": request_hash(share.request),
    }
    for claim, value in expected.items():
        if claims.get(claim) != value:
            return f"The provider's response has the wrong {claim}."
    if claims.get("status") not in (ProviderStatus.DELIVERED.value, ProviderStatus.DENIED.value):
        return "The provider's response has no valid status."
    released = claims.get("items")
    if not isinstance(released, list) or not all(isinstance(i, str) for i in released):
        return "The provider's response does not list the items it released."
    extra = sorted(set(released) - set(share.items))
    if extra:
        return f"The provider released items that were not asked for: {', '.join(extra)}."
    if claims["status"] == ProviderStatus.DELIVERED.value and not isinstance(claims.get("data"), str):
        return "The provider's response holds no encrypted data."
    return None
