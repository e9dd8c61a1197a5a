"""core.grouped.GroupCommit: concurrent requests' writes share transactions, each request returns only
once its own write is committed, and one bad write fails only its own request."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core import audit
from bauhinia.core.grouped import GroupCommit


class Journal:
    """Audit events written through a GroupCommit, counting the transactions it used."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.commit: GroupCommit[audit.AuditEntry] = GroupCommit(self.write)

    async def write(self, session: AsyncSession, entries: list[audit.AuditEntry]) -> None:
        self.batches.append(len(entries))
        await audit.record_many(session, entries)


def entry(n: int, data: Any = None) -> audit.AuditEntry:
    return audit.AuditEntry("test.grouped", actor="test", subject=f"n:{n}", data={"n": n} if data is None else data)


async def stored_subjects(app: FastAPI) -> list[str]:
    async with app.state.sessionmaker() as db:
        rows = await db.scalars(select(audit.AuditEvent.subject).order_by(audit.AuditEvent.seq))
        return list(rows)


async def test_concurrent_writes_share_transactions_and_all_are_committed_in_order(app: FastAPI) -> None:
    journal = Journal()
    await asyncio.gather(*(journal.commit.submit(app.state.engine, entry(n)) for n in range(60)))
    assert sum(journal.batches) == 60
    assert len(journal.batches) < 60  # the first writes alone; those that came meanwhile, together
    assert await stored_subjects(app) == [f"n:{n}" for n in range(60)]
    async with app.state.sessionmaker() as db:
        report = await audit.verify_chain(db)
    assert report.ok
    assert report.events == 60


async def test_a_write_that_fails_fails_only_its_own_request(app: FastAPI) -> None:
    journal = Journal()
    unstorable = {"bad": object()}  # not JSON: its insert fails
    outcomes = await asyncio.gather(
        *(journal.commit.submit(app.state.engine, entry(n, unstorable if n == 7 else None)) for n in range(20)),
        return_exceptions=True,
    )
    failed = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
    assert failed == [7]
    assert await stored_subjects(app) == [f"n:{n}" for n in range(20) if n != 7]
    async with app.state.sessionmaker() as db:
        assert (await audit.verify_chain(db)).ok
        assert await db.scalar(select(func.count()).select_from(audit.AuditEvent)) == 19


async def test_a_request_returns_only_after_its_write_is_committed(app: FastAPI) -> None:
    journal = Journal()
    missing: list[int] = []

    async def submit_then_look(n: int) -> None:
        await journal.commit.submit(app.state.engine, entry(n))
        if f"n:{n}" not in await stored_subjects(app):  # read on another connection
            missing.append(n)

    await asyncio.gather(*(submit_then_look(n) for n in range(10)))
    assert missing == []
    assert sum(journal.batches) == 10
