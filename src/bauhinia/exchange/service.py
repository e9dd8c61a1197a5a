"""The exchange gateway's service: the only module other domains may import.

It holds the registry (members, their systems, the versioned data catalogue and purposes) and gives
access to the consent desk (``consents``: requests, decisions, the lifecycle, residents' history) and
the forwarder (``forwarder``: data requests). Every change is recorded in the audit log in the
transaction of the change, then committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core import audit
from bauhinia.core.database import utcnow
from bauhinia.exchange.consents import ConsentDesk, current_item
from bauhinia.exchange.forwarding import Forwarder
from bauhinia.exchange.models import DataItem, Member, MemberSystem, Purpose
from bauhinia.exchange.schemas import (
    ITEM_ID_PATTERN,
    MEMBER_ID_PATTERN,
    PURPOSE_CODE_PATTERN,
    SYSTEM_ID_PATTERN,
    DataItemPublication,
    MemberRegistration,
    PublishedDataItem,
    PurposeRegistration,
    RegisteredMember,
    RegisteredPurpose,
    RegisteredSystem,
    SystemRegistration,
    SystemRole,
    checked_json_schema,
    member_of,
)
from bauhinia.oidc.service import OidcService


@dataclass
class ExchangeError(Exception):
    """A registration the gateway refuses: ``status`` is the HTTP status the API answers with."""

    status: int
    detail: str
    location: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.detail


def not_found(what: str) -> ExchangeError:
    return ExchangeError(404, f"No {what}.")


def _well_formed(pattern: str, value: str, what: str) -> None:
    """Ids that cannot exist are not looked up (PostgreSQL refuses NUL bytes, for one)."""
    if len(value) > 131 or not re.fullmatch(pattern, value):
        raise not_found(f"{what} {value!r}")


def duplicate(detail: str) -> ExchangeError:
    return ExchangeError(409, detail)


def invalid(location: str, detail: str) -> ExchangeError:
    return ExchangeError(422, detail, [location])


def member_view(row: Member) -> RegisteredMember:
    return RegisteredMember.model_validate(
        {
            "id": row.id,
            "name": row.name,
            "member_class": row.member_class,
            "created_at": row.created_at.isoformat(),
            "disabled": row.disabled_at is not None,
        }
    )


def system_view(row: MemberSystem) -> RegisteredSystem:
    return RegisteredSystem.model_validate(
        {
            "id": row.id,
            "member_id": row.member_id,
            "roles": row.roles,
            "signing_jwks": row.signing_jwks,
            "encryption_jwks": row.encryption_jwks,
            "data_endpoint": row.data_endpoint,
            "webhook_url": row.webhook_url,
            "client_id": row.client_id,
            "redirect_uris": row.redirect_uris or [],
            "allow_loopback_http": row.allow_loopback_http,
            "created_at": row.created_at.isoformat(),
            "disabled": row.disabled_at is not None,
        }
    )


def item_view(row: DataItem) -> PublishedDataItem:
    return PublishedDataItem.model_validate(
        {
            "id": row.id,
            "version": row.version,
            "title": row.title,
            "value_schema": row.value_schema,
            "provider_system_id": row.provider_system_id,
            "sensitivity": row.sensitivity,
            "legal_basis": row.legal_basis,
            "purpose_limitation": row.purpose_limitation,
            "published_at": row.published_at.isoformat(),
            "superseded": row.superseded_at is not None,
        }
    )


def purpose_view(row: Purpose) -> RegisteredPurpose:
    return RegisteredPurpose.model_validate(
        {
            "code": row.code,
            "description": row.description,
            "consumer_system_ids": row.consumer_system_ids,
            "created_at": row.created_at.isoformat(),
        }
    )


def _texts(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return dumped


class ExchangeService:
    def __init__(self, oidc: OidcService, *, provider_timeout: float = 5.0) -> None:
        self.oidc = oidc
        self.consents = ConsentDesk(oidc)
        self.forwarder = Forwarder(oidc, self.consents, timeout=provider_timeout)

    async def _commit_new(self, db: AsyncSession, row: Any, conflict: str) -> None:
        """Insert ``row``; another node inserting the same key first is a duplicate, not an error."""
        db.add(row)
        try:
            await db.flush()
        except IntegrityError as exc:
            await db.rollback()
            raise duplicate(conflict) from exc

    # --- members ----------------------------------------------------------------------------------

    async def register_member(self, db: AsyncSession, member: MemberRegistration, *, actor: str) -> RegisteredMember:
        if await db.get(Member, member.id) is not None:
            raise duplicate(f"Member {member.id!r} is already registered.")
        row = Member(id=member.id, member_class=member.id.split("/")[1], name=_texts(member.name), created_at=utcnow())
        await self._commit_new(db, row, f"Member {member.id!r} is already registered.")
        await audit.record(db, "exchange.member_registered", actor=actor, subject=f"member:{member.id}")
        await db.commit()
        return member_view(row)

    async def members(self, db: AsyncSession) -> list[RegisteredMember]:
        return [member_view(r) for r in await db.scalars(select(Member).order_by(Member.id))]

    async def member(self, db: AsyncSession, member_id: str) -> RegisteredMember:
        _well_formed(MEMBER_ID_PATTERN, member_id, "member")
        row = await db.get(Member, member_id)
        if row is None:
            raise not_found(f"member {member_id!r}")
        return member_view(row)

    async def disable_member(self, db: AsyncSession, member_id: str, *, actor: str) -> RegisteredMember:
        """Disable a member and every system of it: none of them can take part in exchanges any more."""
        _well_formed(MEMBER_ID_PATTERN, member_id, "member")
        if await db.get(Member, member_id) is None:
            raise not_found(f"member {member_id!r}")
        now = utcnow()
        changed = await db.execute(
            update(Member).where(Member.id == member_id, Member.disabled_at.is_(None)).values(disabled_at=now)
        )
        if changed.rowcount:  # type: ignore[attr-defined]
            await db.execute(
                update(MemberSystem)
                .where(MemberSystem.member_id == member_id, MemberSystem.disabled_at.is_(None))
                .values(disabled_at=now)
            )
            await audit.record(db, "exchange.member_disabled", actor=actor, subject=f"member:{member_id}")
        await db.commit()
        self.consents.systems.forget()
        return await self.member(db, member_id)

    # --- systems ----------------------------------------------------------------------------------

    async def register_system(self, db: AsyncSession, system: SystemRegistration, *, actor: str) -> RegisteredSystem:
        if await db.get(MemberSystem, system.id) is not None:
            raise duplicate(f"System {system.id!r} is already registered.")
        member = await db.get(Member, member_of(system.id))
        if member is None or member.disabled_at is not None:
            raise invalid("id", f"No active member {member_of(system.id)!r}: register the member first.")
        await self._check_client(db, system.client_id)
        row = MemberSystem(
            id=system.id,
            member_id=member.id,
            roles=[r.value for r in system.roles],
            signing_jwks=system.signing_jwks,
            encryption_jwks=system.encryption_jwks,
            data_endpoint=system.data_endpoint,
            webhook_url=system.webhook_url,
            client_id=system.client_id,
            redirect_uris=system.redirect_uris,
            allow_loopback_http=system.allow_loopback_http,
            created_at=utcnow(),
        )
        await self._commit_new(db, row, f"System {system.id!r} or its client is already registered.")
        await audit.record(
            db,
            "exchange.system_registered",
            actor=actor,
            subject=f"system:{system.id}",
            data={"roles": row.roles, "client_id": system.client_id},
        )
        await db.commit()
        self.consents.systems.forget()  # it may have been looked up, and remembered absent, a moment ago
        return system_view(row)

    async def _check_client(self, db: AsyncSession, client_id: str) -> None:
        client = await self.oidc.clients.get(db, client_id, fresh=True)
        if client is None or client.disabled:
            raise invalid("client_id", f"No active OpenID client {client_id!r}: register it first.")
        if "client_credentials" not in client.metadata.grant_types:
            raise invalid("client_id", f"Client {client_id!r} may not use the client_credentials grant.")
        taken = await db.scalar(select(MemberSystem.id).where(MemberSystem.client_id == client_id))
        if taken is not None:
            raise duplicate(f"Client {client_id!r} already speaks for system {taken!r}.")

    async def systems(self, db: AsyncSession, member_id: str | None = None) -> list[RegisteredSystem]:
        query = select(MemberSystem).order_by(MemberSystem.id)
        if member_id is not None:
            _well_formed(MEMBER_ID_PATTERN, member_id, "member")
            query = query.where(MemberSystem.member_id == member_id)
        return [system_view(r) for r in await db.scalars(query)]

    async def system(self, db: AsyncSession, system_id: str) -> RegisteredSystem:
        _well_formed(SYSTEM_ID_PATTERN, system_id, "system")
        row = await db.get(MemberSystem, system_id)
        if row is None:
            raise not_found(f"system {system_id!r}")
        return system_view(row)

    async def disable_system(self, db: AsyncSession, system_id: str, *, actor: str) -> RegisteredSystem:
        _well_formed(SYSTEM_ID_PATTERN, system_id, "system")
        if await db.get(MemberSystem, system_id) is None:
            raise not_found(f"system {system_id!r}")
        changed = await db.execute(
            update(MemberSystem)
            .where(MemberSystem.id == system_id, MemberSystem.disabled_at.is_(None))
            .values(disabled_at=utcnow())
        )
        if changed.rowcount:  # type: ignore[attr-defined]
            await audit.record(db, "exchange.system_disabled", actor=actor, subject=f"system:{system_id}")
        await db.commit()
        self.consents.systems.forget()
        return await self.system(db, system_id)

    async def _active_system(self, db: AsyncSession, system_id: str, role: SystemRole, location: str) -> None:
        row = await db.get(MemberSystem, system_id)
        if row is None or row.disabled_at is not None:
            raise invalid(location, f"No active system {system_id!r}.")
        if role.value not in row.roles:
            raise invalid(location, f"System {system_id!r} is not a data {role.value}.")

    # --- the data catalogue -----------------------------------------------------------------------

    async def publish_item(self, db: AsyncSession, item: DataItemPublication, *, actor: str) -> PublishedDataItem:
        """Publish an item, or a new version of it: the previous version is superseded but stays readable."""
        await self._active_system(db, item.provider_system_id, SystemRole.PROVIDER, "provider_system_id")
        current = await current_item(db, item.id)
        if current is not None:
            if current.provider_system_id != item.provider_system_id:
                raise invalid("provider_system_id", "An item stays with its provider: publish it under a new id.")
            if item_view(current).model_dump(include=set(DataItemPublication.model_fields)) == item.model_dump():
                raise duplicate(f"Version {current.version} of {item.id!r} already says exactly this.")
            current.superseded_at = utcnow()
        version = 1 if current is None else current.version + 1
        row = DataItem(
            id=item.id,
            version=version,
            title=_texts(item.title),
            value_schema=item.value_schema,
            provider_system_id=item.provider_system_id,
            sensitivity=item.sensitivity.value,
            legal_basis=item.legal_basis,
            purpose_limitation=item.purpose_limitation,
            published_at=utcnow(),
        )
        await self._commit_new(db, row, f"Version {version} of {item.id!r} was published meanwhile.")
        await audit.record(
            db, "exchange.item_published", actor=actor, subject=f"item:{item.id}", data={"version": version}
        )
        await db.commit()
        return item_view(row)

    async def items(self, db: AsyncSession, *, include_superseded: bool = False) -> list[PublishedDataItem]:
        query = select(DataItem).order_by(DataItem.id, DataItem.version)
        if not include_superseded:
            query = query.where(DataItem.superseded_at.is_(None))
        return [item_view(r) for r in await db.scalars(query)]

    async def item(self, db: AsyncSession, item_id: str, version: int | None = None) -> PublishedDataItem:
        """The current version of an item, or the version named."""
        _well_formed(ITEM_ID_PATTERN, item_id, "data item")
        row = await current_item(db, item_id) if version is None else await db.get(DataItem, (item_id, version))
        if row is None:
            raise not_found(f"data item {item_id!r}" + ("" if version is None else f" version {version}"))
        return item_view(row)

    # --- purposes ---------------------------------------------------------------------------------

    async def register_purpose(
        self, db: AsyncSession, purpose: PurposeRegistration, *, actor: str
    ) -> RegisteredPurpose:
        if await db.get(Purpose, purpose.code) is not None:
            raise duplicate(f"Purpose {purpose.code!r} is already registered.")
        for system_id in purpose.consumer_system_ids:
            await self._active_system(db, system_id, SystemRole.CONSUMER, "consumer_system_ids")
        row = Purpose(
            code=purpose.code,
            description=_texts(purpose.description),
            consumer_system_ids=purpose.consumer_system_ids,
            created_at=utcnow(),
        )
        await self._commit_new(db, row, f"Purpose {purpose.code!r} is already registered.")
        await audit.record(
            db,
            "exchange.purpose_registered",
            actor=actor,
            subject=f"purpose:{purpose.code}",
            data={"consumers": purpose.consumer_system_ids},
        )
        await db.commit()
        return purpose_view(row)

    # --- for other domains ------------------------------------------------------------------------

    async def active_member(self, db: AsyncSession, member_id: str) -> RegisteredMember | None:
        """The member, if it is registered and not disabled."""
        row = await db.get(Member, member_id)
        return member_view(row) if row is not None and row.disabled_at is None else None

    async def member_of_client(self, db: AsyncSession, client_id: str) -> str | None:
        """The active member an OpenID client speaks for (through one of its active systems), or None."""
        system = await self.consents.systems.of_client(db, client_id)
        if system is None or system.disabled_at is not None:
            return None
        member = await db.get(Member, system.member_id)
        return member.id if member is not None and member.disabled_at is None else None

    async def purposes(self, db: AsyncSession) -> list[RegisteredPurpose]:
        return [purpose_view(r) for r in await db.scalars(select(Purpose).order_by(Purpose.code))]

    async def purpose(self, db: AsyncSession, code: str) -> RegisteredPurpose:
        _well_formed(PURPOSE_CODE_PATTERN, code, "purpose")
        row = await db.get(Purpose, code)
        if row is None:
            raise not_found(f"purpose {code!r}")
        return purpose_view(row)


def exchange_service(request: Request) -> ExchangeService:
    service: ExchangeService = request.app.state.exchange
    return service


__all__ = [
    "ITEM_ID_PATTERN",
    "MEMBER_ID_PATTERN",
    "ExchangeError",
    "ExchangeService",
    "checked_json_schema",
    "exchange_service",
]
