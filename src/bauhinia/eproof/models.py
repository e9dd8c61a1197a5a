"""e-Proof's tables: credential types, issuers' keys, issued credentials, status lists, and the
transparency log (its entries, its tlog-tiles hash tiles and its signed checkpoints).

The log holds no personal data: an entry names an event, a credential type and a digest of the
issuer-signed credential, never a claim. Private keys are stored sealed under the master secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bauhinia.core.database import Base, UTCDateTime

LogInteger = BigInteger().with_variant(Integer, "sqlite")  # SQLite's INTEGER is 64-bit already


class CredentialType(Base):
    """A kind of licence or certificate a department issues, registered by an operator."""

    __tablename__ = "eproof_credential_types"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # e.g. td.driving-licence
    issuer_member_id: Mapped[str] = mapped_column(ForeignKey("exchange_members.id", ondelete="RESTRICT"), index=True)
    name: Mapped[dict[str, str]] = mapped_column(JSON)  # LocalisedText by value
    claims_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Top-level claims the holder may leave out of a presentation; the others are always disclosed.
    selective: Mapped[list[str]] = mapped_column(JSON)
    # The claims printed in the QR form (short forms kept small enough for a version ≤ 15 code).
    printed: Mapped[list[str]] = mapped_column(JSON)
    # Claim titles in three languages, for the wallet's card and the verification page.
    claim_titles: Mapped[dict[str, dict[str, str]]] = mapped_column(JSON)
    validity_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IssuerKey(Base):
    """An issuing department's signing key (ES256), generated and kept sealed by the platform."""

    __tablename__ = "eproof_issuer_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer_member_id: Mapped[str] = mapped_column(ForeignKey("exchange_members.id", ondelete="RESTRICT"), index=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_sealed: Mapped[bytes] = mapped_column(LargeBinary(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Published from created_at, signing from active_from (a rotation lets verifiers' trust files fetch
    # the new key first) until retired_at; published for ever after, as what it signed lives on.
    active_from: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class HolderKey(Base):
    """The key a resident's wallet binds credentials to and signs presentations with (sealed)."""

    __tablename__ = "eproof_holder_keys"

    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_sealed: Mapped[bytes] = mapped_column(LargeBinary(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StatusList(Base):
    """One issuer's Token Status List (2 bits per credential: valid, revoked, suspended)."""

    __tablename__ = "eproof_status_lists"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    issuer_member_id: Mapped[str] = mapped_column(ForeignKey("exchange_members.id", ondelete="RESTRICT"), index=True)
    size: Mapped[int] = mapped_column(Integer)
    next_index: Mapped[int] = mapped_column(Integer)
    # The published Status List Token, re-signed on every change, and its version for caching.
    token: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Credential(Base):
    """An issued credential: the SD-JWT VC for the wallet and the printable QR text, from the same claims."""

    __tablename__ = "eproof_credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type_id: Mapped[str] = mapped_column(ForeignKey("eproof_credential_types.id", ondelete="RESTRICT"), index=True)
    resident_id: Mapped[str | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"), index=True)
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    sd_jwt: Mapped[str] = mapped_column(Text)  # with every disclosure: the wallet chooses what to show
    printed: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # base64url SHA-256 of the issuer-signed JWT
    status_list_id: Mapped[str] = mapped_column(ForeignKey("eproof_status_lists.id", ondelete="RESTRICT"))
    status_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer, default=0)  # 0 valid, 1 revoked, 2 suspended
    log_index: Mapped[int] = mapped_column(LogInteger)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_eproof_credentials_status_slot", "status_list_id", "status_index", unique=True),)


class LogEntry(Base):
    """One entry of the transparency log, as appended (its leaf hash is in the level-0 tiles)."""

    __tablename__ = "eproof_log_entries"

    index: Mapped[int] = mapped_column(LogInteger, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary(1024))


class LogTile(Base):
    """A tlog-tiles hash tile: 256 hashes at ``level``, the ``index``-th of its level; partial tiles grow
    in place (a partial tile of width W is the first W hashes of the full one)."""

    __tablename__ = "eproof_log_tiles"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(LogInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary(8192))


class Checkpoint(Base):
    """A signed checkpoint (C2SP signed-note): one per appended batch."""

    __tablename__ = "eproof_checkpoints"

    size: Mapped[int] = mapped_column(LogInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Cosignature(Base):
    """A witness's co-signature line (C2SP tlog-cosignature) on one checkpoint."""

    __tablename__ = "eproof_cosignatures"

    size: Mapped[int] = mapped_column(ForeignKey("eproof_checkpoints.size", ondelete="CASCADE"), primary_key=True)
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    signature_line: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
