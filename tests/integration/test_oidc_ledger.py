"""The token ledger's group commits: every waiter's row is durable and reads back as the ORM writes it."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from bauhinia.core.database import utcnow
from bauhinia.oidc.models import IssuedAccessToken


async def test_concurrent_records_commit_together_and_read_back(app: FastAPI) -> None:
    ledger = app.state.oidc.ledger
    expires = utcnow() + timedelta(minutes=10)
    await asyncio.gather(*[ledger.record(f"jti-{n:04d}", "dept", None, expires) for n in range(200)])
    async with app.state.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(IssuedAccessToken)) == 200
        row = await db.get(IssuedAccessToken, "jti-0042")
        assert row is not None
        assert row.expires_at == expires
        assert row.client_id == "dept"
        assert await db.scalar(select(func.count()).where(IssuedAccessToken.expires_at > utcnow())) == 200


async def test_a_failed_batch_fails_its_waiters(app: FastAPI) -> None:
    ledger = app.state.oidc.ledger
    await ledger.record("same-jti", "dept", None, utcnow())
    # The driver's own error: the batch goes to the driver directly.
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        await ledger.record("same-jti", "dept", None, utcnow())
    await ledger.record("next-jti", "dept", None, utcnow())  # the ledger keeps working afterwards


async def test_a_row_recorded_as_the_writer_finishes_is_still_written(app: FastAPI) -> None:
    # The race: the writer has emptied the queue and finished, but its done-callback has not yet run.
    ledger = app.state.oidc.ledger
    expires = utcnow() + timedelta(minutes=10)
    for n in range(50):
        await ledger.record(f"a-{n}", "dept", None, expires)  # resumes before the writer's done-callback runs
        async with asyncio.timeout(5):
            await ledger.record(f"b-{n}", "dept", None, expires)
