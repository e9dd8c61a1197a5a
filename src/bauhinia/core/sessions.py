"""Server-side browser sessions.

The cookie holds only a random token; the database keeps its HMAC, so a copy of
the table is no set of working cookies. Sessions expire after an idle period and
after an absolute lifetime, and a new token is issued whenever a principal signs
in (session fixation defence). Residents and staff use separate cookies.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from fastapi import Request
from sqlalchemy import JSON, String, Table, bindparam, delete, insert, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, make_transient_to_detached, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from bauhinia.core.database import Base, UTCDateTime, utcnow
from bauhinia.core.keys import KeyRing, Purpose

TOKEN_BYTES = 32
TOUCH_INTERVAL = timedelta(seconds=60)


class SessionKind(StrEnum):
    RESIDENT = "resident"
    STAFF = "staff"


class WebSession(Base):
    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    principal_id: Mapped[str | None] = mapped_column(String(36), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


SESSIONS: Table = WebSession.__table__  # type: ignore[assignment]

# Every request runs some of these: built once (building a statement costs as much as running it).
_LOAD = select(WebSession).where(WebSession.id_hash == bindparam("id_hash"))
_LOCK = _LOAD.with_for_update().execution_options(populate_existing=True)
_INSERT = insert(SESSIONS)
_UPDATE = update(SESSIONS).where(SESSIONS.c.id_hash == bindparam("row_id_hash"))  # SET: the parameters given
# In AsyncSession.info: the session row that load(lock=True) locked, and in which transaction.
_LOCKED = "bauhinia.locked_web_session"


@dataclass(frozen=True)
class PendingCookie:
    name: str
    value: str
    max_age: int
    secure: bool
    samesite: str


@dataclass
class SessionManager:
    keyring: KeyRing
    secure: bool
    https: bool
    idle: timedelta
    absolute: timedelta

    def cookie_name(self, kind: SessionKind) -> str:
        base = f"bauhinia_{kind.value}"
        # The __Host- prefix pins the cookie to this origin, path / and HTTPS.
        return f"__Host-{base}" if self.https else base

    def _hash(self, token: str) -> str:
        return self.keyring.keyed_hash(Purpose.SESSION_ID_HMAC, token)

    async def load(
        self, request: Request, db: AsyncSession, kind: SessionKind, *, lock: bool = False
    ) -> WebSession | None:
        """The live session for this request's cookie, or None; cached on the request.

        ``lock`` reads the row with ``SELECT … FOR UPDATE`` (the CSRF check of a state-changing
        request does): the request's other uses of the row, such as ``claim``, then need no
        second read while the transaction lasts.
        """
        cache_key = f"web_session_{kind.value}"
        if hasattr(request.state, cache_key):
            cached: WebSession | None = getattr(request.state, cache_key)
            if cached is not None and inspect(cached).expired:
                # A rollback expired it; reading an attribute now would be IO outside the event loop.
                await db.refresh(cached)
            return cached
        token = request.cookies.get(self.cookie_name(kind), "")
        found = None
        if 20 <= len(token) <= 100:
            row = (await db.execute(_LOCK if lock else _LOAD, {"id_hash": self._hash(token)})).scalar_one_or_none()
            now = utcnow()
            if row is not None and row.kind == kind and self._alive(row, now):
                found = row
                if lock:
                    db.info[_LOCKED] = (row.id_hash, db.sync_session.get_transaction())
                if now - row.last_seen_at > TOUCH_INTERVAL:
                    row.last_seen_at = now
                    await db.commit()
        setattr(request.state, cache_key, found)
        return found

    def _alive(self, row: WebSession, now: datetime) -> bool:
        return row.expires_at > now and row.last_seen_at + self.idle > now

    async def start(
        self,
        request: Request,
        db: AsyncSession,
        kind: SessionKind,
        *,
        principal_id: str | None = None,
        state: dict[str, Any] | None = None,
        replacing: WebSession | None = None,
    ) -> WebSession:
        """A session with a new token, written at once in the caller's transaction (the caller commits).

        The session it replaces is rotated: its row takes the new id, so the old cookie stops
        working in the same statement (one UPDATE, not DELETE + INSERT). Any change made to the
        replaced row in this transaction and not yet flushed (a spent challenge) is superseded.
        """
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = utcnow()
        values: dict[str, Any] = {
            "id_hash": self._hash(token),
            "kind": kind.value,
            "principal_id": principal_id,
            "csrf_token": secrets.token_urlsafe(TOKEN_BYTES),
            "state": dict(state or {}),
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + self.absolute,
        }
        rotated = False
        if replacing is not None:
            identity = inspect(replacing).identity  # the stored id, without loading an expired row
            if replacing in db:
                db.expunge(replacing)
            if identity is not None:
                result = await db.execute(_UPDATE, {"row_id_hash": identity[0], **values})
                # No row when a concurrent request already rotated or ended it: then a new one, as without.
                rotated = result.rowcount == 1  # type: ignore[attr-defined]
        if not rotated:
            await db.execute(_INSERT, values)
        row = WebSession(**values)
        make_transient_to_detached(row)  # the row as stored: later changes to it are flushed as usual
        db.add(row)
        self._set_cookie(request, kind, token, int(self.absolute.total_seconds()))
        setattr(request.state, f"web_session_{kind.value}", row)
        return row

    async def ensure(self, request: Request, db: AsyncSession, kind: SessionKind) -> WebSession:
        """The current session, or a new anonymous one (a form needs a CSRF token)."""
        row = await self.load(request, db, kind)
        if row is None:
            row = await self.start(request, db, kind)
            await db.commit()
        return row

    async def take(self, db: AsyncSession, row: WebSession, key: str) -> Any:
        """Remove and return a one-time value from the session, committed before this returns."""
        await db.commit()
        value = await self.claim(db, row, key)
        await db.commit()
        return value

    async def claim(self, db: AsyncSession, row: WebSession, key: str) -> Any:
        """Remove and return a one-time value (a WebAuthn challenge) in the caller's transaction.

        The row is locked (``SELECT … FOR UPDATE``; SQLite serialises at ``BEGIN IMMEDIATE``) and
        re-read, so two requests racing with one value cannot both receive it; the lock is held
        until the caller's transaction ends. A row that ``load(lock=True)`` read in this same
        transaction is already locked and current: it is not read again. The removal is written
        when the caller commits, or by ``start(replacing=row)`` in the same transaction, whose
        UPDATE rewrites the state: the caller must commit whatever the outcome.
        """
        if db.info.get(_LOCKED) == (row.id_hash, db.sync_session.get_transaction()):
            fresh: WebSession | None = row
        else:
            fresh = (await db.execute(_LOCK, {"id_hash": row.id_hash})).scalar_one_or_none()
        value = fresh.state.get(key) if fresh is not None else None
        if fresh is not None and value is not None:
            mutate_state(fresh, **{key: None})
        return value

    async def write_state(self, db: AsyncSession, row: WebSession, **changes: Any) -> None:
        """Change values in the session's state (None removes one), written at once in the caller's
        transaction: one UPDATE, without the ORM's flush."""
        state = changed_state(row.state, changes)
        await db.execute(_UPDATE, {"row_id_hash": row.id_hash, "state": state})
        set_committed_value(row, "state", state)

    async def end(self, request: Request, db: AsyncSession, row: WebSession) -> None:
        await db.delete(row)
        self._set_cookie(request, SessionKind(row.kind), "", 0)
        setattr(request.state, f"web_session_{row.kind}", None)

    async def end_all_for(self, db: AsyncSession, kind: SessionKind, principal_id: str) -> None:
        await db.execute(delete(WebSession).where(WebSession.kind == kind, WebSession.principal_id == principal_id))

    async def purge_expired(self, db: AsyncSession) -> int:
        now = utcnow()
        dead = or_(WebSession.expires_at <= now, WebSession.last_seen_at <= now - self.idle)
        result = await db.execute(select(WebSession.id_hash).where(dead))
        expired = list(result.scalars())
        if expired:
            await db.execute(delete(WebSession).where(WebSession.id_hash.in_(expired)))
        return len(expired)

    def _set_cookie(self, request: Request, kind: SessionKind, value: str, max_age: int) -> None:
        # Staff pages are never reached from another site, so their cookie is Strict.
        samesite = "strict" if kind is SessionKind.STAFF else "lax"
        pending: list[PendingCookie] = getattr(request.state, "pending_cookies", [])
        pending = [c for c in pending if c.name != self.cookie_name(kind)]
        pending.append(PendingCookie(self.cookie_name(kind), value, max_age, self.secure, samesite))
        request.state.pending_cookies = pending


def changed_state(state: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of the state with the changes made (None removes a key)."""
    new = dict(state or {})
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


def mutate_state(row: WebSession, **changes: Any) -> None:
    """Replace the JSON state (assigning a new dict marks the column as changed)."""
    row.state = changed_state(row.state, changes)
