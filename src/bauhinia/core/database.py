"""Async SQLAlchemy engine and sessions for SQLite (WAL, the embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import aiosqlite
from fastapi import Depends, Request
from pydantic import AfterValidator
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def storable_text(value: str) -> str:
    """Free text a person wrote, refused if it holds control characters: PostgreSQL text cannot hold a
    NUL, and no legitimate name, title or note needs one (tabs and line breaks are kept)."""
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValueError("must not contain control characters")
    return value


# A pydantic string type for free text that will be stored.
StorableText = Annotated[str, AfterValidator(storable_text)]


# How long a transaction waits for SQLite's write lock, in this process's queue or SQLite's busy handler.
SQLITE_BUSY_TIMEOUT = 30.0
BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def create_engine(url: str, *, sqlite_synchronous: str = "FULL") -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT}, module=_OneTripAiosqlite(SQLITE_BUSY_TIMEOUT)
        )
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine, synchronous: str) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE so that writers serialise at the start of a transaction.

    A deferred transaction that reads and then writes (the audit chain's head, a
    TOTP step) would otherwise fail with SQLITE_BUSY_SNAPSHOT under concurrency.
    """
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"invalid SQLite synchronous setting {synchronous!r}")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(BEGIN_IMMEDIATE)


# --- SQLite: one trip to aiosqlite's thread per statement ------------------------------------------
#
# aiosqlite runs every sqlite3 call on its own thread. SQLAlchemy's adapter makes three or four calls
# per statement (make a cursor, execute, fetch the rows, close the cursor), each a hand-off to that
# thread and back, about as costly as the statement itself. This cursor does the four in one call.


def _run_statement(
    connection: aiosqlite.Connection, operation: str, parameters: Any, many: bool
) -> tuple[Any, list[Any], int, int | None]:
    """On aiosqlite's thread: execute, read every row, close; what a DBAPI cursor would report."""
    cursor = connection._conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement runs, and whose rows arrive, in one call to the thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False  # nothing to close: the sqlite3 cursor is closed on the thread

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        if operation == BEGIN_IMMEDIATE:
            await self._adapt_connection.enter_write_queue()  # type: ignore[attr-defined]
        async with self._adapt_connection._execute_mutex:
            outcome = await self._connection._execute(_run_statement, self._connection, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """A connection that queues for the process's write lock before ``BEGIN IMMEDIATE`` and leaves the
    queue when its transaction ends, however it ends."""

    __slots__ = ("_queued",)
    _cursor_cls = _OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._queued: asyncio.Lock | None = None

    async def enter_write_queue(self) -> None:
        self.leave_write_queue()  # a BEGIN after a failed one: never hold the lock twice
        self._queued = await self.dbapi.writers.enter()

    def leave_write_queue(self) -> None:
        queued, self._queued = self._queued, None
        if queued is not None:
            queued.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave_write_queue()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_write_queue()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_write_queue()


class WriterQueue:
    """A first-come, first-served queue, in this process, for SQLite's one write lock.

    Every transaction here begins with ``BEGIN IMMEDIATE``, i.e. takes the database's write lock. Left
    to SQLite, writers that find it taken sleep and retry (its busy handler backs off up to 100 ms a
    try), so the lock sits idle while they sleep and the unlucky ones wait seconds (measured: p99 2.6 s
    at 16 concurrent data requests, bench/exchange.py). Queued here, each transaction starts the moment
    the one before it ends. Other processes on the same file still meet SQLite's busy handler.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    async def enter(self) -> asyncio.Lock:
        """Wait for this process's turn (as long as SQLite's busy timeout would); return the lock held."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        try:
            async with asyncio.timeout(self.timeout):
                await lock.acquire()
        except TimeoutError:
            # What SQLite itself says when its busy timeout runs out, so callers see one error.
            raise sqlite3.OperationalError("database is locked") from None
        return lock


class _OneTripAiosqlite(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DBAPI adapter, handing out connections whose cursors make one trip per statement
    and whose transactions queue fairly for the write lock."""

    def __init__(self, timeout: float) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.writers = WriterQueue(timeout)

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's adapter does: never keep the process alive
        return _OneTripConnection(self, await_(connection))


async def run_write_on_sqlite_thread(connection: AsyncConnection, work: Callable[..., T], *args: Any) -> T:
    """Run ``work(sqlite3_connection, *args)`` on aiosqlite's thread, in this process's turn for the write
    lock: for batch writers that bypass the ORM (``work`` opens and ends its own transaction)."""
    raw = await connection.get_raw_connection()
    adapted = raw.dbapi_connection
    assert isinstance(adapted, _OneTripConnection)
    await adapted.enter_write_queue()
    try:
        driver: aiosqlite.Connection = raw.driver_connection
        return await driver._execute(work, driver._conn, *args)
    finally:
        adapted.leave_write_queue()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        # The web layer's helpers (CSRF token, session touch) reuse this request's session:
        # on SQLite a second connection would wait for this one's write lock.
        request.state.db = session
        try:
            yield session
        finally:
            # An error page rendered after this point (exception handlers run once the dependency
            # has exited) must open its own session: this one is closed, and reusing it would leave
            # a transaction — on SQLite the write lock — open with nobody to end it.
            request.state.db = None
            await request.close()  # uploaded files in a parsed form


SessionDep = Annotated[AsyncSession, Depends(get_session)]
