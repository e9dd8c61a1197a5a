"""Group commit: the writes of concurrent requests, committed together, each request answered only once
its own write is durable.

One transaction per request pays one commit (an fsync) and, on SQLite, one turn at the database's only
write lock per request; under load the turns queue. A ``GroupCommit`` gathers what requests submit
while the previous batch is being written and writes the next batch in one transaction. Nothing is
acknowledged before it is committed, so a crash loses nothing a client was told about.
(``oidc.ledger.TokenLedger`` does the same for access tokens with the driver directly.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

T = TypeVar("T")
MAX_BATCH = 500
# Batches written at once: PostgreSQL commits concurrent transactions together, so a second batch can be
# written while the first waits for the disk; SQLite has one writer, and a second would only queue.
WRITERS = {"postgresql": 2, "sqlite": 1}


class GroupCommit(Generic[T]):
    """Writes items with ``write(session, batch)`` in shared transactions (``write`` must not commit).

    If a batch fails, its items are written one by one, so one bad item fails only its own request.
    """

    def __init__(self, write: Callable[[AsyncSession, list[T]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def submit(self, engine: AsyncEngine, item: T) -> None:
        """Return once ``item`` is committed (raise what its write raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        # Only writers still running count: a finished one leaves the set a moment later, in a callback.
        running = sum(1 for writer in self._writers if not writer.done())
        if running < WRITERS.get(engine.dialect.name, 1):
            writer = asyncio.create_task(self._write_batches(engine))
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        await done

    async def _write_batches(self, engine: AsyncEngine) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            if len(batch) == 1:
                await self._write_one(engine, batch[0])
                continue
            try:
                await self._commit(engine, [item for item, _ in batch])
            except Exception:
                for one in batch:  # find the culprit: the others are still written
                    await self._write_one(engine, one)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _write_one(self, engine: AsyncEngine, one: tuple[T, asyncio.Future[None]]) -> None:
        item, done = one
        try:
            await self._commit(engine, [item])
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
        else:
            if not done.done():
                done.set_result(None)

    async def _commit(self, engine: AsyncEngine, items: list[T]) -> None:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            await self._write(session, items)
            await session.commit()
