"""The tamper-evident audit log: every security event, hash-chained from the first record on.

Each event's hash covers its own fields and the previous event's hash, so any
change, removal or reordering of a stored event breaks the chain at that point.
Appends serialise on a single head row (``SELECT … FOR UPDATE`` on PostgreSQL;
SQLite serialises writers at ``BEGIN IMMEDIATE``), so the chain never forks; a
trigger on ``audit_events`` advances the head as each event is inserted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from bauhinia.core.database import Base, UTCDateTime, utcnow

GENESIS_HASH = "0" * 64
VERIFY_BATCH = 1000


class AuditEvent(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(128), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row: the sequence number and hash of the newest event."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
HEAD: Table = AuditHead.__table__  # type: ignore[assignment]

# Built once: building a statement costs as much as running it.
_LOCK_HEAD = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()
_INSERT_EVENT = insert(EVENTS)  # the trigger audit_events_advance_head moves the head along


def event_hash(
    seq: int, at: datetime, event_type: str, actor: str, subject: str, data: dict[str, Any], prev_hash: str
) -> str:
    body = {
        "seq": seq,
        "at": at.isoformat(),
        "type": event_type,
        "actor": actor,
        "subject": subject,
        "data": data,
        "prev": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """An event to append (its sequence number, time and hashes are given when it is appended)."""

    event_type: str
    actor: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)


async def record(
    session: AsyncSession, event_type: str, *, actor: str, subject: str, data: dict[str, Any] | None = None
) -> int:
    """Append an event in the caller's transaction; it is durable when the caller commits. Returns its seq."""
    return (await record_many(session, [AuditEntry(event_type, actor, subject, dict(data or {}))]))[0]


async def record_many(session: AsyncSession, entries: list[AuditEntry]) -> list[int]:
    """Append events in order, in the caller's transaction (a group commit's batch). Returns their seqs.

    Two statements whatever the number of events, run at once (not through the ORM's unit of work):
    lock and read the head, insert the events. The insert advances the head in the same statement: a
    trigger on audit_events (migration 0002) sets audit_head to each event as it is inserted.
    """
    prev_seq, prev_hash = await _locked_head(session)
    at = utcnow()
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq = prev_seq + 1
        digest = event_hash(seq, at, entry.event_type, entry.actor, entry.subject, entry.data, prev_hash)
        rows.append(
            {
                "seq": seq,
                "at": at,
                "event_type": entry.event_type,
                "actor": entry.actor,
                "subject": entry.subject,
                "data": entry.data,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_seq, prev_hash = seq, digest
    await session.execute(_INSERT_EVENT, rows)
    return [row["seq"] for row in rows]


async def _locked_head(session: AsyncSession) -> tuple[int, str]:
    """The head's sequence number and hash, its row locked until the caller's transaction ends.

    The head row is created by the first event ever.
    """
    head = (await session.execute(_LOCK_HEAD)).first()
    if head is None:
        # Two first events may race: the loser's insert waits for the winner's row, then does nothing,
        # and both lock that one row, instead of both inserting event 1.
        insert_head = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        await session.execute(
            insert_head(HEAD).values(id=1, seq=0, hash=GENESIS_HASH).on_conflict_do_nothing(index_elements=["id"])
        )
        head = (await session.execute(_LOCK_HEAD)).one()
    return int(head.seq), str(head.hash)


@dataclass(frozen=True)
class ChainReport:
    events: int
    ok: bool
    first_bad_seq: int | None = None
    reason: str = ""


async def verify_chain(session: AsyncSession, progress: Callable[[int], None] | None = None) -> ChainReport:
    """Recompute the whole chain; report the first event that does not fit."""
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    while True:
        batch = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.seq >= expected_seq).order_by(AuditEvent.seq).limit(VERIFY_BATCH)
            )
        ).scalars()
        rows = list(batch)
        if not rows:
            break
        for event in rows:
            problem = _event_problem(event, expected_seq, prev_hash)
            if problem:
                return ChainReport(checked, False, event.seq if event.seq == expected_seq else expected_seq, problem)
            prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
        if progress:
            progress(len(rows))
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one_or_none()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (checked, prev_hash):
        return ChainReport(checked, False, checked + 1, "the chain ends before its recorded head (events removed)")
    return ChainReport(checked, True)


def _event_problem(event: AuditEvent, expected_seq: int, prev_hash: str) -> str:
    if event.seq != expected_seq:
        return f"event {expected_seq} is missing"
    if event.prev_hash != prev_hash:
        return "the event does not link to the one before it"
    digest = event_hash(event.seq, event.at, event.event_type, event.actor, event.subject, event.data, prev_hash)
    if digest != event.hash:
        return "the event's contents do not match its hash (altered)"
    return ""


async def count_events(session: AsyncSession) -> int:
    head = (await session.execute(select(AuditHead.seq).where(AuditHead.id == 1))).scalar_one_or_none()
    return head or 0
