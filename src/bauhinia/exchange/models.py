"""The gateway's registry: members, their systems, the data catalogue and purposes.

Only public keys are stored: members keep their private keys. Data items are never updated in
place: publishing again adds a version, and consents name the version they were given under.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
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
