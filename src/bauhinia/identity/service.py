"""The identity domain's service: the only module other domains may import.

Registration, authenticators, sign-in (password + TOTP or recovery code, or a
passkey), throttling, assurance levels, and the officer tools of the counter.
Every security event goes to the audit log in the same transaction as the
change it describes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy import String, Table, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bauhinia.core import audit
from bauhinia.core.database import SessionDep, new_id, utcnow
from bauhinia.core.i18n import N_
from bauhinia.core.keys import KeyRing, Purpose
from bauhinia.core.sessions import SessionKind, SessionManager, WebSession
from bauhinia.identity import idcard, passkeys, passwords, throttle, totp
from bauhinia.identity.models import (
    AccountResetCode,
    Authenticator,
    GuardianConsent,
    IdentityVerification,
    Resident,
    StaffMember,
)
from bauhinia.identity.schemas import ADULT_AGE, ValidRegistration, age_on, personal_names

RESIDENTS: Table = Resident.__table__  # type: ignore[assignment]
AUTHENTICATORS: Table = Authenticator.__table__  # type: ignore[assignment]


RECOVERY_CODE_COUNT = 10
RESET_CODE_LIFETIME = timedelta(hours=24)
RESET_CODE_MAX_ATTEMPTS = 5
SECOND_FACTOR_WINDOW = timedelta(minutes=5)


class AssuranceLevel(StrEnum):
    """How sure the platform is of who a resident is. These become the OpenID provider's ``acr`` values."""

    BASIC = "basic"
    VERIFIED = "verified"


class AuthenticatorKind(StrEnum):
    PASSWORD = "password"  # noqa: S105 (a kind of authenticator)
    TOTP = "totp"
    PASSKEY = "passkey"
    RECOVERY = "recovery"


STRONG_KINDS = frozenset({AuthenticatorKind.TOTP, AuthenticatorKind.PASSKEY})
VERIFICATION_CHANNELS = ("counter", "kiosk")
VERIFICATION_DOCUMENTS = ("hkid-card", "hkid-card-and-birth-certificate")
STAFF_ROLES = ("officer", "admin")

# The sign-in path's statements, built once (building one costs as much as running it).
#
# A password sign-in's reads, in one statement: the resident with this email (if any), their
# authenticators (one row each), and the throttle rows of the client's address and of the account.
# Rooted in a one-row probe, so it returns at least one row and costs the same whether or not the
# account exists; a row per authenticator and throttle row found (a handful at most).
_PROBE = select(bindparam("address", type_=String()).label("address")).subquery("probe")
_PASSWORD_SIGN_IN = select(
    RESIDENTS.c.id.label("resident_id"),
    AUTHENTICATORS.c.id,
    AUTHENTICATORS.c.kind,
    AUTHENTICATORS.c.password_hash,
    throttle.THROTTLES.c.key.label("throttle_key"),
    throttle.THROTTLES.c.locked_until,
).select_from(
    _PROBE.outerjoin(RESIDENTS, RESIDENTS.c.email == bindparam("email"))
    .outerjoin(AUTHENTICATORS, AUTHENTICATORS.c.resident_id == RESIDENTS.c.id)
    .outerjoin(throttle.THROTTLES, throttle.matching(_PROBE.c.address, RESIDENTS.c.id))
)
# A passkey sign-in's reads: the passkey, its resident's user handle, and the throttle rows of the
# address and the account. The passkey's row is locked, so that two uses of one credential at once
# see each other's sign count. No row when the passkey is unknown.
_PASSKEY_SIGN_IN = (
    select(
        AUTHENTICATORS.c.id,
        AUTHENTICATORS.c.resident_id,
        AUTHENTICATORS.c.public_key,
        AUTHENTICATORS.c.sign_count,
        AUTHENTICATORS.c.backed_up,
        RESIDENTS.c.webauthn_user_handle,
        throttle.THROTTLES.c.key.label("throttle_key"),
        throttle.THROTTLES.c.locked_until,
    )
    .select_from(
        AUTHENTICATORS.join(RESIDENTS, RESIDENTS.c.id == AUTHENTICATORS.c.resident_id).outerjoin(
            throttle.THROTTLES,
            throttle.matching(bindparam("address", type_=String()), AUTHENTICATORS.c.resident_id),
        )
    )
    .where(
        AUTHENTICATORS.c.credential_id == bindparam("credential_id"),
        AUTHENTICATORS.c.kind == AuthenticatorKind.PASSKEY,
    )
    .with_for_update(of=AUTHENTICATORS)
)
_USED_AUTHENTICATOR = update(AUTHENTICATORS).where(AUTHENTICATORS.c.id == bindparam("authenticator_id"))


class IdentityError(Exception):
    """A refusal a person should read; ``message`` is a message id, ``params`` fill its placeholders."""

    def __init__(self, message: str, field: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.message, self.field, self.params = message, field, params


class ThrottledError(IdentityError):
    def __init__(self, minutes: int) -> None:
        super().__init__(
            N_("Too many failed attempts. Try again in %(minutes)s minutes, or ask for help at a counter."),
            minutes=minutes,
        )


@dataclass(frozen=True)
class ResidentProfile:
    """What other domains may know of a resident: the e-ME profile items and the assurance level."""

    resident_id: str
    english_surname: str
    english_given_names: str
    chinese_name: str | None
    date_of_birth: date
    gender: str
    email: str
    mobile: str | None
    residential_address: str | None
    assurance_level: AssuranceLevel
    preferred_language: str
    has_strong_authenticator: bool


@dataclass(frozen=True)
class GuardianRule:
    """Whether a resident is a minor (11-17) and, if so, the guardian's consent confirmed in person."""

    minor: bool
    confirmed_guardian_consent_id: str | None

    @property
    def may_consent(self) -> bool:
        return not self.minor or self.confirmed_guardian_consent_id is not None


@dataclass(frozen=True)
class SignInResult:
    """The outcome of a first step: who, with which methods, and whether a second factor is still owed."""

    resident_id: str
    amr: list[str]
    needs_second_factor: bool


# Starts the browser session for a sign-in that succeeded, in the sign-in's own transaction (the caller's
# SessionManager.start). Every sign-in awaits it before it writes anything else: a sign-in transaction
# then locks the session row before the audit head, as every other request does (the CSRF check locks
# it first), so two requests of one browser session can never wait for each other in a cycle.
SessionStarter = Callable[[SignInResult], Awaitable[None]]


def actor(resident_id: str) -> str:
    return f"resident:{resident_id}"


def staff_actor(staff_id: str) -> str:
    return f"staff:{staff_id}"


def recovery_code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    """Ten codes of 80 random bits each, grouped for reading aloud: ``k7wq-3m9x-…``."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(alphabet) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


# --- residents ---------------------------------------------------------------------------------


class IdentityService:
    """Stateless apart from the key ring; one instance serves the whole app."""

    def __init__(self, keyring: KeyRing, relying_party: passkeys.RelyingParty) -> None:
        self.keyring = keyring
        self.rp = relying_party

    def id_number_hash(self, number: idcard.IdNumber) -> str:
        return self.keyring.keyed_hash(Purpose.IDENTITY_NUMBER_HMAC, number.canonical)

    async def register(
        self, db: AsyncSession, form: ValidRegistration, *, language: str, client: str, today: date
    ) -> Resident:
        """Create the resident and their password in one transaction, or raise and create nothing."""
        problem = passwords.policy_problem(
            form.password,
            [*personal_names(form.english_surname, form.english_given_names), form.email, form.id_number.canonical],
        )
        if problem:
            raise IdentityError(problem, "password")
        id_hash = self.id_number_hash(form.id_number)
        # Hash before the first query: on SQLite that query takes the write lock, held to the commit.
        password_hash = await asyncio.to_thread(passwords.hash_password, form.password)
        await self._refuse_duplicates(db, id_hash, form.email)
        now = utcnow()
        resident = Resident(
            english_surname=form.english_surname,
            english_given_names=form.english_given_names,
            chinese_name=form.chinese_name,
            id_number_hash=id_hash,
            id_number_masked=form.id_number.masked,
            date_of_birth=form.date_of_birth,
            gender=form.gender,
            email=form.email,
            mobile=form.mobile,
            preferred_language=language,
            assurance_level=AssuranceLevel.BASIC,
            webauthn_user_handle=secrets.token_bytes(32),
            created_at=now,
        )
        db.add(resident)
        try:  # the unique constraints decide a race between two registrations of the same person
            await db.flush()
            db.add(_authenticator(resident.id, AuthenticatorKind.PASSWORD, password_hash=password_hash))
            if form.guardian is not None:
                db.add(
                    GuardianConsent(
                        resident_id=resident.id,
                        guardian_name=form.guardian.name,
                        guardian_id_number_hash=self.id_number_hash(form.guardian.id_number),
                        guardian_id_number_masked=form.guardian.id_number.masked,
                        relationship_to_resident=form.guardian.relationship,
                        recorded_at=now,
                        recorded_by="online-declaration",
                    )
                )
            await audit.record(
                db,
                "resident.registered",
                actor=actor(resident.id),
                subject=actor(resident.id),
                data={"client": client, "minor": age_on(form.date_of_birth, today) < ADULT_AGE},
            )
            await db.commit()
        except IntegrityError as exc:  # a concurrent registration won the race
            await db.rollback()
            raise IdentityError(N_("An account already exists for these details. Sign in instead.")) from exc
        return resident

    async def _refuse_duplicates(self, db: AsyncSession, id_hash: str, email: str) -> None:
        if await db.scalar(select(Resident.id).where(Resident.id_number_hash == id_hash)):
            raise IdentityError(
                N_("An account already exists for this identity card number. Sign in, or ask at a counter for help."),
                "id_number",
            )
        if await db.scalar(select(Resident.id).where(Resident.email == email)):
            raise IdentityError(N_("An account already uses this email address. Sign in instead."), "email")

    async def resident(self, db: AsyncSession, resident_id: str) -> Resident | None:
        return await db.scalar(
            select(Resident).where(Resident.id == resident_id).options(selectinload(Resident.authenticators))
        )

    async def profile(self, db: AsyncSession, resident_id: str) -> ResidentProfile | None:
        resident = await self.resident(db, resident_id)
        if resident is None:
            return None
        return ResidentProfile(
            resident_id=resident.id,
            english_surname=resident.english_surname,
            english_given_names=resident.english_given_names,
            chinese_name=resident.chinese_name,
            date_of_birth=resident.date_of_birth,
            gender=resident.gender,
            email=resident.email,
            mobile=resident.mobile,
            residential_address=resident.residential_address,
            assurance_level=AssuranceLevel(resident.assurance_level),
            preferred_language=resident.preferred_language,
            has_strong_authenticator=has_strong_authenticator(resident),
        )

    async def set_residential_address(self, db: AsyncSession, resident_id: str, address: str, *, by: str) -> None:
        """Record the address a resident gave (at a counter, or in the demo's seed)."""
        await db.execute(update(Resident).where(Resident.id == resident_id).values(residential_address=address))
        await audit.record(db, "identity.address_changed", actor=by, subject=actor(resident_id))

    async def find_resident(self, db: AsyncSession, query: str) -> Resident | None:
        """Look a resident up by identity card number (through its keyed hash) or by email."""
        query = query.strip()
        try:
            number = idcard.parse(query)
        except idcard.InvalidIdNumber:
            return await db.scalar(select(Resident).where(Resident.email == query.lower()))
        return await db.scalar(select(Resident).where(Resident.id_number_hash == self.id_number_hash(number)))

    # --- sign-in ---------------------------------------------------------------------------------

    async def sign_in_with_password(
        self, db: AsyncSession, email: str, password: str, *, client: str, start_session: SessionStarter
    ) -> SignInResult:
        """The first step with a password: the second one too when the resident has no authenticator app.

        Two transactions: the reads end before the hash (~20 ms), so no lock is held across it (on
        SQLite, BEGIN IMMEDIATE takes the write lock). A refusal is committed before it is raised.
        A success is one transaction: ``start_session`` first, then the success recorded (the
        authenticator's use, the throttle cleared, the audit event), committed together.
        """
        address = throttle.address_key(client)
        rows = (await db.execute(_PASSWORD_SIGN_IN, {"address": address, "email": email.strip().lower()})).all()
        resident_id: str | None = rows[0].resident_id
        authenticators = {row.id: row for row in rows if row.id is not None}.values()
        stored = next((row for row in authenticators if row.kind == AuthenticatorKind.PASSWORD), None)
        needs_second = any(row.kind in (AuthenticatorKind.TOTP, AuthenticatorKind.RECOVERY) for row in authenticators)
        found = {row.throttle_key: row.locked_until for row in rows if row.throttle_key is not None}
        until = throttle.lock_in_force(found)
        if until:
            raise ThrottledError(throttle.minutes_left(until))
        rehash = (
            stored is not None and stored.password_hash is not None and passwords.needs_rehash(stored.password_hash)
        )
        await db.commit()  # the hash check below takes ~20 ms: hold no lock across it
        ok = await asyncio.to_thread(passwords.verify_password, stored.password_hash if stored else None, password)
        if not ok or resident_id is None or stored is None:
            await self._failed(db, resident_id, client, "password")
            raise IdentityError(N_("The email address or password is wrong."))
        changes: dict[str, Any] = {"last_used_at": utcnow()}
        if rehash:
            changes["password_hash"] = await asyncio.to_thread(passwords.hash_password, password)
        result = SignInResult(resident_id, ["pwd"], needs_second)
        await start_session(result)
        await db.execute(_USED_AUTHENTICATOR, {"authenticator_id": stored.id, **changes})
        if not needs_second:
            await self._succeeded(db, resident_id, client, ["pwd"], clear=throttle.account_key(resident_id) in found)
        await db.commit()
        return result

    async def complete_second_factor(
        self, db: AsyncSession, resident_id: str, code: str, *, client: str, start_session: SessionStarter
    ) -> SignInResult:
        """Check a TOTP code or a recovery code: the full amr on success.

        A refusal is committed before it is raised. A success is one transaction with
        ``start_session``, committed together.
        """
        resident = await self.resident(db, resident_id)
        if resident is None:
            raise IdentityError(N_("Your sign-in has expired. Start again."))
        until = await throttle.locked_until(db, [throttle.address_key(client), throttle.account_key(resident_id)])
        if until:
            raise ThrottledError(throttle.minutes_left(until))
        compact = code.strip().replace(" ", "").replace("-", "")
        if len(compact) > 32:
            raise IdentityError(N_("Enter the 6-digit code from your authenticator app, or a recovery code."))
        if compact.isdigit():
            amr = await self._check_totp(db, resident, compact, client)
        else:
            amr = await self._use_recovery_code(db, resident, compact, client)
        result = SignInResult(resident_id, amr, False)
        await start_session(result)
        await self._succeeded(db, resident_id, client, amr)
        await db.commit()
        return result

    async def _check_totp(self, db: AsyncSession, resident: Resident, code: str, client: str) -> list[str]:
        for device in (a for a in resident.authenticators if a.kind == AuthenticatorKind.TOTP):
            secret = self._totp_secret(device)
            step = totp.matching_step(secret, code, device.last_step)
            if step is not None:
                device.last_step, device.last_used_at = step, utcnow()
                return ["pwd", "otp", "mfa"]
            if totp.is_replay(secret, code, device.last_step):
                await audit.record(
                    db,
                    "sign_in.totp_replayed",
                    actor=actor(resident.id),
                    subject=actor(resident.id),
                    data={"client": client},
                )
                await self._failed(db, resident.id, client, "totp-replay")
                raise IdentityError(N_("That code has already been used. Wait for the next code and enter it."))
        await self._failed(db, resident.id, client, "totp")
        raise IdentityError(N_("The code is wrong. Check your authenticator app and enter the current code."))

    async def _use_recovery_code(self, db: AsyncSession, resident: Resident, code: str, client: str) -> list[str]:
        digest = recovery_code_hash(code)
        for sheet in (a for a in resident.authenticators if a.kind == AuthenticatorKind.RECOVERY):
            remaining = list(sheet.code_hashes or [])
            match = next((h for h in remaining if hmac.compare_digest(h, digest)), None)
            if match is not None:
                remaining.remove(match)
                sheet.code_hashes, sheet.last_used_at = remaining, utcnow()
                await audit.record(
                    db,
                    "recovery_code.used",
                    actor=actor(resident.id),
                    subject=actor(resident.id),
                    data={"client": client, "remaining": len(remaining)},
                )
                return ["pwd", "otp", "mfa"]
        await self._failed(db, resident.id, client, "recovery-code")
        raise IdentityError(N_("The code is wrong. Check your authenticator app and enter the current code."))

    async def passkey_sign_in(
        self,
        db: AsyncSession,
        response: dict[str, Any],
        challenge: bytes,
        *,
        client: str,
        start_session: SessionStarter,
    ) -> SignInResult:
        """A usernameless passkey sign-in, in the caller's transaction (which has spent the challenge).

        A refusal is committed before it is raised (a throttled attempt records nothing). A success
        is ``start_session`` and the success recorded, committed together.
        """
        credential_id = passkeys.credential_id_of(response)
        address = throttle.address_key(client)
        rows = (await db.execute(_PASSKEY_SIGN_IN, {"credential_id": credential_id, "address": address})).all()
        device = rows[0] if rows else None
        if device is None:  # an unknown passkey: its address may still be locked
            found = await throttle.lookup(db, [address])
        else:
            found = {row.throttle_key: row.locked_until for row in rows if row.throttle_key is not None}
        if until := throttle.lock_in_force(found):
            raise ThrottledError(throttle.minutes_left(until))
        if device is None or device.public_key is None:
            await self._failed(db, None, client, "passkey-unknown")
            raise IdentityError(N_("This passkey is not registered with any account."))
        resident_id: str = device.resident_id
        handle = passkeys.user_handle_of(response)
        if handle is None or not hmac.compare_digest(handle, device.webauthn_user_handle):
            await self._failed(db, resident_id, client, "passkey-user-handle")
            raise IdentityError(N_("That passkey could not be verified. Try again."))
        try:
            sign_count = passkeys.verify_assertion(
                self.rp, response, challenge, device.public_key, device.sign_count or 0
            )
        except passkeys.PasskeyError as exc:
            await self._failed(db, resident_id, client, "passkey")
            raise IdentityError(exc.reason) from exc
        result = SignInResult(resident_id, ["swk" if device.backed_up else "hwk", "user", "mfa"], False)
        await start_session(result)
        await db.execute(
            _USED_AUTHENTICATOR, {"authenticator_id": device.id, "sign_count": sign_count, "last_used_at": utcnow()}
        )
        await self._succeeded(db, resident_id, client, result.amr, clear=throttle.account_key(resident_id) in found)
        await db.commit()
        return result

    async def _failed(self, db: AsyncSession, resident_id: str | None, client: str, method: str) -> None:
        locked = await throttle.record_failure(db, throttle.address_key(client), throttle.ADDRESS_LIMIT)
        if resident_id is not None:
            locked = (
                await throttle.record_failure(db, throttle.account_key(resident_id), throttle.ACCOUNT_LIMIT) or locked
            )
        subject = actor(resident_id) if resident_id else "unknown"
        await audit.record(
            db, "sign_in.failed", actor=subject, subject=subject, data={"client": client, "method": method}
        )
        if locked:
            await audit.record(db, "sign_in.locked", actor="system", subject=subject, data={"client": client})
        await db.commit()

    async def _succeeded(
        self, db: AsyncSession, resident_id: str, client: str, amr: list[str], *, clear: bool = True
    ) -> None:
        """Record a completed sign-in; ``clear=False`` when the account is known to have no failures."""
        if clear:
            await throttle.clear(db, throttle.account_key(resident_id))
        await audit.record(
            db,
            "sign_in.succeeded",
            actor=actor(resident_id),
            subject=actor(resident_id),
            data={"client": client, "amr": amr},
        )

    async def record_sign_out(self, db: AsyncSession, resident_id: str) -> None:
        await audit.record(db, "sign_out", actor=actor(resident_id), subject=actor(resident_id))

    # --- authenticators ------------------------------------------------------------------------

    def _totp_secret(self, device: Authenticator) -> str:
        assert device.secret_sealed is not None
        return self.keyring.open(device.secret_sealed, f"totp:{device.id}").decode()

    async def add_totp(self, db: AsyncSession, resident_id: str, secret: str, code: str) -> list[str] | None:
        """Enrol an authenticator app once its first code checks out.

        Returns fresh recovery codes when this is the account's first strong method.
        """
        step = totp.matching_step(secret, code, None)
        if step is None:
            raise IdentityError(
                N_("The code is wrong. Check your authenticator app and enter the current code."), "code"
            )
        device = _authenticator(resident_id, AuthenticatorKind.TOTP, label="Authenticator app")
        device.secret_sealed = self.keyring.seal(secret.encode(), f"totp:{device.id}")
        device.last_step = step
        return await self._added(db, resident_id, device)

    def passkey_registration_options(self, resident: Resident) -> tuple[str, bytes]:
        existing = [a.credential_id for a in resident.authenticators if a.credential_id]
        return passkeys.registration_options(
            self.rp,
            user_handle=resident.webauthn_user_handle,
            user_name=resident.email,
            display_name=f"{resident.english_given_names} {resident.english_surname}",
            existing=existing,
        )

    async def add_passkey(
        self, db: AsyncSession, resident_id: str, response: dict[str, Any], challenge: bytes, label: str
    ) -> list[str] | None:
        try:
            new = passkeys.verify_registration(self.rp, response, challenge)
        except passkeys.PasskeyError as exc:
            raise IdentityError(exc.reason) from exc
        if await db.scalar(select(Authenticator.id).where(Authenticator.credential_id == new.credential_id)):
            raise IdentityError(N_("This passkey is already registered."))
        device = _authenticator(resident_id, AuthenticatorKind.PASSKEY, label=(label.strip() or "Passkey")[:80])
        device.credential_id, device.public_key = new.credential_id, new.public_key
        device.sign_count, device.backed_up, device.transports = new.sign_count, new.backed_up, new.transports
        return await self._added(db, resident_id, device)

    async def _added(self, db: AsyncSession, resident_id: str, device: Authenticator) -> list[str] | None:
        had_strong = await self._strong_count(db, resident_id) > 0
        db.add(device)
        await audit.record(
            db, "authenticator.added", actor=actor(resident_id), subject=actor(resident_id), data={"kind": device.kind}
        )
        codes = None if had_strong else await self._replace_recovery_codes(db, resident_id)
        await db.commit()
        return codes

    async def _strong_count(self, db: AsyncSession, resident_id: str) -> int:
        count = await db.scalar(
            select(func.count()).where(Authenticator.resident_id == resident_id, Authenticator.kind.in_(STRONG_KINDS))
        )
        return int(count or 0)

    async def regenerate_recovery_codes(self, db: AsyncSession, resident_id: str) -> list[str]:
        if await self._strong_count(db, resident_id) == 0:
            raise IdentityError(N_("Set up an authenticator app or a passkey first."))
        codes = await self._replace_recovery_codes(db, resident_id)
        await db.commit()
        return codes

    async def _replace_recovery_codes(self, db: AsyncSession, resident_id: str) -> list[str]:
        await db.execute(
            delete(Authenticator).where(
                Authenticator.resident_id == resident_id, Authenticator.kind == AuthenticatorKind.RECOVERY
            )
        )
        codes = new_recovery_codes()
        db.add(
            _authenticator(
                resident_id,
                AuthenticatorKind.RECOVERY,
                label="Recovery codes",
                code_hashes=[recovery_code_hash(c) for c in codes],
            )
        )
        await audit.record(db, "recovery_codes.generated", actor=actor(resident_id), subject=actor(resident_id))
        return codes

    async def remove_authenticator(self, db: AsyncSession, resident_id: str, authenticator_id: str) -> None:
        resident = await self.resident(db, resident_id)
        assert resident is not None
        target = next((a for a in resident.authenticators if a.id == authenticator_id), None)
        if target is None:
            raise IdentityError(N_("That sign-in method was not found."))
        remaining = [a for a in resident.authenticators if a.id != authenticator_id]
        if not can_sign_in(remaining):
            raise IdentityError(
                N_("You need at least one authenticator app or passkey. Add another before you remove this one.")
            )
        await db.delete(target)
        if not any(a.kind in STRONG_KINDS for a in remaining):
            await db.execute(
                delete(Authenticator).where(
                    Authenticator.resident_id == resident_id, Authenticator.kind == AuthenticatorKind.RECOVERY
                )
            )
        await audit.record(
            db,
            "authenticator.removed",
            actor=actor(resident_id),
            subject=actor(resident_id),
            data={"kind": target.kind},
        )
        await db.commit()

    async def change_password(
        self, db: AsyncSession, resident_id: str, current: str | None, new: str, *, client: str
    ) -> None:
        resident = await self.resident(db, resident_id)
        assert resident is not None
        stored = _first(resident, AuthenticatorKind.PASSWORD)
        problem = passwords.policy_problem(
            new, [*personal_names(resident.english_surname, resident.english_given_names), resident.email]
        )
        if problem:
            raise IdentityError(problem, "new_password")
        await db.commit()
        # Changing a password needs the current one; only a resident without one (after recovery) may set one.
        current_ok = stored is None or (
            current is not None and await asyncio.to_thread(passwords.verify_password, stored.password_hash, current)
        )
        if not current_ok:
            await self._failed(db, resident_id, client, "password-change")
            raise IdentityError(N_("Your current password is wrong."), "current_password")
        new_hash = await asyncio.to_thread(passwords.hash_password, new)
        resident = await self.resident(db, resident_id)
        assert resident is not None
        stored = _first(resident, AuthenticatorKind.PASSWORD)
        if stored is None:
            db.add(_authenticator(resident_id, AuthenticatorKind.PASSWORD, password_hash=new_hash))
        else:
            stored.password_hash = new_hash
        await audit.record(
            db, "password.changed", actor=actor(resident_id), subject=actor(resident_id), data={"client": client}
        )
        await db.commit()

    # --- assisted digital: recovery with a code from an officer ----------------------------------

    async def recover_with_reset_code(self, db: AsyncSession, email: str, code: str, *, client: str) -> str:
        """Exchange an officer's reset code for a restricted session; every sign-in method is cleared."""
        until = await throttle.locked_until(db, [throttle.address_key(client)])
        if until:
            raise ThrottledError(throttle.minutes_left(until))
        resident = await db.scalar(select(Resident).where(Resident.email == email.strip().lower()))
        now = utcnow()
        issued = None
        if resident is not None:
            issued = await db.scalar(
                select(AccountResetCode)
                .where(
                    AccountResetCode.resident_id == resident.id,
                    AccountResetCode.used_at.is_(None),
                    AccountResetCode.expires_at > now,
                    AccountResetCode.attempts < RESET_CODE_MAX_ATTEMPTS,
                )
                .order_by(AccountResetCode.issued_at.desc())
            )
        if resident is None or issued is None or not hmac.compare_digest(issued.code_hash, recovery_code_hash(code)):
            if issued is not None:
                issued.attempts += 1
            await self._failed(db, resident.id if resident else None, client, "reset-code")
            raise IdentityError(N_("The email address or reset code is wrong, or the code has expired."))
        issued.used_at = now
        # Every method goes, the password too: the resident may have forgotten it, and whoever
        # knew it or held the old phone must not keep a way in. They choose a new password next.
        await db.execute(delete(Authenticator).where(Authenticator.resident_id == resident.id))
        await throttle.clear(db, throttle.account_key(resident.id))
        await audit.record(
            db,
            "account.recovered",
            actor=actor(resident.id),
            subject=actor(resident.id),
            data={"client": client, "reset_code": issued.id},
        )
        await db.commit()
        return resident.id

    # --- staff -----------------------------------------------------------------------------------

    async def create_staff(
        self, db: AsyncSession, username: str, display_name: str, roles: Sequence[str], password: str, totp_secret: str
    ) -> StaffMember:
        unknown = set(roles) - set(STAFF_ROLES)
        if unknown or not roles:
            raise IdentityError(N_("Unknown staff role."))
        problem = passwords.policy_problem(password, [username, display_name])
        if problem:
            raise IdentityError(problem, "password")
        staff = StaffMember(
            username=username.strip().lower(),
            display_name=display_name,
            roles=sorted(set(roles)),
            password_hash=await asyncio.to_thread(passwords.hash_password, password),
            totp_secret_sealed=b"",
            created_at=utcnow(),
        )
        db.add(staff)
        await db.flush()
        staff.totp_secret_sealed = self.keyring.seal(totp_secret.encode(), f"staff-totp:{staff.id}")
        await audit.record(
            db, "staff.created", actor="system", subject=staff_actor(staff.id), data={"roles": staff.roles}
        )
        await db.commit()
        return staff

    async def staff_sign_in(
        self, db: AsyncSession, username: str, password: str, code: str, *, client: str
    ) -> StaffMember:
        staff = await db.scalar(select(StaffMember).where(StaffMember.username == username.strip().lower()))
        keys = [throttle.address_key(client)] + ([throttle.account_key(f"staff:{staff.id}")] if staff else [])
        until = await throttle.locked_until(db, keys)
        if until:
            raise ThrottledError(throttle.minutes_left(until))
        await db.commit()
        ok = await asyncio.to_thread(passwords.verify_password, staff.password_hash if staff else None, password)
        step = None
        if ok and staff is not None and not staff.disabled:
            secret = self.keyring.open(staff.totp_secret_sealed, f"staff-totp:{staff.id}").decode()
            step = totp.matching_step(secret, code, staff.totp_last_step)
        if staff is None or step is None or staff.disabled:
            await self._staff_failed(db, staff, client)
            raise IdentityError(N_("The username, password or code is wrong."))
        staff.totp_last_step = step
        await throttle.clear(db, throttle.account_key(f"staff:{staff.id}"))
        await audit.record(
            db,
            "staff.sign_in.succeeded",
            actor=staff_actor(staff.id),
            subject=staff_actor(staff.id),
            data={"client": client},
        )
        await db.commit()
        return staff

    async def _staff_failed(self, db: AsyncSession, staff: StaffMember | None, client: str) -> None:
        await throttle.record_failure(db, throttle.address_key(client), throttle.ADDRESS_LIMIT)
        subject = staff_actor(staff.id) if staff else "unknown"
        if staff is not None:
            await throttle.record_failure(db, throttle.account_key(f"staff:{staff.id}"), throttle.ACCOUNT_LIMIT)
        await audit.record(db, "staff.sign_in.failed", actor=subject, subject=subject, data={"client": client})
        await db.commit()

    async def staff_member(self, db: AsyncSession, staff_id: str) -> StaffMember | None:
        staff = await db.get(StaffMember, staff_id)
        return staff if staff is not None and not staff.disabled else None

    async def verify_identity(
        self,
        db: AsyncSession,
        staff: StaffMember,
        resident_id: str,
        *,
        id_number: str,
        channel: str,
        document: str,
        location: str,
    ) -> None:
        """Record an in-person check. The officer re-types the number from the card; it must match the account."""
        resident = await db.get(Resident, resident_id)
        if resident is None:
            raise IdentityError(N_("That resident was not found."))
        if channel not in VERIFICATION_CHANNELS or document not in VERIFICATION_DOCUMENTS:
            raise IdentityError(N_("Select how and where the identity was checked."))
        if not location.strip() or len(location) > 120:
            raise IdentityError(N_("Enter the counter or kiosk where the check took place."), "location")
        try:
            typed = idcard.parse(id_number)
        except idcard.InvalidIdNumber as exc:
            raise IdentityError(exc.reason, "id_number") from exc
        if not hmac.compare_digest(self.id_number_hash(typed), resident.id_number_hash):
            await audit.record(
                db, "identity.verification_mismatch", actor=staff_actor(staff.id), subject=actor(resident.id)
            )
            await db.commit()
            raise IdentityError(N_("The number on the card does not match this account. Do not verify."), "id_number")
        db.add(
            IdentityVerification(
                resident_id=resident.id,
                staff_id=staff.id,
                channel=channel,
                document=document,
                location=location.strip(),
                verified_at=utcnow(),
            )
        )
        resident.assurance_level = AssuranceLevel.VERIFIED
        await db.execute(
            update(GuardianConsent)
            .where(GuardianConsent.resident_id == resident.id, GuardianConsent.confirmed_by_staff_id.is_(None))
            .values(confirmed_by_staff_id=staff.id)
        )
        await audit.record(
            db,
            "identity.verified",
            actor=staff_actor(staff.id),
            subject=actor(resident.id),
            data={"channel": channel, "document": document, "location": location.strip()},
        )
        await db.commit()

    async def unlock(self, db: AsyncSession, staff: StaffMember, resident_id: str) -> None:
        if await db.get(Resident, resident_id) is None:
            raise IdentityError(N_("That resident was not found."))
        await throttle.clear(db, throttle.account_key(resident_id))
        await audit.record(db, "staff.unlocked_account", actor=staff_actor(staff.id), subject=actor(resident_id))
        await db.commit()

    async def issue_reset_code(self, db: AsyncSession, staff: StaffMember, resident_id: str) -> str:
        if await db.get(Resident, resident_id) is None:
            raise IdentityError(N_("That resident was not found."))
        code = new_recovery_codes()[0]
        now = utcnow()
        await db.execute(
            update(AccountResetCode)
            .where(AccountResetCode.resident_id == resident_id, AccountResetCode.used_at.is_(None))
            .values(expires_at=now)
        )
        db.add(
            AccountResetCode(
                resident_id=resident_id,
                code_hash=recovery_code_hash(code),
                issued_by_staff_id=staff.id,
                issued_at=now,
                expires_at=now + RESET_CODE_LIFETIME,
            )
        )
        await throttle.clear(db, throttle.account_key(resident_id))
        await audit.record(db, "staff.issued_reset_code", actor=staff_actor(staff.id), subject=actor(resident_id))
        await db.commit()
        return code

    async def guardian_rule(self, db: AsyncSession, resident_id: str, today: date) -> GuardianRule:
        """The foundation's rule for residents aged 11-17: they act only with a guardian's consent on
        record, and a consent counts once an officer has confirmed it in person."""
        resident = await self.resident(db, resident_id)
        if resident is None or age_on(resident.date_of_birth, today) >= ADULT_AGE:
            return GuardianRule(minor=False, confirmed_guardian_consent_id=None)
        confirmed = await db.scalar(
            select(GuardianConsent.id)
            .where(GuardianConsent.resident_id == resident_id, GuardianConsent.confirmed_by_staff_id.is_not(None))
            .order_by(GuardianConsent.recorded_at.desc())
            .limit(1)
        )
        return GuardianRule(minor=True, confirmed_guardian_consent_id=confirmed)

    async def resident_overview(self, db: AsyncSession, resident_id: str) -> dict[str, Any] | None:
        resident = await self.resident(db, resident_id)
        if resident is None:
            return None
        verifications = (
            await db.scalars(
                select(IdentityVerification)
                .where(IdentityVerification.resident_id == resident_id)
                .order_by(IdentityVerification.verified_at.desc())
            )
        ).all()
        guardians = (await db.scalars(select(GuardianConsent).where(GuardianConsent.resident_id == resident_id))).all()
        lock = await throttle.locked_until(db, [throttle.account_key(resident_id)])
        return {"resident": resident, "verifications": verifications, "guardians": guardians, "locked_until": lock}


def can_sign_in(authenticators: Sequence[Authenticator]) -> bool:
    """A passkey alone, or a password with an authenticator app, lets a resident sign in."""
    kinds = {a.kind for a in authenticators}
    return AuthenticatorKind.PASSKEY in kinds or {AuthenticatorKind.PASSWORD, AuthenticatorKind.TOTP} <= kinds


def has_strong_authenticator(resident: Resident) -> bool:
    return any(a.kind in STRONG_KINDS for a in resident.authenticators)


def _first(resident: Resident, kind: AuthenticatorKind) -> Authenticator | None:
    return next((a for a in resident.authenticators if a.kind == kind), None)


def _authenticator(resident_id: str, kind: AuthenticatorKind, **values: Any) -> Authenticator:
    return Authenticator(id=new_id(), resident_id=resident_id, kind=kind, created_at=utcnow(), **values)


# --- request-level helpers: who is signed in, and guards for pages that need someone to be ---


class SignInRequired(Exception):
    """Raised by a guard; answered with a redirect to the sign-in page (or 401 for JSON)."""

    def __init__(self, sign_in_path: str, next_path: str) -> None:
        super().__init__(sign_in_path)
        self.location = f"{sign_in_path}?next={quote(next_path, safe='')}"


class SetupRequired(Exception):
    """A resident must add a strong sign-in method before using the rest of their account."""


class RoleRequired(Exception):
    pass


def identity_service(request: Request) -> IdentityService:
    service: IdentityService = request.app.state.identity
    return service


def session_manager(request: Request) -> SessionManager:
    manager: SessionManager = request.app.state.session_manager
    return manager


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def resident_session(request: Request, db: AsyncSession) -> tuple[WebSession, Resident] | None:
    row = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    if row is None or row.principal_id is None:
        return None
    resident = await identity_service(request).resident(db, row.principal_id)
    if resident is None:
        return None
    request.state.signed_in = True
    return row, resident


async def optional_resident(request: Request, db: SessionDep) -> Resident | None:
    found = await resident_session(request, db)
    return found[1] if found else None


async def signed_in_resident(request: Request, db: SessionDep) -> Resident:
    """Any signed-in resident, including one who still has to add a strong sign-in method."""
    found = await resident_session(request, db)
    if found is None:
        raise SignInRequired("/signin", request.url.path)
    return found[1]


async def account_holder(resident: Annotated[Resident, Depends(signed_in_resident)]) -> Resident:
    """A signed-in resident whose account is fully set up."""
    if not has_strong_authenticator(resident):
        raise SetupRequired
    return resident


async def signed_in_staff(request: Request, db: SessionDep) -> StaffMember:
    row = await session_manager(request).load(request, db, SessionKind.STAFF)
    staff = await identity_service(request).staff_member(db, row.principal_id) if row and row.principal_id else None
    if staff is None:
        raise SignInRequired("/staff/signin", request.url.path)
    request.state.staff_signed_in = True
    return staff


async def officer(staff: Annotated[StaffMember, Depends(signed_in_staff)]) -> StaffMember:
    if "officer" not in staff.roles and "admin" not in staff.roles:
        raise RoleRequired
    return staff


OptionalResident = Annotated[Resident | None, Depends(optional_resident)]
SignedInResident = Annotated[Resident, Depends(signed_in_resident)]
AccountHolder = Annotated[Resident, Depends(account_holder)]
Officer = Annotated[StaffMember, Depends(officer)]
