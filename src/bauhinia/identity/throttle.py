"""Sign-in throttling per account and per client address, kept in the database so every node shares it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, String, Table, bindparam, delete, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core.database import utcnow
from bauhinia.identity.models import SignInThrottle

WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)


@dataclass(frozen=True)
class Limit:
    max_failures: int


THROTTLES: Table = SignInThrottle.__table__  # type: ignore[assignment]

_LOOKUP = select(THROTTLES.c.key, THROTTLES.c.locked_until).where(
    THROTTLES.c.key.in_(bindparam("keys", expanding=True))
)
_CLEAR = delete(THROTTLES).where(THROTTLES.c.key == bindparam("key"))

ACCOUNT_LIMIT = Limit(max_failures=5)
ADDRESS_LIMIT = Limit(max_failures=20)


ACCOUNT_PREFIX = "account:"


def account_key(principal: str) -> str:
    return f"{ACCOUNT_PREFIX}{principal}"


def matching(address: ColumnElement[str], principal: ColumnElement[str]) -> ColumnElement[bool]:
    """A join condition for the throttle rows of an address and of an account, both given as SQL.

    Lets a sign-in read its throttles in the statement that finds the account.
    """
    return or_(THROTTLES.c.key == address, THROTTLES.c.key == literal(ACCOUNT_PREFIX, String()) + principal)


def address_key(address: str) -> str:
    return f"address:{address[:100]}"


async def lookup(db: AsyncSession, keys: list[str]) -> dict[str, datetime | None]:
    """The keys that have a row (recent failures), each with its lock, in one statement."""
    return {row.key: row.locked_until for row in await db.execute(_LOOKUP, {"keys": keys})}


def lock_in_force(found: dict[str, datetime | None]) -> datetime | None:
    """The latest of the locks that is still in force, if any."""
    now = utcnow()
    locks = [until for until in found.values() if until is not None and until > now]
    return max(locks) if locks else None


async def locked_until(db: AsyncSession, keys: list[str]) -> datetime | None:
    """The latest lock among the keys that is still in force, if any."""
    return lock_in_force(await lookup(db, keys))


async def record_failure(db: AsyncSession, key: str, limit: Limit) -> bool:
    """Count a failure; return True when this failure locks the key."""
    now = utcnow()
    # Re-read under the lock even if this session holds the row already: its copy may be stale.
    locked = (
        select(SignInThrottle)
        .where(SignInThrottle.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
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
    await db.execute(_CLEAR, {"key": key})


def minutes_left(until: datetime) -> int:
    return max(1, int((until - utcnow()).total_seconds() // 60) + 1)
