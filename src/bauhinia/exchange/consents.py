"""Consents: a consumer's request, the resident's decision, the signed artefact, and the lifecycle
PENDING → ACTIVE ⇄ PAUSED → REVOKED / EXPIRED (docs/exchange-protocol.md §2–3, §5).

Every change is recorded in the audit log and in the resident's history in the transaction of the
change; a change the consumer must hear of puts a signed event in the outbox in that same transaction.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core import audit, outbox
from bauhinia.core.database import utcnow
from bauhinia.exchange.models import Consent, DataItem, ExchangeRecord, Member, MemberSystem, Purpose
from bauhinia.exchange.schemas import (
    CONSENT_ID_PATTERN,
    ConsentDetails,
    ConsentRequestBody,
    ConsentRequested,
    ConsentStatus,
    SystemRole,
    member_of,
)
from bauhinia.oidc.service import OidcService

REQUEST_LIFETIME = timedelta(minutes=15)
ARTEFACT_TYP = "consent+jwt"
EVENT_TYP = "exchange-event+jwt"
WEBHOOK_KIND = "exchange.webhook"
SYSTEM_CACHE_SECONDS = 5.0


class ConsentRefused(Exception):
    """A consent operation refused: ``status`` is the HTTP status an API answers with."""

    def __init__(self, status: int, detail: str, location: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.location = status, detail, location


@dataclass(frozen=True)
class ConsentItemView:
    id: str
    version: int
    title: dict[str, str]
    provider_system_id: str
    provider_name: dict[str, str]
    sensitivity: str
    optional: bool
    approved: bool | None  # None while the resident has not decided


@dataclass(frozen=True)
class ConsentView:
    """A consent as its resident sees it, with every name resolved for the page."""

    id: str
    status: ConsentStatus
    purpose_code: str
    purpose_description: dict[str, str]
    consumer_system_id: str
    consumer_name: dict[str, str]
    items: list[ConsentItemView]
    mode: str
    valid_for: int
    valid_until: datetime | None
    max_fetches: int
    fetches: int
    data_life: int
    created_at: datetime
    decided_at: datetime | None
    request_expires_at: datetime
    updated_at: datetime
    guardian_consent_id: str | None

    @property
    def approved_items(self) -> list[ConsentItemView]:
        return [i for i in self.items if i.approved]


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a resident's data-use history (never a value)."""

    id: str
    at: datetime
    event: str
    consent_id: str
    consumer_name: dict[str, str]
    purpose_description: dict[str, str]
    items: list[tuple[str, dict[str, str]]]  # (item id, title)
    outcomes: list[dict[str, Any]]  # provider, provider_name, items, status


async def _find(db: AsyncSession, consent_id: str) -> Consent | None:
    """The consent, if the id could be one (ids that cannot exist are not looked up: PostgreSQL refuses NUL)."""
    if len(consent_id) != 36 or re.fullmatch(CONSENT_ID_PATTERN, consent_id) is None:
        return None
    return await db.get(Consent, consent_id)


def consent_details(row: Consent) -> ConsentDetails:
    items = row.approved_items if row.approved_items is not None else [i["id"] for i in row.items]
    return ConsentDetails.model_validate(
        {
            "id": row.id,
            "status": row.status,
            "purpose": row.purpose_code,
            "mode": row.mode,
            "items": items,
            "valid_until": row.valid_until.isoformat() if row.valid_until else None,
            "max_fetches": row.max_fetches,
            "fetches": row.fetches,
            "data_life": row.data_life,
            "artefact": row.artefact,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }
    )


class ConsentDesk:
    """Where consents are asked for, decided, changed and read."""

    def __init__(self, oidc: OidcService) -> None:
        self.oidc = oidc
        self.systems = RecentSystems()

    # --- the consumer's side ----------------------------------------------------------------------

    async def request(self, db: AsyncSession, consumer: MemberSystem, body: ConsentRequestBody) -> ConsentRequested:
        purpose = await db.get(Purpose, body.purpose)
        if purpose is None or consumer.id not in purpose.consumer_system_ids:
            raise ConsentRefused(422, f"Purpose {body.purpose!r} is not registered for {consumer.id!r}.", "purpose")
        if body.redirect_uri not in (consumer.redirect_uris or []):
            raise ConsentRefused(
                422, "redirect_uri is not one of the system's registered redirect URIs.", "redirect_uri"
            )
        items = []
        for asked in body.items:
            item = await current_item(db, asked.id)
            if item is None:
                raise ConsentRefused(422, f"No data item {asked.id!r} in the catalogue.", "items")
            provider = await db.get(MemberSystem, item.provider_system_id)
            if provider is None or provider.disabled_at is not None:
                raise ConsentRefused(422, f"The provider of {asked.id!r} is not taking part.", "items")
            items.append(
                {
                    "id": item.id,
                    "version": item.version,
                    "provider": item.provider_system_id,
                    "optional": asked.optional,
                }
            )
        now = utcnow()
        row = Consent(
            id=str(uuid.uuid4()),
            consumer_system_id=consumer.id,
            purpose_code=purpose.code,
            items=items,
            approved_items=None,
            mode=body.mode.value,
            valid_for=body.valid_for,
            max_fetches=body.max_fetches,
            fetches=0,
            data_life=body.data_life,
            redirect_uri=body.redirect_uri,
            state=body.state,
            status=ConsentStatus.PENDING.value,
            created_at=now,
            request_expires_at=now + REQUEST_LIFETIME,
            updated_at=now,
        )
        db.add(row)
        await db.flush()
        await _record(db, row, "consent.requested", actor=f"system:{consumer.id}")
        await db.commit()
        return ConsentRequested(
            id=row.id,
            status=ConsentStatus.PENDING,
            review_url=self.oidc.endpoint(f"/exchange/consents/{row.id}"),
            expires_at=row.request_expires_at.isoformat(),
        )

    async def for_consumer(self, db: AsyncSession, consumer: MemberSystem, consent_id: str) -> Consent:
        """The consent if this consumer asked for it: anyone else is told there is none."""
        row = await _find(db, consent_id)
        if row is None or row.consumer_system_id != consumer.id:
            raise ConsentRefused(404, f"No consent {consent_id!r} for this system.")
        await self.expire_due(db, row)
        return row

    async def of_consumer(
        self, db: AsyncSession, consumer: MemberSystem, status: ConsentStatus | None
    ) -> list[ConsentDetails]:
        await self.expire_due(db)
        query = select(Consent).where(Consent.consumer_system_id == consumer.id).order_by(Consent.created_at.desc())
        if status is not None:
            query = query.where(Consent.status == status.value)
        return [consent_details(r) for r in await db.scalars(query.limit(500))]

    # --- the resident's side ----------------------------------------------------------------------

    async def for_review(self, db: AsyncSession, consent_id: str, resident_id: str) -> ConsentView:
        """A pending request (anyone signed in may be the one it was sent to) or the resident's own consent."""
        row = await _find(db, consent_id)
        if row is None or (row.resident_id is not None and row.resident_id != resident_id):
            raise ConsentRefused(404, "There is no such consent request.")
        await self.expire_due(db, row)
        return await self.view(db, row)

    async def decide(
        self,
        db: AsyncSession,
        consent_id: str,
        resident_id: str,
        *,
        approve: bool,
        left_out: set[str],
        today: date,
    ) -> tuple[ConsentView, str]:
        """Approve (leaving out optional items) or decline a pending request; returns where to send the browser."""
        row = await _find(db, consent_id)
        if row is None or (row.resident_id is not None and row.resident_id != resident_id):
            raise ConsentRefused(404, "There is no such consent request.")
        await self.expire_due(db, row)
        if row.status != ConsentStatus.PENDING.value:
            raise ConsentRefused(409, "This request has already been decided or has expired.")
        required = {i["id"] for i in row.items if not i["optional"]}
        if approve and left_out & required:
            raise ConsentRefused(422, "Required items cannot be left out: decline the request instead.")
        now = utcnow()
        row.resident_id, row.decided_at, row.updated_at = resident_id, now, now
        _remember(db, row, "consent.requested", [i["id"] for i in row.items], at=row.created_at)
        if approve:
            await self.oidc.keys.refresh(db)  # every process signs with the current key (rotation)
            rule = await self.oidc.identity.guardian_rule(db, resident_id, today)
            if not rule.may_consent:
                raise ConsentRefused(403, "guardian")
            row.guardian_consent_id = rule.confirmed_guardian_consent_id
            row.approved_items = [i["id"] for i in row.items if i["id"] not in left_out]
            row.valid_until = now + timedelta(seconds=row.valid_for)
            row.status = ConsentStatus.ACTIVE.value
            row.artefact = self.artefact(row, now)
        else:
            row.approved_items = []
            row.status = ConsentStatus.REJECTED.value
        await _record(db, row, "consent.approved" if approve else "consent.rejected", actor=f"resident:{resident_id}")
        await db.commit()
        query = urlencode({"consent_id": row.id, "status": row.status, "state": row.state})
        return await self.view(db, row), f"{row.redirect_uri}?{query}"

    def artefact(self, row: Consent, now: datetime) -> str:
        """The gateway-signed consent artefact: no resident identifier and no status in it (§3)."""
        assert row.valid_until is not None
        assert row.approved_items is not None
        approved = set(row.approved_items)
        claims = {
            "iss": self.oidc.issuer,
            "jti": row.id,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(row.valid_until.timestamp()),
            "consumer": row.consumer_system_id,
            "purpose": row.purpose_code,
            "items": [
                {"id": i["id"], "version": i["version"], "provider": i["provider"]}
                for i in row.items
                if i["id"] in approved
            ],
            "mode": row.mode,
            "max_fetches": row.max_fetches,
            "data_life": row.data_life,
        }
        return self.oidc.signer.sign(claims, typ=ARTEFACT_TYP)

    async def of_resident(self, db: AsyncSession, resident_id: str) -> list[ConsentView]:
        await self.expire_due(db)
        query = select(Consent).where(Consent.resident_id == resident_id).order_by(Consent.updated_at.desc())
        return [await self.view(db, r) for r in await db.scalars(query.limit(500))]

    async def change(self, db: AsyncSession, consent_id: str, resident_id: str, action: str) -> ConsentView:
        """The resident pauses, resumes or revokes; the consumer is told through the outbox."""
        row = await _find(db, consent_id)
        if row is None or row.resident_id != resident_id:
            raise ConsentRefused(404, "There is no such consent.")
        await self.expire_due(db, row)
        allowed = {
            "pause": ({ConsentStatus.ACTIVE}, ConsentStatus.PAUSED),
            "resume": ({ConsentStatus.PAUSED}, ConsentStatus.ACTIVE),
            "revoke": ({ConsentStatus.ACTIVE, ConsentStatus.PAUSED}, ConsentStatus.REVOKED),
        }
        if action not in allowed:
            raise ConsentRefused(404, "No such action.")
        sources, target = allowed[action]
        changed = await db.execute(
            update(Consent)
            .where(Consent.id == row.id, Consent.status.in_([s.value for s in sources]))
            .values(status=target.value, updated_at=utcnow())
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            raise ConsentRefused(409, "This consent cannot be changed that way now.")
        await db.refresh(row)
        await _record(db, row, f"consent.{_PAST[action]}", actor=f"resident:{resident_id}")
        await self._tell_consumer(db, row)
        await db.commit()
        return await self.view(db, row)

    async def expire_due(self, db: AsyncSession, row: Consent | None = None) -> int:
        """Mark consents whose time has passed EXPIRED (all of them, or one), telling consumers of
        consents that were in use. Runs lazily wherever consents are read, and in ``bauhinia purge``."""
        now = utcnow()
        if row is not None:
            due_rows = [row] if _is_due(row, now) else []
        else:
            due = or_(  # _is_due, as SQL
                (Consent.status == ConsentStatus.PENDING.value) & (Consent.request_expires_at <= now),
                Consent.status.in_([ConsentStatus.ACTIVE.value, ConsentStatus.PAUSED.value])
                & (Consent.valid_until <= now),
            )
            due_rows = list(await db.scalars(select(Consent).where(due).limit(1000)))
        expired = 0
        for consent in due_rows:
            was_in_use = consent.status != ConsentStatus.PENDING.value
            consent.status, consent.updated_at = ConsentStatus.EXPIRED.value, now
            if was_in_use:
                await self.record_expiry(db, consent)
            else:
                await _record(db, consent, "consent.expired", actor="gateway")
            expired += 1
        if expired:
            await db.commit()
        return expired

    async def record_expiry(self, db: AsyncSession, row: Consent) -> None:
        """An ACTIVE or PAUSED consent has expired (its time or its fetches ran out): record it and tell
        the consumer, in the caller's transaction."""
        await _record(db, row, "consent.expired", actor="gateway")
        await self._tell_consumer(db, row)

    async def _tell_consumer(self, db: AsyncSession, row: Consent) -> None:
        consumer = await db.get(MemberSystem, row.consumer_system_id)
        if consumer is None or not consumer.webhook_url:
            return
        await self.oidc.keys.refresh(db)
        event = {
            "iss": self.oidc.issuer,
            "aud": row.consumer_system_id,
            "jti": str(uuid.uuid4()),
            "iat": int(utcnow().timestamp()),
            "event": "consent.status",
            "consent_id": row.id,
            "status": row.status,
        }
        body = self.oidc.signer.sign(event, typ=EVENT_TYP)
        await outbox.enqueue(db, kind=WEBHOOK_KIND, url=consumer.webhook_url, body=body, content_type="application/jwt")

    async def view(self, db: AsyncSession, row: Consent) -> ConsentView:
        purpose = await db.get(Purpose, row.purpose_code)
        approved = set(row.approved_items) if row.approved_items is not None else None
        items = []
        for asked in row.items:
            item = await db.get(DataItem, (asked["id"], asked["version"]))
            assert item is not None  # items are never deleted
            items.append(
                ConsentItemView(
                    id=asked["id"],
                    version=asked["version"],
                    title=item.title,
                    provider_system_id=asked["provider"],
                    provider_name=await member_name(db, asked["provider"]),
                    sensitivity=item.sensitivity,
                    optional=asked["optional"],
                    approved=None if approved is None else asked["id"] in approved,
                )
            )
        return ConsentView(
            id=row.id,
            status=ConsentStatus(row.status),
            purpose_code=row.purpose_code,
            purpose_description=purpose.description if purpose else {"en": row.purpose_code},
            consumer_system_id=row.consumer_system_id,
            consumer_name=await member_name(db, row.consumer_system_id),
            items=items,
            mode=row.mode,
            valid_for=row.valid_for,
            valid_until=row.valid_until,
            max_fetches=row.max_fetches,
            fetches=row.fetches,
            data_life=row.data_life,
            created_at=row.created_at,
            decided_at=row.decided_at,
            request_expires_at=row.request_expires_at,
            updated_at=row.updated_at,
            guardian_consent_id=row.guardian_consent_id,
        )

    async def history(self, db: AsyncSession, resident_id: str, limit: int = 200) -> list[HistoryEntry]:
        query = (
            select(ExchangeRecord, Consent)
            .join(Consent, Consent.id == ExchangeRecord.consent_id)
            .where(ExchangeRecord.resident_id == resident_id)
            .order_by(ExchangeRecord.created_at.desc(), ExchangeRecord.id)
            .limit(limit)
        )
        entries = []
        for record, consent in await db.execute(query):
            purpose = await db.get(Purpose, consent.purpose_code)
            versions = {i["id"]: i["version"] for i in consent.items}
            titles = [(i, await _title(db, i, versions.get(i))) for i in record.items]
            outcomes = [{**o, "provider_name": await member_name(db, o["provider"])} for o in (record.outcomes or [])]
            entries.append(
                HistoryEntry(
                    id=record.id,
                    at=record.created_at,
                    event=record.event,
                    consent_id=consent.id,
                    consumer_name=await member_name(db, consent.consumer_system_id),
                    purpose_description=purpose.description if purpose else {"en": consent.purpose_code},
                    items=titles,
                    outcomes=outcomes,
                )
            )
        return entries


_PAST = {"pause": "paused", "resume": "resumed", "revoke": "revoked"}


def _is_due(row: Consent, now: datetime) -> bool:
    if row.status == ConsentStatus.PENDING.value:
        return row.request_expires_at <= now
    in_use = row.status in (ConsentStatus.ACTIVE.value, ConsentStatus.PAUSED.value)
    return in_use and row.valid_until is not None and row.valid_until <= now


async def _record(db: AsyncSession, row: Consent, event: str, *, actor: str) -> None:
    """The audit event and, once a resident is known, their history entry — in the caller's transaction."""
    items = row.approved_items if row.approved_items else [i["id"] for i in row.items]
    await audit.record(
        db,
        f"exchange.{event.replace('.', '_')}",
        actor=actor,
        subject=f"consent:{row.id}",
        data={"consumer": row.consumer_system_id, "purpose": row.purpose_code, "items": items, "status": row.status},
    )
    if row.resident_id is not None:
        _remember(db, row, event, items, at=utcnow())


def _remember(db: AsyncSession, row: Consent, event: str, items: list[str], *, at: datetime) -> None:
    """A line of the resident's history (the request itself is remembered once the resident is known)."""
    db.add(
        ExchangeRecord(
            id=str(uuid.uuid4()),
            resident_id=row.resident_id,
            consent_id=row.id,
            consumer_system_id=row.consumer_system_id,
            event=event,
            items=items,
            outcomes=None,
            created_at=at,
        )
    )


async def current_item(db: AsyncSession, item_id: str) -> DataItem | None:
    """The current version of a catalogue item: its newest (publishing supersedes the one before)."""
    query = (
        select(DataItem)
        .where(DataItem.id == item_id, DataItem.superseded_at.is_(None))
        .order_by(DataItem.version.desc())
    )
    row: DataItem | None = await db.scalar(query.limit(1))
    return row


async def _title(db: AsyncSession, item_id: str, version: int | None) -> dict[str, str]:
    item = await db.get(DataItem, (item_id, version)) if version is not None else await current_item(db, item_id)
    return item.title if item is not None else {"en": item_id}


async def member_name(db: AsyncSession, system_id: str) -> dict[str, str]:
    member = await db.get(Member, member_of(system_id))
    return member.name if member is not None else {"en": system_id}


class RecentSystems:
    """Member systems as read at most ``SYSTEM_CACHE_SECONDS`` ago, for the data path.

    Every data request needs its consumer's row and each provider's; they change only when an operator
    registers or disables a system. Read each time, they were three of a data request's ten statements
    (bench/exchange.py). A disabled system is refused by this process at once and by every other node
    within the cache's lifetime. The rows kept are detached copies: a row still attached to the session
    that read it would be expired by that session's rollback under another request's feet.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[float, MemberSystem | None]] = {}
        self._by_client: dict[str, tuple[float, MemberSystem | None]] = {}

    async def get(self, db: AsyncSession, system_id: str) -> MemberSystem | None:
        return await self._read(db, self._by_id, system_id, MemberSystem.id == system_id)

    async def of_client(self, db: AsyncSession, client_id: str) -> MemberSystem | None:
        return await self._read(db, self._by_client, client_id, MemberSystem.client_id == client_id)

    def forget(self) -> None:
        """Drop every copy (this process changed a system)."""
        self._by_id.clear()
        self._by_client.clear()

    async def _read(
        self, db: AsyncSession, recent: dict[str, tuple[float, MemberSystem | None]], key: str, where: Any
    ) -> MemberSystem | None:
        kept = recent.get(key)
        if kept is not None and time.monotonic() - kept[0] < SYSTEM_CACHE_SECONDS:
            return kept[1]
        row = await db.scalar(select(MemberSystem).where(where).execution_options(populate_existing=True))
        if row is not None:
            db.expunge(row)
        if len(recent) > 10_000:  # bounded: client ids come from requests
            recent.clear()
        recent[key] = (time.monotonic(), row)
        return row


async def consumer_system(db: AsyncSession, systems: RecentSystems, client_id: str) -> MemberSystem:
    """The active consumer system this OpenID client speaks for, or a 403."""
    system = await systems.of_client(db, client_id)
    if system is None or system.disabled_at is not None or SystemRole.CONSUMER.value not in system.roles:
        raise ConsentRefused(403, "This client does not speak for an active consumer system.")
    return system


__all__ = ["ConsentDesk", "ConsentRefused", "ConsentView", "HistoryEntry", "RecentSystems", "consumer_system"]
