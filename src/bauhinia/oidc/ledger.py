"""Durable records of issued access tokens, written in group commits.

A token endpoint that commits one row per request pays one fsync per token (SQLite with
``synchronous=FULL``, PostgreSQL with ``synchronous_commit=on``). The ledger instead gathers the
rows of every request that arrives while the previous batch is being written and commits them
together; each request still waits until *its* row is durable before the token is returned, so
nothing is promised that a crash could lose.

The batch goes to the driver directly (one ``executemany`` in one transaction): measured, the ORM's
begin/insert/commit cost about 0.7 ms of CPU per batch and 20–50 µs per row, more than the writes.
Values are converted with the column types' own bind processors, so rows read back exactly as the
ORM writes them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from bauhinia.core.database import run_write_on_sqlite_thread
from bauhinia.oidc.models import IssuedAccessToken

ACCESS_TOKENS: Table = IssuedAccessToken.__table__  # type: ignore[assignment]
COLUMNS = ("jti", "client_id", "grant_id", "expires_at")
# Constant statements (the tests write through them and read back through the ORM).
INSERT_POSTGRESQL = "INSERT INTO oidc_access_tokens (jti, client_id, grant_id, expires_at) VALUES ($1, $2, $3, $4)"
INSERT_SQLITE = "INSERT INTO oidc_access_tokens (jti, client_id, grant_id, expires_at) VALUES (?, ?, ?, ?)"
MAX_BATCH = 2000
# Batches written at once. PostgreSQL commits concurrent transactions together, so a second batch can be
# written while the first one's commit waits for the disk (measured: with one, the server sat idle 15 % of
# the time under load); SQLite has one writer at a time, and a second would only wait for the lock.
WRITERS = {"postgresql": 2, "sqlite": 1}


def _sqlite_batch(raw: sqlite3.Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """On aiosqlite's thread: one immediate transaction for the batch."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        raw.executemany(statement, rows)
    except BaseException:
        raw.execute("ROLLBACK")
        raise
    raw.execute("COMMIT")


@dataclass
class TokenLedger:
    engine: AsyncEngine
    _pending: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = field(default_factory=list)
    _writers: set[asyncio.Task[None]] = field(default_factory=set)
    _convert: list[Callable[[Any], Any] | None] | None = None

    async def record(self, jti: str, client_id: str, grant_id: str | None, expires_at: datetime) -> None:
        """Return once the record is committed (raises what the commit raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(((jti, client_id, grant_id, expires_at), done))
        # Count only writers still running: a finished one leaves the set in a callback a moment later,
        # and a row appended in between would otherwise wait for a writer that never comes.
        running = sum(1 for writer in self._writers if not writer.done())
        if running < WRITERS.get(self.engine.dialect.name, 1):
            writer = asyncio.create_task(self._write_batches())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        await done

    async def _write_batches(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                await self._insert([values for values, _ in batch])
            except Exception as exc:  # every waiting request gets the failure
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        dialect = self.engine.dialect
        if self._convert is None:
            self._convert = [
                ACCESS_TOKENS.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in COLUMNS
            ]
        converted = [tuple(f(v) if f else v for f, v in zip(self._convert, row, strict=True)) for row in rows]
        async with self.engine.connect() as connection:
            if dialect.name == "postgresql":
                driver = (await connection.get_raw_connection()).driver_connection
                async with driver.transaction():  # type: ignore[union-attr]
                    await driver.executemany(INSERT_POSTGRESQL, converted)  # type: ignore[union-attr]
            else:
                await run_write_on_sqlite_thread(connection, _sqlite_batch, INSERT_SQLITE, converted)
