"""Identity tables. Identity card numbers are stored only as a keyed hash and a masked form."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bauhinia.core.database import Base, UTCDateTime, new_id


class Resident(Base):
    __tablename__ = "residents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    english_surname: Mapped[str] = mapped_column(String(80))
    english_given_names: Mapped[str] = mapped_column(String(120))
    chinese_name: Mapped[str | None] = mapped_column(String(40))
    id_number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str] = mapped_column(String(16))
    date_of_birth: Mapped[date] = mapped_column(Date)
    gender: Mapped[str] = mapped_column(String(1))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    mobile: Mapped[str | None] = mapped_column(String(20))
    residential_address: Mapped[str | None] = mapped_column(String(300))
    preferred_language: Mapped[str] = mapped_column(String(8), default="en")
    assurance_level: Mapped[str] = mapped_column(String(16), default="basic")
    webauthn_user_handle: Mapped[bytes] = mapped_column(LargeBinary(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    authenticators: Mapped[list[Authenticator]] = relationship(
        back_populates="resident", cascade="all, delete-orphan", order_by="Authenticator.created_at"
    )


class Authenticator(Base):
    """One way a resident proves who they are: a password, a TOTP app, a passkey, or recovery codes."""

    __tablename__ = "authenticators"
    __table_args__ = (UniqueConstraint("credential_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # password: the argon2id hash
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # totp: the sealed secret and the last accepted time step (a code is good once)
    secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary(128))
    last_step: Mapped[int | None] = mapped_column(Integer)
    # passkey: the WebAuthn credential
    credential_id: Mapped[bytes | None] = mapped_column(LargeBinary(1024))
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary(1024))
    sign_count: Mapped[int | None] = mapped_column(Integer)
    transports: Mapped[list[str] | None] = mapped_column(JSON)
    backed_up: Mapped[bool | None] = mapped_column()
    # recovery: SHA-256 digests of the unused codes (codes are 80-bit random, so a fast hash suffices)
    code_hashes: Mapped[list[str] | None] = mapped_column(JSON)

    resident: Mapped[Resident] = relationship(back_populates="authenticators")


class GuardianConsent(Base):
    """A parent's or guardian's consent for a resident aged 11 to 17."""

    __tablename__ = "guardian_consents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    guardian_name: Mapped[str] = mapped_column(String(160))
    guardian_id_number_hash: Mapped[str] = mapped_column(String(64))
    guardian_id_number_masked: Mapped[str] = mapped_column(String(16))
    relationship_to_resident: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_by: Mapped[str] = mapped_column(String(64))
    confirmed_by_staff_id: Mapped[str | None] = mapped_column(ForeignKey("staff_members.id"))


class IdentityVerification(Base):
    """An officer checked a resident's identity in person: who, where, how, when."""

    __tablename__ = "identity_verifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_members.id"))
    channel: Mapped[str] = mapped_column(String(16))
    document: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(String(120))
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StaffMember(Base):
    """An officer or administrator. Staff always sign in with a password and a TOTP code."""

    __tablename__ = "staff_members"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    roles: Mapped[list[str]] = mapped_column(JSON)
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_secret_sealed: Mapped[bytes] = mapped_column(LargeBinary(128))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignInThrottle(Base):
    """Failed sign-ins per key ("account:<id>", "address:<ip>") in the current window."""

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AccountResetCode(Base):
    """A one-time code an officer gives a locked-out resident after checking their identity in person."""

    __tablename__ = "account_reset_codes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by_staff_id: Mapped[str] = mapped_column(ForeignKey("staff_members.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
