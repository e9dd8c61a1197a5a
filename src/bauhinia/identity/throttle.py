"""Sign-in throttling per account and per client address, kept in the database so every node shares it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core.database import utcnow
from bauhinia.identity.models import SignInThrottle

WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)


@dataclass(frozen=True)
class Limit:
    max_failures: int


ACCOUNT_LIMIT = Limit(max_failures=5)
ADDRESS_LIMIT = Limit(max_failures=20)


def account_key(principal: str) -> str:
    return f"account:{principal}"


def address_key(address: str) -> str:
    return f"address:{address[:100]}"


async def locked_until(db: AsyncSession, keys: list[str]) -> datetime | None:
    """The latest lock among the keys that is still in force, if any."""
    now = utcnow()
    rows = (await db.execute(select(SignInThrottle).where(SignInThrottle.key.in_(keys)))).scalars()
    locks = [row.locked_until for row in rows if row.locked_until and row.locked_until > now]
    return max(locks) if locks else None


async def record_failure(db: AsyncSession, key: str, limit: Limit) -> bool:
    """Count a failure; return True when this failure locks the key."""
    now = utcnow()
    locked = select(SignInThrottle).where(SignInThrottle.key == key).with_for_update()
    row = (await db.execute(locked)).scalar()
    if row is None:
        # Concurrent first failures for a key: the loser's insert waits for the winner's row and
        # does nothing, then both lock that row (two plain INSERTs would collide: a server error).
        insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
        await db.execute(
            insert(SignInThrottle)
            .values(key=key, failures=0, window_started_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        row = (await db.execute(locked)).scalar_one()
    if row.window_started_at + WINDOW <= now:
        row.failures, row.window_started_at, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= limit.max_failures:
        row.locked_until = now + LOCKOUT
        return True
    return False


async def clear(db: AsyncSession, key: str) -> None:
    await db.execute(delete(SignInThrottle).where(SignInThrottle.key == key))


def minutes_left(until: datetime) -> int:
    return max(1, int((until - utcnow()).total_seconds() // 60) + 1)
