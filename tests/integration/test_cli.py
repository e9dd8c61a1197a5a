"""The `bauhinia` command as operators use it: demo seeding, staff accounts, purging sessions and old outbox
messages."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from bauhinia.cli import app as cli
from bauhinia.core import outbox
from bauhinia.core.database import utcnow
from bauhinia.core.outbox import OutboxMessage
from bauhinia.core.sessions import WebSession
from bauhinia.identity.models import Resident, StaffMember
from bauhinia.settings import Settings
from tests.integration.support import open_client

runner = CliRunner()


async def invoke(arguments: list[str], env: dict[str, str] | None = None) -> Result:
    """The CLI runs its own event loop (asyncio.run), so it runs in a thread beside the test's."""
    return await asyncio.to_thread(lambda: runner.invoke(cli, arguments, env=env))


def env_for(settings: Settings) -> dict[str, str]:
    return {
        "BAUHINIA_MODE": "dev",
        "BAUHINIA_DATABASE_URL": settings.resolved_database_url,
        "BAUHINIA_DATA_DIR": str(settings.data_dir),
        "BAUHINIA_SECRET_KEY": "cli-test-secret-that-is-long-enough-0123456789",
        "BAUHINIA_LOG_LEVEL": "WARNING",
    }


async def count(app: FastAPI, model: type[object]) -> int:
    async with app.state.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_staff_add_prints_its_secrets_once_and_refuses_unknown_roles(app: FastAPI, settings: Settings) -> None:
    result = await invoke(
        ["staff", "add", "mei.officer", "--name", "Officer Mei", "--role", "officer"], env_for(settings)
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["username"] == "mei.officer"
    assert len(printed["password"]) >= 24
    assert len(printed["totp_secret"]) == 32
    assert await count(app, StaffMember) == 1
    refused = await invoke(["staff", "add", "x", "--name", "X", "--role", "superuser"], env_for(settings))
    assert refused.exit_code == 1
    assert await count(app, StaffMember) == 1


async def test_purge_removes_expired_and_idle_sessions_only(app: FastAPI, settings: Settings) -> None:
    async with open_client(app) as browser:
        assert (await browser.get("/signin")).status_code == 200  # an anonymous session for the form
    async with open_client(app) as other:
        assert (await other.get("/register")).status_code == 200
    async with app.state.sessionmaker() as db:
        rows = list(await db.scalars(select(WebSession)))
        assert len(rows) == 2
        rows[0].expires_at = utcnow() - timedelta(seconds=1)
        await db.commit()
    result = await invoke(["purge"], env_for(settings))
    assert result.exit_code == 0, result.output
    assert "Removed 1 expired sessions and" in result.stdout
    assert await count(app, WebSession) == 1
    async with app.state.sessionmaker() as db:
        survivor = await db.scalar(select(WebSession))
        assert survivor is not None
        survivor.last_seen_at = utcnow() - timedelta(hours=1)
        await db.commit()
    assert "Removed 1 expired sessions and" in (await invoke(["purge"], env_for(settings))).stdout
    assert await count(app, WebSession) == 0


async def test_purge_removes_outbox_messages_finished_over_a_week_ago(app: FastAPI, settings: Settings) -> None:
    now = utcnow()
    ages = {
        "delivered-8d": {"delivered_at": now - timedelta(days=8)},
        "given-up-8d": {"given_up_at": now - timedelta(days=8)},
        "delivered-6d": {"delivered_at": now - timedelta(days=6)},
        "pending": {"next_attempt_at": now - timedelta(days=8)},  # old but not finished: still to be sent
    }
    async with app.state.sessionmaker() as db:
        for name, times in ages.items():
            message_id = await outbox.enqueue(
                db, kind="test.purge", url="https://x.example/", body=name, content_type="t"
            )
            message = await db.get(OutboxMessage, message_id)
            assert message is not None
            message.created_at = now - timedelta(days=10)
            for column, value in {"next_attempt_at": None, **times}.items():
                setattr(message, column, value)
        await db.commit()
    result = await invoke(["purge"], env_for(settings))
    assert result.exit_code == 0, result.output
    assert "and 2 outbox messages delivered or given up over 7 days ago" in result.stdout
    async with app.state.sessionmaker() as db:
        assert set(await db.scalars(select(OutboxMessage.body))) == {"delivered-6d", "pending"}


@pytest.mark.slow
async def test_demo_seeds_once_and_keeps_its_accounts_private(app: FastAPI, settings: Settings, tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = env_for(settings) | {"BAUHINIA_MODE": "demo"}
    first = await invoke(["demo", "--seed-only", "--data-dir", str(data_dir)], env)
    assert first.exit_code == 0, first.output
    accounts_file = data_dir / "demo-accounts.json"
    assert stat.S_IMODE(accounts_file.stat().st_mode) == 0o600
    accounts = json.loads(accounts_file.read_text())
    assert {a["kind"] for a in accounts} == {"staff", "resident"}
    for account in accounts:
        assert account["login"] in first.stdout
        assert account["password"] in first.stdout
    assert await count(app, Resident) == 3
    second = await invoke(["demo", "--seed-only", "--data-dir", str(data_dir)], env)
    assert second.exit_code == 0, second.output
    assert await count(app, Resident) == 3
    code = await invoke(["demo-code", accounts[1]["login"], "--data-dir", str(data_dir)])
    assert code.exit_code == 0
    assert code.stdout.strip().isdigit()
    assert len(code.stdout.strip()) == 6
