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
from sqlalchemy import delete, inspect, JSON, or_, select, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

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

    async def load(self, request: Request, db: AsyncSession, kind: SessionKind) -> WebSession | None:
        """The live session for this request's cookie, or None; cached on the request."""
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
            row = await db.get(WebSession, self._hash(token))
            now = utcnow()
            if row is not None and row.kind == kind and self._alive(row, now):
                found = row
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
        """A new session with a new token; the one it replaces is deleted (rotation)."""
        if replacing is not None:
            await db.delete(replacing)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = utcnow()
        row = WebSession(
            id_hash=self._hash(token),
            kind=kind.value,
            principal_id=principal_id,
            csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
            state=dict(state or {}),
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.absolute,
        )
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
        """Remove and return a one-time value (a WebAuthn challenge) from the session.

        The row is locked (``SELECT … FOR UPDATE``; SQLite serialises at ``BEGIN IMMEDIATE``)
        and re-read, so two requests racing with one value cannot both receive it.
        """
        await db.commit()
        fresh = await db.scalar(
            select(WebSession)
            .where(WebSession.id_hash == row.id_hash)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        value = fresh.state.get(key) if fresh is not None else None
        if fresh is not None and value is not None:
            mutate_state(fresh, **{key: None})
        await db.commit()
        return value

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


def mutate_state(row: WebSession, **changes: Any) -> None:
    """Replace the JSON state (assigning a new dict marks the column as changed)."""
    state = dict(row.state or {})
    for key, value in changes.items():
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    row.state = state
