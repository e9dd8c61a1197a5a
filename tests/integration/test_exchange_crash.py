"""The gateway killed (SIGKILL) in the middle of a burst of data requests: every exchange the consumer
was given an answer for is in the records, and `bauhinia audit verify` still passes.

A real `bauhinia serve` process with the demo departments (the providers) mounted, the Housing
Department's SDK client as the consumer, and a consent approved through the real pages.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from bauhinia.app import create_app
from bauhinia.exchange.demo import register_demo_members, write_department_records
from bauhinia.exchange.models import ExchangeRecord
from bauhinia.oidc.demo_clients import register_demo_clients
from bauhinia.sdk import ConsumerClient, SystemCredentials
from bauhinia.seed import seed_demo
from tests.exchange_support import ADDRESS, LICENCE, PURPOSE
from tests.servers import Seeder, bauhinia_serve

BURST = 120
KILL_AFTER = 25  # acknowledged exchanges before the kill


async def seed(app: FastAPI, data_dir: Path) -> list[Any]:
    async with app.state.sessionmaker() as db:
        accounts = await seed_demo(db, app.state.identity, data_dir, date.today())
        await register_demo_clients(db, app.state.oidc, data_dir)
        await register_demo_members(db, app.state.exchange, data_dir)
        await write_department_records(db, app.state.exchange, data_dir)
    return list(accounts)


async def approve(app: FastAPI, consent_id: str, login: str) -> None:
    """The resident's approval, through the service (the review page has its own tests)."""
    async with app.state.sessionmaker() as db:
        resident = await app.state.identity.find_resident(db, login)
        await app.state.exchange.consents.decide(
            db, consent_id, resident.id, approve=True, left_out=set(), today=date.today()
        )


async def burst(consumer: ConsumerClient, consent_id: str, process: subprocess.Popen[bytes]) -> list[str]:
    """Fire BURST data requests; kill the gateway once KILL_AFTER have been answered."""
    acknowledged: list[str] = []

    async def one() -> None:
        try:
            result = await consumer.fetch(consent_id, [ADDRESS, LICENCE])
        except (httpx.HTTPError, OSError):
            return  # the gateway died under this request: it was never acknowledged
        assert {o.status for o in result.outcomes} == {"delivered"}, [
            (o.provider, o.status, o.detail) for o in result.outcomes
        ]
        acknowledged.append(result.request_id)
        if len(acknowledged) == KILL_AFTER:
            process.send_signal(signal.SIGKILL)

    await asyncio.gather(*(one() for _ in range(BURST)))
    return acknowledged


def test_killing_the_gateway_mid_burst_loses_no_acknowledged_exchange(database_url: str, tmp_path: Path) -> None:
    with bauhinia_serve(database_url, tmp_path) as server:
        seeder = Seeder(create_app(server.settings))
        accounts = seeder.run(lambda app: seed(app, tmp_path))
        resident = next(a for a in accounts if a.login == "chan.taiman@demo.bauhinia.hk")
        credentials = SystemCredentials.load(tmp_path / "members" / "HD-applications.json")
        process = server.process
        assert process is not None

        async def scenario() -> list[str]:
            async with ConsumerClient(credentials) as consumer:
                asked = await consumer.request_consent(
                    purpose=PURPOSE,
                    items=[ADDRESS],
                    optional=[LICENCE],
                    mode="period",
                    valid_for=3600,
                    max_fetches=10_000,
                    redirect_uri=f"{server.base_url}/demo/housing/consent-done",
                    state="crash-test",
                )
                await asyncio.to_thread(seeder.run, lambda app: approve(app, asked.id, resident.login))
                # One exchange first: the consumer's token and the providers' keys are then cached, so every
                # answer in the burst is checked without another call to the gateway.
                first = await consumer.fetch(asked.id, [ADDRESS, LICENCE])
                assert {o.status for o in first.outcomes} == {"delivered"}, first.outcomes
                return [first.request_id, *await burst(consumer, asked.id, process)]

        acknowledged = asyncio.run(scenario())
        assert len(acknowledged) >= KILL_AFTER
        assert process.wait(timeout=10) == -signal.SIGKILL  # it really was killed, not stopped

        async def stored(app: FastAPI) -> set[str]:
            async with app.state.sessionmaker() as db:
                return set(await db.scalars(select(ExchangeRecord.id).where(ExchangeRecord.event == "data.requested")))

        recorded = seeder.run(stored)
        assert set(acknowledged) <= recorded, f"lost: {sorted(set(acknowledged) - recorded)}"
        verified = server.command("audit", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
