"""The gateway's registry: members, their systems, the data catalogue and purposes.

Only public keys are stored: members keep their private keys. Data items are never updated in
place: publishing again adds a version, and consents name the version they were given under.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bauhinia.core.database import Base, UTCDateTime


class Member(Base):
    """A department (or, later, a regulated company), identified as ``instance/memberClass/memberCode``."""

    __tablename__ = "exchange_members"

    id: Mapped[str] = mapped_column(String(98), primary_key=True)
    member_class: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[dict[str, str]] = mapped_column(JSON)  # LocalisedText by value
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MemberSystem(Base):
    """A member's subsystem (``…/subsystem``): a data provider, consumer or both, with its public keys."""

    __tablename__ = "exchange_systems"

    id: Mapped[str] = mapped_column(String(131), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("exchange_members.id", ondelete="RESTRICT"), index=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    signing_jwks: Mapped[dict[str, Any]] = mapped_column(JSON)
    encryption_jwks: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_endpoint: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    # The OpenID client it gets tokens with (client_credentials): one client speaks for one system.
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id", ondelete="RESTRICT"), unique=True)
    # Where a consumer's residents may be sent back after deciding on a consent request (exact match).
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    allow_loopback_http: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DataItem(Base):
    """One version of a catalogued data item; the newest one not superseded is current."""

    __tablename__ = "exchange_data_items"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[dict[str, str]] = mapped_column(JSON)
    value_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    provider_system_id: Mapped[str] = mapped_column(ForeignKey("exchange_systems.id", ondelete="RESTRICT"), index=True)
    sensitivity: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(Text)
    purpose_limitation: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Purpose(Base):
    """Why data may be asked for, and which consumer systems may say so."""

    __tablename__ = "exchange_purposes"

    code: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[dict[str, str]] = mapped_column(JSON)
    consumer_system_ids: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Consent(Base):
    """A consumer's consent request and, once the resident decides, the consent itself.

    ``items`` is what was asked (each with its version, provider and whether it was optional);
    ``approved_items`` what the resident agreed to. The artefact is the gateway-signed JWS given out
    on approval. No resident data is held here beyond the resident's id.
    """

    __tablename__ = "exchange_consents"
    __table_args__ = (Index("ix_exchange_consents_resident_status", "resident_id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    consumer_system_id: Mapped[str] = mapped_column(ForeignKey("exchange_systems.id", ondelete="RESTRICT"), index=True)
    purpose_code: Mapped[str] = mapped_column(ForeignKey("exchange_purposes.code", ondelete="RESTRICT"))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    approved_items: Mapped[list[str] | None] = mapped_column(JSON)
    mode: Mapped[str] = mapped_column(String(8))
    valid_for: Mapped[int] = mapped_column(Integer)
    max_fetches: Mapped[int] = mapped_column(Integer)
    fetches: Mapped[int] = mapped_column(Integer, default=0)
    data_life: Mapped[int] = mapped_column(Integer)
    redirect_uri: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    resident_id: Mapped[str | None] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    # The guardian's consent on record that allowed a resident aged 11-17 to approve.
    guardian_consent_id: Mapped[str | None] = mapped_column(String(36))
    artefact: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    request_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExchangeRecord(Base):
    """One entry of a resident's data-use history: a consent event or a data request.

    It says who asked, for which items, under which consent, when, and how each provider answered —
    never a value. A data request's entry keeps the signed receipt given to the consumer.
    """

    __tablename__ = "exchange_records"
    __table_args__ = (Index("ix_exchange_records_resident_at", "resident_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    resident_id: Mapped[str | None] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    consent_id: Mapped[str] = mapped_column(ForeignKey("exchange_consents.id", ondelete="CASCADE"), index=True)
    consumer_system_id: Mapped[str] = mapped_column(String(131))
    event: Mapped[str] = mapped_column(String(32))
    items: Mapped[list[str]] = mapped_column(JSON)
    outcomes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    receipt: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
