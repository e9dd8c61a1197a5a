"""SQLite's write lock is handed out first come, first served within a process (core.database.WriterQueue).

Left to SQLite's busy handler, waiting writers sleep and retry: the lock sits idle while they sleep and
the order they get it in is luck. These tests run on SQLite only (PostgreSQL has row locks, not one
database-wide write lock), each on its own file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bauhinia.core import database
from bauhinia.core.database import create_engine, run_write_on_sqlite_thread


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE arrivals (n INTEGER)"))
    return engine


async def test_waiting_writers_get_the_lock_in_the_order_they_asked(engine: AsyncEngine) -> None:
    order: list[int] = []
    async with engine.begin() as holder:
        await holder.execute(text("INSERT INTO arrivals VALUES (0)"))

        async def writer(n: int) -> None:
            async with engine.begin() as connection:
                order.append(n)
                await connection.execute(text("INSERT INTO arrivals VALUES (:n)"), {"n": n})

        writers = []
        for n in range(1, 9):
            writers.append(asyncio.create_task(writer(n)))
            await asyncio.sleep(0.01)  # each one is waiting before the next arrives
        assert order == []  # nobody writes while the holder's transaction is open
    await asyncio.gather(*writers)
    assert order == list(range(1, 9))
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT n FROM arrivals ORDER BY rowid"))).scalars().all()
    assert rows == list(range(9))
    await engine.dispose()


async def test_a_rolled_back_or_failed_transaction_frees_the_lock(engine: AsyncEngine) -> None:
    with pytest.raises(OperationalError):
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO nowhere VALUES (1)"))
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO arrivals VALUES (1)"))
        await connection.rollback()
    async with asyncio.timeout(5):  # would wait for the busy timeout if a lock had been kept
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO arrivals VALUES (2)"))
    await engine.dispose()


async def test_a_second_transaction_in_the_same_task_gives_up_like_sqlite(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that waits for its own lock would wait forever: it gets SQLite's own error after the timeout."""
    queue: database.WriterQueue = engine.sync_engine.dialect.dbapi.writers  # type: ignore[union-attr]
    monkeypatch.setattr(queue, "timeout", 0.2)
    async with engine.begin() as holder:
        await holder.execute(text("INSERT INTO arrivals VALUES (1)"))
        with pytest.raises(OperationalError, match="database is locked"):
            async with engine.begin() as second:
                await second.execute(text("INSERT INTO arrivals VALUES (2)"))
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM arrivals"))).scalar_one() == 1
    await engine.dispose()


async def test_batch_writers_outside_the_orm_queue_too(engine: AsyncEngine) -> None:
    order: list[str] = []

    def batch(raw: sqlite3.Connection) -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO arrivals VALUES (2)")
        raw.execute("COMMIT")
        order.append("batch")

    async def write_batch() -> None:
        async with engine.connect() as other:
            await run_write_on_sqlite_thread(other, batch)

    async with engine.begin() as holder:
        await holder.execute(text("INSERT INTO arrivals VALUES (1)"))
        waiting = asyncio.create_task(write_batch())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # it queued behind the open transaction instead of meeting SQLite
        order.append("holder")
    await waiting
    assert order == ["holder", "batch"]
    await engine.dispose()
