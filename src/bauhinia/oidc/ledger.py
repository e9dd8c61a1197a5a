"""Durable records of issued access tokens, written in group commits.

A token endpoint that commits one row per request pays one fsync per token (SQLite with
``synchronous=FULL``, PostgreSQL with ``synchronous_commit=on``). The ledger instead gathers the
rows of every request that arrives while the previous batch is being written and commits them
together; each request still waits until *its* row is durable before the token is returned, so
nothing is promised that a crash could lose.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bauhinia.oidc.models import IssuedAccessToken

ACCESS_TOKENS: Table = IssuedAccessToken.__table__  # type: ignore[assignment]
_INSERT = insert(ACCESS_TOKENS)
MAX_BATCH = 1000


@dataclass
class TokenLedger:
    engine: AsyncEngine
    _pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = field(default_factory=list)
    _writer: asyncio.Task[None] | None = None

    async def record(self, jti: str, client_id: str, grant_id: str | None, expires_at: datetime) -> None:
        """Return once the record is committed (raises what the commit raised)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        values = {"jti": jti, "client_id": client_id, "grant_id": grant_id, "expires_at": expires_at}
        self._pending.append((values, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        await done

    async def _write_batches(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                async with self.engine.begin() as connection:
                    await connection.execute(_INSERT, [values for values, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
