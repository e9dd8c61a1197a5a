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

import aiohttp
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bauhinia.core import audit
from bauhinia.core.database import utcnow
from bauhinia.core.grouped import GroupCommit
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
        self.http: aiohttp.ClientSession | None = None
        self._provider_keys: dict[str, tuple[dict[str, Any], KeySet]] = {}
        # Records are durable before each answer, written in group commits (one transaction for the
        # requests that finish together): measured in docs/performance.md.
        self.journal = GroupCommit(_write_records)

    def client(self) -> aiohttp.ClientSession:
        """Made on first use, in the serving event loop (aiohttp sessions belong to one loop)."""
        if self.http is None or self.http.closed:
            self.http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=100),
                json_serialize=_compact_json,
            )
        return self.http

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    def provider_subject(self, member_id: str, resident_id: str) -> str:
        """How one provider member knows a resident: stable for it, unrelated to other members' (§4)."""
        key = self.oidc.keyring.derive(Purpose.EXCHANGE_SUBJECT)
        return pairwise_identifier(key, f"exchange:{member_id}", resident_id)

    async def perform(self, db: AsyncSession, consumer: MemberSystem, body: DataRequestBody) -> DataRequestAnswer:
        consent, last_fetch = await self._counted_consent(db, consumer, body)
        items = sorted(set(consent.approved_items or [] if body.items is None else body.items))
        await self.oidc.keys.refresh(db)
        providers = {
            p: await self.desk.systems.get(db, p) for p in {i["provider"] for i in consent.items if i["id"] in items}
        }
        # No transaction stays open while providers answer: on SQLite it would hold the write lock (every
        # write on the platform would wait for the slowest provider), on PostgreSQL a pooled connection.
        await db.commit()
        request_id, now = str(uuid.uuid4()), utcnow()
        shares = self._shares(consent, consumer, providers, items, request_id, now)
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
        record = _exchange_record(consent, request_id, items, outcomes, receipt, now)
        if last_fetch:
            await self._record_last(db, consent, record)
        else:
            engine = db.bind
            assert isinstance(engine, AsyncEngine)  # the app's sessions are bound to its engine
            await self.journal.submit(engine, record)
        return DataRequestAnswer(
            id=request_id,
            consent_id=consent.id,
            created_at=now.isoformat(),
            results=[s.result() for s in shares],
            receipt=receipt,
        )

    async def _counted_consent(
        self, db: AsyncSession, consumer: MemberSystem, body: DataRequestBody
    ) -> tuple[Consent, bool]:
        """The consent, its fetch counted atomically with every check, so a burst cannot exceed it (the
        caller commits); and whether this was the last fetch it allows (it is then EXPIRED).

        The usual case is one statement. A refusal rolls the count back and reads the consent to say why:
        another consumer's consent is not found, items outside it are named, an unusable one gets its status.
        """
        now = utcnow()
        used_up = Consent.fetches + 1 >= Consent.max_fetches
        counted = await db.execute(
            update(Consent)
            .where(
                Consent.id == body.consent_id,
                Consent.consumer_system_id == consumer.id,
                Consent.status == ConsentStatus.ACTIVE.value,
                Consent.fetches < Consent.max_fetches,
                Consent.valid_until > now,
            )
            .values(
                fetches=Consent.fetches + 1,
                status=case((used_up, ConsentStatus.EXPIRED.value), else_=Consent.status),
                updated_at=now,
            )
            .returning(Consent)
            .execution_options(populate_existing=True)
        )
        consent = counted.scalar_one_or_none()
        if consent is not None and not _outside(consent, body):
            return consent, consent.status == ConsentStatus.EXPIRED.value
        await db.rollback()
        consent = await self.desk.for_consumer(db, consumer, body.consent_id)
        outside = _outside(consent, body)
        if outside:
            raise ConsentRefused(422, f"Not consented: {', '.join(outside)}.", "items")
        current = consent.status
        if current == ConsentStatus.ACTIVE.value:
            current = ConsentStatus.EXPIRED.value  # its time or its fetches ran out meanwhile
        raise ConsentRefused(409, f"The consent is {current}: no data may be requested under it.")

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
            # The gateway's own deadline covers connecting, sending and reading the whole answer.
            async with asyncio.timeout(self.timeout):
                status, content = await self._post(url, {"request": share.request})
        except TimeoutError:
            share.status, share.detail = (
                ProviderStatus.TIMEOUT,
                f"The provider did not answer within {self.timeout:g} s.",
            )
            return
        except aiohttp.ClientError as exc:
            share.detail = f"The provider could not be reached ({type(exc).__name__})."
            return
        if status != 200:
            share.detail = f"The provider answered HTTP {status}."
            return
        self._check_answer(share, consumer, content)

    async def _post(self, url: str, body: dict[str, str]) -> tuple[int, bytes]:
        """POST, no redirects followed; at most MAX_RESPONSE_BYTES + 1 of the answer are read."""
        async with self.client().post(url, json=body, allow_redirects=False) as answer:
            content = bytearray()
            async for chunk in answer.content.iter_chunked(64 * 1024):
                content += chunk
                if len(content) > MAX_RESPONSE_BYTES:
                    break
            return answer.status, bytes(content)

    def _check_answer(self, share: Forwarded, consumer: MemberSystem, content: bytes) -> None:
        try:
            if len(content) > MAX_RESPONSE_BYTES:
                raise ValueError("the answer is too large")
            response = json.loads(content)["response"]
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

    async def _record_last(self, db: AsyncSession, consent: Consent, record: ExchangeRecord) -> None:
        """The last fetch a consent allows: its record, and its expiry told to the consumer, together."""
        await _write_records(db, [record])
        await self.desk.record_expiry(db, consent)
        await db.commit()


def _outside(consent: Consent, body: DataRequestBody) -> list[str]:
    """Items asked for that the resident did not agree to share."""
    return sorted(set(body.items or []) - set(consent.approved_items or []))


def _exchange_record(
    consent: Consent, request_id: str, items: list[str], outcomes: list[dict[str, Any]], receipt: str, now: datetime
) -> ExchangeRecord:
    return ExchangeRecord(
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


async def _write_records(db: AsyncSession, records: list[ExchangeRecord]) -> None:
    """Data requests' records, in the residents' history and the audit log (a group commit's batch)."""
    db.add_all(records)
    await audit.record_many(
        db,
        [
            audit.AuditEntry(
                "exchange.data_request",
                actor=f"system:{r.consumer_system_id}",
                subject=f"consent:{r.consent_id}",
                data={
                    "request_id": r.id,
                    "items": r.items,
                    "outcomes": [(o["provider"], o["status"]) for o in r.outcomes or []],
                },
            )
            for r in records
        ],
    )


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


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
