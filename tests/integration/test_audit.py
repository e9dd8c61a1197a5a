"""The audit log is one hash chain: flows extend it, tampering breaks it, concurrency never forks it."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, update
from sqlalchemy.sql import Executable
from typer.testing import CliRunner

from bauhinia.cli import app as cli
from bauhinia.core import audit
from bauhinia.core.audit import AuditEvent, AuditHead
from tests.conftest import TEST_SECRET
from tests.helpers import make_resident, sign_in
from tests.integration.support import post_form


async def chain(app: FastAPI) -> audit.ChainReport:
    async with app.state.sessionmaker() as db:
        return await audit.verify_chain(db)


async def some_history(app: FastAPI, client: httpx.AsyncClient) -> int:
    """Registration, enrolment, a failed and a good sign-in, a sign-out: a realistic stretch of log."""
    who = await make_resident(app)
    await post_form(client, "/signin", {"email": who.email, "password": "wrong password!!"})
    await sign_in(client, who)
    await post_form(client, "/signout", {}, token_from="/account")
    report = await chain(app)
    assert report.ok, report
    return report.events


async def tamper(app: FastAPI, statement: Executable) -> None:
    async with app.state.sessionmaker() as db:
        await db.execute(statement)
        await db.commit()


def run_cli(database_url: str, *arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli,
        ["audit", "verify", *arguments],
        env={
            "BAUHINIA_DATABASE_URL": database_url,
            "BAUHINIA_SECRET_KEY": TEST_SECRET,
            "BAUHINIA_PUBLIC_URL": "https://bauhinia.test",
        },
    )
    return result.exit_code, result.output


async def test_an_empty_log_is_intact(app: FastAPI) -> None:
    assert await chain(app) == audit.ChainReport(0, True)


async def test_the_flows_leave_an_intact_chain(app: FastAPI, client: httpx.AsyncClient) -> None:
    events = await some_history(app, client)
    async with app.state.sessionmaker() as db:
        rows = (await db.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all()
        head = await db.get(AuditHead, 1)
    assert [row.seq for row in rows] == list(range(1, events + 1))
    assert [row.event_type for row in rows][:4] == [
        "resident.registered",
        "authenticator.added",
        "recovery_codes.generated",
        "sign_in.failed",
    ]
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
    assert head is not None
    assert (head.seq, head.hash) == (rows[-1].seq, rows[-1].hash)


async def test_altering_an_events_data_is_detected(app: FastAPI, client: httpx.AsyncClient) -> None:
    await some_history(app, client)
    await tamper(app, update(AuditEvent).where(AuditEvent.seq == 4).values(data={"client": "10.0.0.1"}))
    report = await chain(app)
    assert not report.ok
    assert report.first_bad_seq == 4
    assert report.events == 3
    assert "altered" in report.reason


@pytest.mark.parametrize(
    "change",
    [
        {"event_type": "sign_in.succeeded"},
        {"actor": "staff:someone"},
        {"subject": "resident:someone-else"},
    ],
)
async def test_altering_any_field_is_detected(app: FastAPI, client: httpx.AsyncClient, change: dict[str, str]) -> None:
    await some_history(app, client)
    await tamper(app, update(AuditEvent).where(AuditEvent.seq == 2).values(**change))
    report = await chain(app)
    assert (report.ok, report.first_bad_seq) == (False, 2)


async def test_rehashing_an_altered_event_breaks_the_next_link(app: FastAPI, client: httpx.AsyncClient) -> None:
    await some_history(app, client)
    async with app.state.sessionmaker() as db:
        event = (await db.scalars(select(AuditEvent).where(AuditEvent.seq == 2))).one()
        event.data = {"forged": True}
        event.hash = audit.event_hash(
            event.seq, event.at, event.event_type, event.actor, event.subject, event.data, event.prev_hash
        )
        await db.commit()
    report = await chain(app)
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "does not link" in report.reason


async def test_deleting_a_middle_event_is_detected(app: FastAPI, client: httpx.AsyncClient) -> None:
    await some_history(app, client)
    await tamper(app, delete(AuditEvent).where(AuditEvent.seq == 3))
    report = await chain(app)
    assert (report.ok, report.first_bad_seq, report.events) == (False, 3, 2)
    assert report.reason == "event 3 is missing"


async def test_deleting_the_last_event_is_detected(app: FastAPI, client: httpx.AsyncClient) -> None:
    events = await some_history(app, client)
    await tamper(app, delete(AuditEvent).where(AuditEvent.seq == events))
    report = await chain(app)
    assert (report.ok, report.first_bad_seq, report.events) == (False, events, events - 1)
    assert "removed" in report.reason


async def test_deleting_the_first_event_is_detected(app: FastAPI, client: httpx.AsyncClient) -> None:
    await some_history(app, client)
    await tamper(app, delete(AuditEvent).where(AuditEvent.seq == 1))
    report = await chain(app)
    assert (report.ok, report.first_bad_seq) == (False, 1)


async def test_the_cli_reports_an_intact_chain_and_the_first_broken_event(
    app: FastAPI, client: httpx.AsyncClient, database_url: str
) -> None:
    events = await some_history(app, client)
    code, output = await asyncio.to_thread(run_cli, database_url)
    assert code == 0, output
    assert f"OK: {events} events, chain intact." in output

    await tamper(app, update(AuditEvent).where(AuditEvent.seq == 5).values(actor="resident:nobody"))
    code, output = await asyncio.to_thread(run_cli, database_url)
    assert code == 1
    assert "BROKEN at event 5" in output
    assert "(4 events verified before it)" in output


async def test_the_cli_reports_a_truncated_chain(app: FastAPI, client: httpx.AsyncClient, database_url: str) -> None:
    events = await some_history(app, client)
    await tamper(app, delete(AuditEvent).where(AuditEvent.seq == events))
    code, output = await asyncio.to_thread(run_cli, database_url)
    assert code == 1
    assert f"BROKEN at event {events}" in output


# --- concurrency ---------------------------------------------------------------------------------------


async def append(app: FastAPI, number: int) -> None:
    async with app.state.sessionmaker() as db:
        await audit.record(db, "test.concurrent", actor="test", subject=f"writer:{number}", data={"n": number})
        await db.commit()


async def test_concurrent_appends_never_fork_the_chain(app: FastAPI) -> None:
    await append(app, 0)
    await asyncio.gather(*(append(app, n) for n in range(1, 13)))
    report = await chain(app)
    assert report == audit.ChainReport(13, True)


async def test_concurrent_first_appends_on_an_empty_log_never_fork_the_chain(app: FastAPI) -> None:
    """Even the very first events, when there is no head row yet to lock."""
    await asyncio.gather(*(append(app, n) for n in range(8)))
    report = await chain(app)
    assert report == audit.ChainReport(8, True)


async def test_a_long_lived_session_appends_after_another_session_did(app: FastAPI) -> None:
    """A session that appended before must read the current head, not its own stale copy of it."""
    async with app.state.sessionmaker() as first:
        await audit.record(first, "test.first", actor="test", subject="a")
        await first.commit()
        await append(app, 1)
        await audit.record(first, "test.first.again", actor="test", subject="a")
        await first.commit()
    assert await chain(app) == audit.ChainReport(3, True)


async def test_appends_from_concurrent_requests_keep_the_chain(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    token = (await client.get("/signin")).text.split('name="csrf_token" value="')[1].split('"')[0]
    await asyncio.gather(
        *(
            client.post("/signin", data={"email": who.email, "password": f"wrong password {n}", "csrf_token": token})
            for n in range(4)  # below the account lock, so every attempt is a counted failure
        )
    )
    report = await chain(app)
    assert report.ok, report
    async with app.state.sessionmaker() as db:
        failed = (await db.scalars(select(AuditEvent).where(AuditEvent.event_type == "sign_in.failed"))).all()
    assert len(failed) == 4
