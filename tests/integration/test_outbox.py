"""The transactional outbox (core.outbox): stored with the change or not at all, delivered at least once,
retried with capped back-off, given up after its deadline, never sent by two workers at once."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from bauhinia.core import outbox
from bauhinia.core.database import create_engine, create_sessionmaker, utcnow
from bauhinia.core.observability import Metrics
from bauhinia.core.outbox import Deliverer, OutboxMessage
from bauhinia.settings import Settings

KIND = "test.notification"
Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
URL = "https://department.example.hk/events"


class Clock:
    """The Deliverer's time, moved by the test instead of sleeping."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Receiver:
    """A department's endpoint behind httpx's MockTransport: records every request, answers from a script
    (then 200)."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)
        self.received: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        return httpx.Response(self.answers.pop(0) if self.answers else 200)

    @property
    def bodies(self) -> list[bytes]:
        return [request.content for request in self.received]


@asynccontextmanager
async def deliverer_for(app: FastAPI, handler: Handler, **options: Any) -> AsyncIterator[Deliverer]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        deliverer = Deliverer(app.state.engine, http=http, metrics=Metrics(), **options)
        try:
            yield deliverer
        finally:
            await deliverer.stop()


async def store(app: FastAPI, body: str = "event", url: str = URL, kind: str = KIND) -> str:
    """A message committed by the app, as a domain service's transaction would."""
    async with app.state.sessionmaker() as db:
        message_id = await outbox.enqueue(db, kind=kind, url=url, body=body, content_type="application/jwt")
        await db.commit()
    return message_id


async def load(app: FastAPI, message_id: str) -> OutboxMessage:
    async with app.state.sessionmaker() as db:
        message: OutboxMessage | None = await db.get(OutboxMessage, message_id)
    assert message is not None
    return message


async def stored_count(app: FastAPI) -> int:
    async with app.state.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def counted(deliverer: Deliverer, counter: str, kind: str = KIND) -> float:
    value = deliverer.metrics.registry.get_sample_value(f"bauhinia_outbox_{counter}_total", {"kind": kind})
    return value or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what}: not within {seconds}s")
        await asyncio.sleep(0.02)


def on_postgresql(settings: Settings) -> bool:
    return settings.resolved_database_url.startswith("postgresql")


# --- stored with the change, or not at all ------------------------------------------------------------------


async def test_a_message_enqueued_in_a_rolled_back_transaction_is_never_sent(app: FastAPI) -> None:
    receiver = Receiver()
    async with deliverer_for(app, receiver, poll_interval=0.05) as deliverer:
        await deliverer.start()
        async with app.state.sessionmaker() as db:
            await outbox.enqueue(db, kind=KIND, url=URL, body="rolled back", content_type="text/plain")
            await db.flush()  # the row reached the database, inside the transaction
            await db.rollback()
        kept = await store(app, body="committed")

        async def sent() -> bool:
            return (await load(app, kept)).delivered_at is not None

        await eventually(sent, "the committed message delivered")
        assert await deliverer.deliver_due() == 0
    assert receiver.bodies == [b"committed"]
    assert await stored_count(app) == 1


async def test_a_committed_message_is_delivered_at_once_by_the_in_process_nudge(app: FastAPI) -> None:
    receiver = Receiver()
    # The poll is a minute away: only the nudge after the commit can deliver within the test's patience.
    async with deliverer_for(app, receiver, poll_interval=60) as deliverer:
        await deliverer.start()
        await asyncio.sleep(0.2)  # the worker's first look (at an empty outbox) is over
        message_id = await store(app, body="eyJhbGciOi.signed.event")

        async def arrived() -> bool:
            return bool(receiver.received)

        await eventually(arrived, "the nudged delivery", seconds=3)
        await eventually(lambda: _delivered(app, message_id), "the delivery recorded", seconds=3)
    [request] = receiver.received
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["content-type"] == "application/jwt"
    assert request.content == b"eyJhbGciOi.signed.event"
    message = await load(app, message_id)
    assert message.attempts == 1
    assert message.next_attempt_at is None
    assert message.given_up_at is None
    assert counted(deliverer, "delivered") == 1
    assert counted(deliverer, "failed_attempts") == 0


async def _delivered(app: FastAPI, message_id: str) -> bool:
    return (await load(app, message_id)).delivered_at is not None


async def test_enqueue_refuses_what_could_never_be_delivered(app: FastAPI) -> None:
    async with app.state.sessionmaker() as db:
        for url in (
            "ftp://department.example.hk/",
            "/relative/path",
            "https://",
            "not a url",
            "https://x/" + "a" * 2000,
        ):
            with pytest.raises(ValueError, match="URL"):
                await outbox.enqueue(db, kind=KIND, url=url, body="x", content_type="text/plain")
        for kind in ("", "Has Spaces", "a" * 65, "trailing."):
            with pytest.raises(ValueError, match="kind"):
                await outbox.enqueue(db, kind=kind, url=URL, body="x", content_type="text/plain")
        await db.commit()
    assert await stored_count(app) == 0


# --- retries ------------------------------------------------------------------------------------------------


async def test_a_receiver_answering_500_then_200_gets_the_message_again_after_a_back_off(app: FastAPI) -> None:
    receiver = Receiver(500)
    message_id = await store(app, body="twice")
    clock = Clock()
    async with deliverer_for(app, receiver, clock=clock) as deliverer:
        assert await deliverer.deliver_due() == 1
        failed = await load(app, message_id)
        assert failed.attempts == 1
        assert failed.last_error == "HTTP 500"
        assert failed.delivered_at is None
        assert failed.next_attempt_at is not None
        assert clock.now + timedelta(seconds=0.5) <= failed.next_attempt_at <= clock.now + timedelta(seconds=1)
        assert counted(deliverer, "failed_attempts") == 1

        assert await deliverer.deliver_due() == 0  # not due yet
        assert len(receiver.received) == 1

        clock.advance(seconds=1)
        assert await deliverer.deliver_due() == 1
    delivered = await load(app, message_id)
    assert delivered.delivered_at == clock.now
    assert delivered.attempts == 2
    assert delivered.next_attempt_at is None
    assert receiver.bodies == [b"twice", b"twice"]
    assert counted(deliverer, "delivered") == 1
    assert counted(deliverer, "failed_attempts") == 1


async def test_a_redirect_is_not_followed_but_retried(app: FastAPI) -> None:
    async def redirecting(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://elsewhere.example/steal"})

    message_id = await store(app)
    async with deliverer_for(app, redirecting, clock=Clock()) as deliverer:
        assert await deliverer.deliver_due() == 1
    message = await load(app, message_id)
    assert message.last_error == "HTTP 302"
    assert message.delivered_at is None
    assert message.next_attempt_at is not None


def test_back_off_doubles_from_one_second_with_jitter_and_is_capped_at_ten_minutes() -> None:
    assert outbox.backoff(1, lambda: 1.0) == timedelta(seconds=1)
    assert outbox.backoff(1, lambda: 0.0) == timedelta(seconds=0.5)
    assert outbox.backoff(2, lambda: 1.0) == timedelta(seconds=2)
    assert outbox.backoff(5, lambda: 1.0) == timedelta(seconds=16)
    assert outbox.backoff(10, lambda: 1.0) == timedelta(seconds=512)
    assert outbox.backoff(11, lambda: 1.0) == timedelta(minutes=10)
    assert outbox.backoff(10_000, lambda: 1.0) == timedelta(minutes=10)
    assert outbox.backoff(10_000, lambda: 0.0) == timedelta(minutes=5)
    waits = [outbox.backoff(attempts) for attempts in range(1, 400)]
    assert all(timedelta(seconds=0.5) <= wait <= timedelta(minutes=10) for wait in waits)
    assert len(set(waits)) > 300  # jittered: waiting receivers are not all hit at the same instant


async def test_a_receiver_that_never_answers_does_not_hold_up_the_others(app: FastAPI) -> None:
    fast_arrived = asyncio.Event()

    async def receiver(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow.example.hk":
            await asyncio.Event().wait()  # never answers
        fast_arrived.set()
        return httpx.Response(204)

    slow = await store(app, url="https://slow.example.hk/events")
    fast = await store(app, url="https://fast.example.hk/events")
    async with deliverer_for(app, receiver, poll_interval=60, timeout=1.0) as deliverer:
        await deliverer.start()
        await asyncio.wait_for(fast_arrived.wait(), timeout=0.9)  # before the slow attempt's timeout
        assert (await load(app, slow)).last_error is None  # still waiting for its answer
        await eventually(lambda: _delivered(app, fast), "the fast message recorded", seconds=0.9)

        async def timed_out() -> bool:
            return (await load(app, slow)).last_error == "timeout"

        await eventually(timed_out, "the slow attempt ended by the timeout", seconds=3)
    stuck = await load(app, slow)
    assert stuck.delivered_at is None
    assert stuck.given_up_at is None
    assert stuck.next_attempt_at is not None
    assert stuck.next_attempt_at > utcnow()
    assert counted(deliverer, "failed_attempts") == 1
    assert counted(deliverer, "delivered") == 1


async def test_a_bad_url_or_a_broken_transport_never_stops_the_worker(app: FastAPI) -> None:
    async def receiver(request: httpx.Request) -> httpx.Response:
        if request.url.host == "broken.example.hk":
            raise RuntimeError("the transport itself fails")
        if request.url.host == "refused.example.hk":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200)

    broken = await store(app, url="https://broken.example.hk/")
    refused = await store(app, url="https://refused.example.hk/")
    unsendable = await store(app)
    async with app.state.sessionmaker() as db:  # a row no enqueue() would write: its URL cannot be parsed
        row = await db.get(OutboxMessage, unsendable)
        assert row is not None
        row.url = "https://[::1"
        await db.commit()
    async with deliverer_for(app, receiver, poll_interval=0.05) as deliverer:
        await deliverer.start()

        async def all_tried() -> bool:
            return all([(await load(app, m)).last_error is not None for m in (broken, refused, unsendable)])

        await eventually(all_tried, "every attempt recorded")
        good = await store(app, url="https://working.example.hk/")
        await eventually(lambda: _delivered(app, good), "a later message still delivered")
        assert deliverer.running
    assert (await load(app, broken)).last_error == "RuntimeError"
    assert (await load(app, refused)).last_error == "ConnectError"
    gone = await load(app, unsendable)
    assert gone.last_error == "cannot send: InvalidURL"
    assert gone.given_up_at is not None  # retrying could not help
    assert gone.next_attempt_at is None


# --- giving up ------------------------------------------------------------------------------------------------


async def test_a_message_is_given_up_after_three_days(app: FastAPI) -> None:
    receiver = Receiver(*[503] * 10)
    message_id = await store(app, body="never acknowledged")
    stored = await load(app, message_id)
    assert stored.expires_at - stored.created_at == timedelta(days=3)
    clock = Clock()
    async with deliverer_for(app, receiver, clock=clock, rand=lambda: 0.5) as deliverer:
        assert await deliverer.deliver_due() == 1
        clock.now = stored.expires_at - timedelta(seconds=1)
        assert await deliverer.deliver_due() == 1
        last_chance = await load(app, message_id)
        assert last_chance.next_attempt_at == stored.expires_at  # the back-off (1.5 s) stops at the deadline
        assert last_chance.given_up_at is None

        clock.now = stored.expires_at
        assert await deliverer.deliver_due() == 1
        given_up = await load(app, message_id)
        assert given_up.given_up_at == clock.now
        assert given_up.next_attempt_at is None
        assert given_up.delivered_at is None
        assert given_up.attempts == 3
        assert given_up.last_error == "HTTP 503"
        assert counted(deliverer, "given_up") == 1
        assert counted(deliverer, "failed_attempts") == 3

        clock.advance(days=1)
        assert await deliverer.deliver_due() == 0
    assert len(receiver.received) == 3
    assert counted(deliverer, "delivered") == 0


async def test_a_message_found_after_its_deadline_is_given_up_unsent(app: FastAPI) -> None:
    receiver = Receiver()
    message_id = await store(app)
    async with deliverer_for(app, receiver, clock=Clock(utcnow() + timedelta(days=3, seconds=1))) as deliverer:
        assert await deliverer.deliver_due() == 1
    assert receiver.received == []
    assert (await load(app, message_id)).given_up_at is not None
    assert counted(deliverer, "given_up") == 1


# --- several workers, crashes, the app's lifespan -------------------------------------------------------------


async def test_a_message_left_by_a_crashed_process_is_picked_up_by_the_poll(app: FastAPI, settings: Settings) -> None:
    receiver = Receiver()
    async with deliverer_for(app, receiver, poll_interval=0.2) as deliverer:
        await deliverer.start()
        await asyncio.sleep(0.3)
        # Another process committed it and died before telling anyone: nothing in this process is nudged.
        other = create_engine(settings.resolved_database_url)
        try:
            async with create_sessionmaker(other)() as db:
                message_id = await outbox.enqueue(db, kind=KIND, url=URL, body="orphan", content_type="text/plain")
                await db.commit()
        finally:
            await other.dispose()
        await eventually(lambda: _delivered(app, message_id), "the orphan delivered by the poll", seconds=3)
    assert receiver.bodies == [b"orphan"]


async def test_a_claimed_message_whose_worker_died_goes_out_when_its_lease_ends(app: FastAPI) -> None:
    receiver = Receiver()
    message_id = await store(app, body="claimed then orphaned")
    clock = Clock()
    answering = asyncio.Event()

    async def hangs(request: httpx.Request) -> httpx.Response:
        answering.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with deliverer_for(app, hangs, clock=clock) as crashed:
        attempt = asyncio.create_task(crashed.deliver_due())
        await asyncio.wait_for(answering.wait(), timeout=3)
        attempt.cancel()  # the process is killed while the receiver is answering
        with pytest.raises(asyncio.CancelledError):
            await attempt
    leased = await load(app, message_id)
    assert leased.attempts == 1
    assert leased.delivered_at is None
    assert leased.next_attempt_at is not None
    async with deliverer_for(app, receiver, clock=clock) as survivor:
        assert await survivor.deliver_due() == 0  # another node leaves it alone while the lease runs
        clock.now = leased.next_attempt_at
        assert await survivor.deliver_due() == 1
    assert receiver.bodies == [b"claimed then orphaned"]
    assert (await load(app, message_id)).attempts == 2


async def test_two_deliverers_on_one_postgresql_database_never_send_a_message_twice(
    app: FastAPI, settings: Settings
) -> None:
    if not on_postgresql(settings):
        pytest.skip("needs PostgreSQL: SQLite is one process's embedded database, whose writers queue one at a time")
    in_flight: set[bytes] = set()
    overlaps: list[bytes] = []
    received: list[tuple[str, bytes]] = []

    def node(name: str) -> Handler:
        async def handle(request: httpx.Request) -> httpx.Response:
            if request.content in in_flight:
                overlaps.append(request.content)
            in_flight.add(request.content)
            received.append((name, request.content))
            await asyncio.sleep(0.005)
            in_flight.discard(request.content)
            return httpx.Response(200)

        return handle

    engines = [create_engine(settings.resolved_database_url) for _ in range(2)]
    try:
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(node("a"))) as http_a,
            httpx.AsyncClient(transport=httpx.MockTransport(node("b"))) as http_b,
        ):
            first = Deliverer(engines[0], http=http_a, concurrency=4, poll_interval=0.05)
            second = Deliverer(engines[1], http=http_b, concurrency=4, poll_interval=0.05)
            batch = [f"one-{i}" for i in range(60)]
            async with app.state.sessionmaker() as db:
                for body in batch:
                    await outbox.enqueue(db, kind=KIND, url=URL, body=body, content_type="text/plain")
                await db.commit()
            await asyncio.gather(first.deliver_due(), second.deliver_due())  # two passes racing for the rows

            await first.start()  # then two running workers, as two nodes would run them
            await second.start()
            more = [f"two-{i}" for i in range(60)]
            async with app.state.sessionmaker() as db:
                for body in more:
                    await outbox.enqueue(db, kind=KIND, url=URL, body=body, content_type="text/plain")
                await db.commit()

            async def all_delivered() -> bool:
                async with app.state.sessionmaker() as db:
                    pending = (
                        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
                    )
                    remaining: int | None = await db.scalar(pending)
                    return remaining == 0

            await eventually(all_delivered, "every message delivered", seconds=10)
            await first.stop()
            await second.stop()
    finally:
        for engine in engines:
            await engine.dispose()
    bodies = [body for _, body in received]
    assert sorted(bodies) == sorted(body.encode() for body in batch + more)  # each exactly once
    assert overlaps == []
    assert {name for name, _ in received} == {"a", "b"}  # both nodes took part


async def test_the_app_runs_its_deliverer_from_start_to_stop_without_warnings(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    deliverer: Deliverer = app.state.deliverer
    assert not deliverer.running
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with app.router.lifespan_context(app):
            assert deliverer.running
            # A real network attempt with the app's own HTTP client: nothing listens on port 1.
            message_id = await store(app, url="http://127.0.0.1:1/events")

            async def attempted() -> bool:
                return (await load(app, message_id)).last_error is not None

            await eventually(attempted, "the attempt recorded")
            exposed = (await client.get("/metrics")).text
        assert not deliverer.running
        gc.collect()
    assert caught == [], [str(w.message) for w in caught]
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("outbox")] == []
    assert (await load(app, message_id)).last_error == "ConnectError"
    assert f'bauhinia_outbox_failed_attempts_total{{kind="{KIND}"}} 1.0' in exposed
