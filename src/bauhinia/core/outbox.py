"""The transactional outbox: outgoing HTTP notifications (exchange webhooks, back-channel logout tokens)
stored in the transaction of the change they announce, then delivered by a background worker.

``enqueue(db, …)`` only adds a row to the caller's session: the caller commits, so the message exists
if and only if the change does. A ``Deliverer`` (one per process, started in the app's lifespan) claims
due messages, POSTs them, and records the outcome:

- a ``2xx`` answer delivers the message; anything else (another status, a timeout, a network error) is
  a failed attempt, retried with exponential back-off and jitter, capped at 10 minutes;
- a message not delivered by its deadline (3 days after it was stored, unless the caller said
  otherwise) is given up: logged, counted, kept for the operators until ``purge_finished``.

Delivery is at least once: a process that stops between a receiver's answer and recording it sends the
message again later, so receivers de-duplicate (a ``jti`` in the body). Claiming a message takes a lease
(its ``next_attempt_at`` moved past the longest attempt) in a short transaction — on PostgreSQL with
``FOR UPDATE SKIP LOCKED`` — so two processes never send one message at the same time, and a message
claimed by a process that died goes out again when the lease ends.

The worker wakes when a session that enqueued commits in this process (an in-process nudge: immediate
delivery), and polls every second or so for messages committed by another node or left by a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import Integer, String, Table, Text, delete, event, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from bauhinia.core.database import Base, UTCDateTime, create_sessionmaker, new_id, utcnow
from bauhinia.core.observability import Metrics

log = structlog.get_logger(__name__)

DEFAULT_LIFETIME = timedelta(days=3)  # how long a message is retried before it is given up
FIRST_RETRY = timedelta(seconds=1)  # the back-off before the second attempt (at most; jitter halves it at worst)
BACKOFF_CAP = timedelta(minutes=10)
RETENTION = timedelta(days=7)  # delivered and given-up messages are kept this long for the operators
MAX_URL_LENGTH = 2000
MAX_ERROR_LENGTH = 200
KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")  # a metric label: a constant of the code
MAX_KIND_LENGTH = 64
# Set on a session by enqueue(); after its commit, the Deliverers of its engine in this process wake.
_ENQUEUED = "bauhinia.outbox.enqueued"


class OutboxMessage(Base):
    """One notification to POST. ``next_attempt_at`` is set while it is pending, NULL once it is delivered
    or given up, so the due ones are a range scan of its index."""

    __tablename__ = "outbox_messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(MAX_KIND_LENGTH))
    url: Mapped[str] = mapped_column(String(MAX_URL_LENGTH))
    content_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True))
    given_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(MAX_ERROR_LENGTH))


MESSAGES: Table = OutboxMessage.__table__  # type: ignore[assignment]


async def enqueue(
    db: AsyncSession,
    *,
    kind: str,
    url: str,
    body: str,
    content_type: str,
    expires_in: timedelta = DEFAULT_LIFETIME,
) -> str:
    """Add a message to the caller's session and return its id; it is stored only if the caller commits.

    ``kind`` names what it is (``"exchange.webhook"``): a constant, as it labels the metrics.
    ``expires_in`` is how long it is retried (a logout token is pointless once it has expired).
    Raises ValueError for a kind or URL that could never be delivered (a bug in the caller).
    """
    if len(kind) > MAX_KIND_LENGTH or not KIND.fullmatch(kind):
        raise ValueError(f"invalid outbox message kind {kind!r}")
    if not _deliverable(url):
        raise ValueError("an outbox message needs an absolute http(s) URL")
    if expires_in <= timedelta(0):
        raise ValueError("expires_in must be positive")
    now = utcnow()
    message = OutboxMessage(
        id=new_id(),
        kind=kind,
        url=url,
        content_type=content_type,
        body=body,
        created_at=now,
        expires_at=now + expires_in,
        attempts=0,
        next_attempt_at=now,
    )
    db.add(message)
    db.info[_ENQUEUED] = True
    return message.id


def _deliverable(url: str) -> bool:
    if len(url) > MAX_URL_LENGTH:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
    """How long to wait after ``attempts`` failed attempts: doubling from FIRST_RETRY, capped at
    BACKOFF_CAP, with "equal jitter" (between half and all of it) so that a receiver that comes back is
    not hit by every waiting message at once; below the cap each wait is at least as long as the last."""
    ceiling = min(BACKOFF_CAP.total_seconds(), FIRST_RETRY.total_seconds() * 2 ** min(max(attempts - 1, 0), 32))
    return timedelta(seconds=ceiling * (0.5 + 0.5 * rand()))


async def purge_finished(db: AsyncSession, *, older_than: timedelta = RETENTION, now: datetime | None = None) -> int:
    """Delete messages delivered or given up more than ``older_than`` ago; the caller commits."""
    cutoff = (now or utcnow()) - older_than
    finished = or_(MESSAGES.c.delivered_at < cutoff, MESSAGES.c.given_up_at < cutoff)
    result = await db.execute(delete(MESSAGES).where(finished))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- delivery -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    id: str
    kind: str
    url: str
    body: str
    content_type: str
    attempts: int  # this attempt included
    expires_at: datetime


@dataclass(frozen=True)
class _Outcome:
    error: str | None  # None: delivered
    permanent: bool = False  # retrying cannot help (a URL that cannot be sent to)


_running: weakref.WeakSet[Deliverer] = weakref.WeakSet()


class Deliverer:
    """Sends due outbox messages of one database, ``concurrency`` at a time.

    ``start()``/``stop()`` run the worker (the app's lifespan does); ``nudge()`` wakes it (done for you
    when a session that enqueued commits in this process); ``deliver_due()`` is one pass without the
    worker. The HTTP client, the clock and the jitter are injectable for tests.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        http: httpx.AsyncClient | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
        poll_interval: float = 1.0,
        concurrency: int = 8,
        timeout: float = 5.0,
    ) -> None:
        if poll_interval <= 0 or concurrency < 1 or timeout <= 0:
            raise ValueError("poll_interval and timeout must be positive, concurrency at least 1")
        self.engine = engine
        self.metrics = metrics or Metrics()
        self._sessions = create_sessionmaker(engine)
        self._http = http
        self._owns_http = False
        self._clock = clock
        self._rand = rand
        self._poll_interval = poll_interval
        self._concurrency = concurrency
        self._timeout = timeout
        # A claimed message is not due again until the attempt surely ended (it is bounded by the timeout).
        self._lease = timedelta(seconds=max(30.0, 3 * timeout))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._backlog = False

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        if self.running:
            return
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
            self._owns_http = True
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        self._worker = asyncio.create_task(self._run(), name="outbox-deliverer")
        _running.add(self)

    async def stop(self) -> None:
        """Stop claiming; let attempts under way finish (up to the timeout), cancel what is left (those
        messages go out again when their lease ends); close the HTTP client if it is ours."""
        _running.discard(self)
        worker, self._worker = self._worker, None
        if worker is not None:
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=self._timeout + 1)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http, self._owns_http = None, False
        self._loop = None

    def nudge(self) -> None:
        """Wake the worker now (from any thread); a no-op when it is not running."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def deliver_due(self) -> int:
        """Claim and attempt every message due now, ``concurrency`` at a time; the number attempted."""
        attempted = 0
        async with self._client() as http:
            while True:
                claimed = await self._claim(self._concurrency)
                await asyncio.gather(*(self._attempt(http, message) for message in claimed))
                attempted += len(claimed)
                if len(claimed) < self._concurrency:
                    return attempted

    # --- the worker ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self._concurrency - len(self._inflight)
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except Exception:  # the database is away: try again at the next poll
                    log.exception("outbox_claim_failed")
                    claimed = []
                self._backlog = len(claimed) == free
                for message in claimed:
                    self._spawn(message)
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()

    def _spawn(self, message: _Claimed) -> None:
        assert self._http is not None
        task = asyncio.create_task(self._attempt(self._http, message), name=f"outbox-{message.id}")
        self._inflight.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._backlog:  # more were due than there were free slots: claim again now
            self._wake.set()

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._http is not None:
            yield self._http
            return
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as http:
            yield http

    # --- one message ----------------------------------------------------------------------------------

    async def _claim(self, limit: int) -> list[_Claimed]:
        """Take up to ``limit`` due messages: count the attempt and move them out of the due range for
        the lease, in one short transaction. PostgreSQL skips rows another node is claiming."""
        now = self._clock()
        due = (
            select(MESSAGES.c.id)
            .where(MESSAGES.c.next_attempt_at <= now)
            .order_by(MESSAGES.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(MESSAGES)
            .where(MESSAGES.c.id.in_(due))
            .values(attempts=MESSAGES.c.attempts + 1, next_attempt_at=now + self._lease)
            .returning(
                MESSAGES.c.id,
                MESSAGES.c.kind,
                MESSAGES.c.url,
                MESSAGES.c.body,
                MESSAGES.c.content_type,
                MESSAGES.c.attempts,
                MESSAGES.c.expires_at,
            )
        )
        async with self._sessions() as db, db.begin():
            rows = (await db.execute(statement)).all()
        return [_Claimed(*row) for row in rows]

    async def _attempt(self, http: httpx.AsyncClient, message: _Claimed) -> None:
        try:
            if self._clock() > message.expires_at:
                await self._give_up(message, None)
                return
            outcome = await self._post(http, message)
            if outcome.error is None:
                await self._delivered(message)
            else:
                await self._failed(message, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug or the database away: the lease ends and the message is tried again
            log.exception("outbox_attempt_crashed", message_id=message.id, kind=message.kind)

    async def _post(self, http: httpx.AsyncClient, message: _Claimed) -> _Outcome:
        headers = {"content-type": message.content_type}
        try:
            async with asyncio.timeout(self._timeout):  # the whole exchange, however slowly it trickles
                async with http.stream(
                    "POST",
                    message.url,
                    content=message.body.encode(),
                    headers=headers,
                    timeout=self._timeout,
                    follow_redirects=False,
                ) as response:  # the answer's body is never read: only its status matters
                    status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            return _Outcome("timeout")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            return _Outcome(f"cannot send: {type(error).__name__}", permanent=True)
        except httpx.HTTPError as error:
            return _Outcome(type(error).__name__)
        except Exception as error:  # whatever the transport throws, the worker carries on
            log.exception("outbox_transport_error", message_id=message.id, kind=message.kind)
            return _Outcome(type(error).__name__)
        if 200 <= status < 300:
            return _Outcome(None)
        return _Outcome(f"HTTP {status}")

    async def _delivered(self, message: _Claimed) -> None:
        now = self._clock()
        await self._record(message, delivered_at=now, next_attempt_at=None)
        self.metrics.outbox_delivered.labels(message.kind).inc()
        log.info(
            "outbox_delivered",
            **_described(message),
        )

    async def _failed(self, message: _Claimed, outcome: _Outcome) -> None:
        self.metrics.outbox_failed_attempts.labels(message.kind).inc()
        now = self._clock()
        if outcome.permanent or now >= message.expires_at:
            await self._give_up(message, outcome.error)
            return
        retry_at = min(now + backoff(message.attempts, self._rand), message.expires_at)
        await self._record(message, next_attempt_at=retry_at, last_error=_short(outcome.error))
        log.warning(
            "outbox_attempt_failed",
            **_described(message),
            error=outcome.error,
            retry_at=retry_at.isoformat(),
        )

    async def _give_up(self, message: _Claimed, error: str | None) -> None:
        values: dict[str, Any] = {"given_up_at": self._clock(), "next_attempt_at": None}
        if error is not None:
            values["last_error"] = _short(error)
        await self._record(message, **values)
        self.metrics.outbox_given_up.labels(message.kind).inc()
        log.error(
            "outbox_given_up",
            **_described(message),
            error=error or "deadline passed before this attempt",
        )

    async def _record(self, message: _Claimed, **values: Any) -> None:
        async with self._sessions() as db, db.begin():
            await db.execute(
                update(MESSAGES)
                .where(MESSAGES.c.id == message.id, MESSAGES.c.delivered_at.is_(None), MESSAGES.c.given_up_at.is_(None))
                .values(**values)
            )


def _short(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_LENGTH]


def _described(message: _Claimed) -> dict[str, Any]:
    """What the logs say of a message: never its body, nor more of its URL than the host."""
    return {"message_id": message.id, "kind": message.kind, "host": _host(message.url), "attempts": message.attempts}


def _host(url: str) -> str:
    """Where a message goes, for the logs: the host only (a webhook's path or query may hold a secret)."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


# --- the in-process nudge ----------------------------------------------------------------------------------


@event.listens_for(Session, "after_commit")
def _nudge_after_commit(session: Session) -> None:
    if not session.info.pop(_ENQUEUED, False):
        return
    for deliverer in list(_running):
        if deliverer.engine.sync_engine is session.bind:
            deliverer.nudge()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_ENQUEUED, None)
