"""The gateway end to end through its API and the resident's review page: consent requests, the
signed artefact, data requests forwarded to three providers, enforcement, provider faults, and the
records the gateway keeps (which must never hold a value)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jws
from sqlalchemy import inspect, select, text, update

from bauhinia.core.audit import AuditEvent
from bauhinia.core.database import utcnow
from bauhinia.core.outbox import OutboxMessage
from bauhinia.exchange.forwarding import request_hash
from bauhinia.exchange.models import Consent, ExchangeRecord
from bauhinia.exchange.schemas import MemberRegistration, SystemRegistration
from bauhinia.settings import Settings
from tests.conftest import PUBLIC_URL
from tests.exchange_support import (
    ADDRESS,
    CONSUMER,
    IMMD,
    INCOME,
    IRD,
    LICENCE,
    RETURN_URI,
    TD,
    VALUES,
    Exchange,
    adult,
    client_token,
    decide,
    demo_exchange,
    point_provider_at,
)
from tests.helpers import sign_in
from tests.integration.test_cli import env_for, invoke
from tests.integration.test_exchange_catalogue import backend, jwks
from tests.integration.test_outbox import deliverer_for
from tests.servers import free_port


@pytest.fixture
async def exchange(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> AsyncIterator[Exchange]:
    exchange = await demo_exchange(app, client, Path(settings.data_dir))
    yield exchange
    await exchange.aclose()


def gateway_claims(app: FastAPI, token: str, typ: str) -> dict[str, Any]:
    """A gateway JWS checked as a department would: against the published keys, with its type."""
    assert jws.extract_compact(token.encode()).headers()["typ"] == typ
    verified = jws.deserialize_compact(token, app.state.oidc.keys.verification_keys(), algorithms=["ES256"])
    claims: dict[str, Any] = json.loads(verified.payload)
    return claims


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# --- consent requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"purpose": "housing.unknown-scheme"}, "purpose"),
        ({"redirect_uri": "https://evil.example/consent-done"}, "redirect_uri"),
        ({"items": [{"id": "immd.no-such-item"}]}, "items"),
        ({"items": [{"id": ADDRESS, "optional": True}]}, "items"),
        ({"items": [{"id": ADDRESS}, {"id": ADDRESS}]}, "items"),
        ({"max_fetches": 2}, None),  # a one-time consent allows one fetch
        ({"mode": "period", "valid_for": 400 * 86400}, "valid_for"),
        ({"state": "has space"}, "state"),
        ({"data_life": -1}, "data_life"),
    ],
)
async def test_malformed_consent_requests_are_refused_field_by_field(
    exchange: Exchange, overrides: dict[str, Any], location: str | None
) -> None:
    body = problem(await exchange.request_consent(**overrides), 422)
    if location is not None:
        assert location in [part for e in body["errors"] for part in e["location"]], body


async def test_only_a_consumer_system_may_ask_and_only_with_a_token(exchange: Exchange, settings: Settings) -> None:
    provider_token = await client_token(exchange.http, Path(settings.data_dir), "immd-backend")
    exchange.consumer_headers = {"Authorization": f"Bearer {provider_token}"}
    assert "consumer system" in problem(await exchange.request_consent(), 403)["detail"]
    exchange.consumer_headers = {}
    assert (await exchange.request_consent()).status_code == 401


async def test_a_pending_request_names_its_review_page_and_expires_unanswered(exchange: Exchange) -> None:
    created = await exchange.request_consent()
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "PENDING"
    assert body["review_url"].endswith(f"/exchange/consents/{body['id']}")
    async with exchange.app.state.sessionmaker() as db:
        await db.execute(
            update(Consent).where(Consent.id == body["id"]).values(request_expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
    status = await exchange.http.get(f"/api/exchange/consents/{body['id']}", headers=exchange.consumer_headers)
    assert status.json()["status"] == "EXPIRED"


# --- approval and the artefact -----------------------------------------------------------------


async def test_an_approved_consent_carries_a_signed_artefact_without_the_resident(exchange: Exchange) -> None:
    resident = await adult(exchange.app)
    consent_id = await exchange.active_consent(resident, left_out=(INCOME,))
    details = await exchange.http.get(f"/api/exchange/consents/{consent_id}", headers=exchange.consumer_headers)
    body = details.json()
    assert body["status"] == "ACTIVE"
    assert sorted(body["items"]) == sorted([ADDRESS, LICENCE])
    artefact = gateway_claims(exchange.app, body["artefact"], "consent+jwt")
    assert artefact["jti"] == consent_id
    assert artefact["consumer"] == CONSUMER
    assert {(i["id"], i["provider"]) for i in artefact["items"]} == {(ADDRESS, IMMD), (LICENCE, TD)}
    assert artefact["exp"] - artefact["nbf"] == 600
    assert resident.id not in body["artefact"]
    assert resident.id not in json.dumps(artefact)
    assert "sub" not in artefact


async def test_a_declined_request_returns_rejected_and_allows_nothing(exchange: Exchange) -> None:
    resident = await adult(exchange.app)
    created = (await exchange.request_consent(state="st-1")).json()
    await sign_in(exchange.http, resident)
    decided = await decide(exchange.http, created["id"], "decline")
    assert decided.status_code == 303
    assert decided.headers["location"].startswith(RETURN_URI + "?")
    assert "status=REJECTED" in decided.headers["location"]
    assert "state=st-1" in decided.headers["location"]
    assert "REJECTED" in problem(await exchange.fetch(created["id"]), 409)["detail"]


# --- data requests -------------------------------------------------------------------------------


async def test_a_data_request_reaches_only_the_consented_providers_and_only_the_consumer_can_read_it(
    exchange: Exchange,
) -> None:
    resident = await adult(exchange.app)
    consent_id = await exchange.active_consent(resident, left_out=(INCOME,))
    answer = await exchange.fetch(consent_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    results = {r["provider"]: r for r in body["results"]}
    assert set(results) == {IMMD, TD}
    assert exchange.providers[IRD].seen == []  # the item left out is never asked for
    for provider, item_id in ((IMMD, ADDRESS), (TD, LICENCE)):
        assert results[provider]["status"] == "delivered"
        opened = exchange.open_response(results[provider]["response"])
        assert opened["request_id"] == body["id"]
        assert opened["items"] == {item_id: {"value": VALUES[item_id], "source": provider, "as_of": "2026-01-01"}}
    # Each provider knows the resident by its own subject, unrelated to the others' and to ours.
    subjects = {p: exchange.providers[p].seen[0]["sub"] for p in (IMMD, TD)}
    assert subjects[IMMD] != subjects[TD]
    assert resident.id not in subjects.values()
    assert exchange.providers[IMMD].seen[0]["items"] == [ADDRESS]
    # The receipt ties every response to its request.
    receipt = gateway_claims(exchange.app, body["receipt"], "exchange-receipt+jwt")
    assert receipt["jti"] == body["id"]
    assert receipt["consent_id"] == consent_id
    for outcome in receipt["results"]:
        assert outcome["response_hash"] == request_hash(results[outcome["provider"]]["response"])


async def test_a_one_time_consent_is_used_up_by_its_fetch(exchange: Exchange) -> None:
    consent_id = await exchange.active_consent(await adult(exchange.app))
    assert (await exchange.fetch(consent_id)).status_code == 200
    assert "EXPIRED" in problem(await exchange.fetch(consent_id), 409)["detail"]
    async with exchange.app.state.sessionmaker() as db:
        events = list(await db.scalars(select(ExchangeRecord.event).where(ExchangeRecord.consent_id == consent_id)))
        webhook = await db.scalar(select(OutboxMessage).where(OutboxMessage.kind == "exchange.webhook"))
    assert sorted(events) == ["consent.approved", "consent.expired", "consent.requested", "data.requested"], events
    assert webhook is not None  # the consumer is told, as of any expiry
    assert gateway_claims(exchange.app, webhook.body, "exchange-event+jwt")["status"] == "EXPIRED"


async def test_items_outside_the_consent_are_refused_before_any_provider_is_asked(exchange: Exchange) -> None:
    consent_id = await exchange.active_consent(await adult(exchange.app), left_out=(INCOME,))
    body = problem(await exchange.fetch(consent_id, items=[ADDRESS, INCOME]), 422)
    assert INCOME in body["detail"]
    assert all(p.seen == [] for p in exchange.providers.values())
    partial = await exchange.fetch(consent_id, items=[LICENCE])
    assert [r["provider"] for r in partial.json()["results"]] == [TD]


async def test_another_consumer_cannot_use_a_consent(exchange: Exchange, app: FastAPI, settings: Settings) -> None:
    consent_id = await exchange.active_consent(await adult(exchange.app))
    other = await backend(app, "swd-backend", ["swd.records"])
    async with app.state.sessionmaker() as db:
        service = app.state.exchange
        member = MemberRegistration.model_validate({"id": "HK/GOV/SWD", "name": {"en": "Social Welfare Department"}})
        await service.register_member(db, member, actor="test")
        system = {
            "id": "HK/GOV/SWD/allowances",
            "roles": ["consumer"],
            "signing_jwks": jwks("sig"),
            "encryption_jwks": jwks("enc"),
            "webhook_url": "https://swd.example.hk/webhook",
            "client_id": other.client_id,
        }
        await service.register_system(db, SystemRegistration.model_validate(system), actor="test")
    from tests.oidc_support import client_auth, post_token

    token = await post_token(exchange.http, {"grant_type": "client_credentials", **client_auth(other)})
    exchange.consumer_headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    problem(await exchange.fetch(consent_id), 404)
    problem(await exchange.http.get(f"/api/exchange/consents/{consent_id}", headers=exchange.consumer_headers), 404)


@pytest.mark.parametrize("action", ["pause", "revoke"])
async def test_paused_and_revoked_consents_refuse_data_requests(exchange: Exchange, action: str) -> None:
    resident = await adult(exchange.app)
    consent_id = await exchange.active_consent(resident, mode="period", max_fetches=5)
    async with exchange.app.state.sessionmaker() as db:
        await exchange.app.state.exchange.consents.change(db, consent_id, resident.id, action)
    status = "PAUSED" if action == "pause" else "REVOKED"
    assert status in problem(await exchange.fetch(consent_id), 409)["detail"]
    assert all(p.seen == [] for p in exchange.providers.values())
    if action == "pause":
        async with exchange.app.state.sessionmaker() as db:
            await exchange.app.state.exchange.consents.change(db, consent_id, resident.id, "resume")
        assert (await exchange.fetch(consent_id)).status_code == 200


async def test_an_expired_consent_refuses_and_counts_are_enforced(exchange: Exchange) -> None:
    resident = await adult(exchange.app)
    consent_id = await exchange.active_consent(resident, mode="period", max_fetches=2)
    assert (await exchange.fetch(consent_id)).status_code == 200
    assert (await exchange.fetch(consent_id)).status_code == 200
    assert "EXPIRED" in problem(await exchange.fetch(consent_id), 409)["detail"]
    later = await exchange.active_consent(resident, mode="period", max_fetches=5)
    async with exchange.app.state.sessionmaker() as db:
        await db.execute(update(Consent).where(Consent.id == later).values(valid_until=utcnow() - timedelta(seconds=1)))
        await db.commit()
    assert "EXPIRED" in problem(await exchange.fetch(later), 409)["detail"]


@pytest.mark.parametrize("junk", ["nope", "0" * 36, "../../etc", "a\x00b"])
async def test_junk_consent_ids_are_problems_not_errors(exchange: Exchange, junk: str) -> None:
    answer = await exchange.fetch(junk)
    assert answer.status_code in (404, 422), answer.text


# --- provider faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "status", "detail"),
    [
        ("hang", "timeout", "did not answer"),
        ("500", "error", "HTTP 500"),
        ("garbage", "error", "not a valid signed response"),
        ("huge", "error", "too large"),
        ("redirect", "error", "HTTP 307"),  # never followed: the request is for this provider only
        ("gone", "error", "could not be reached"),
        ("over-release", "error", "not asked for"),
        ("wrong-key", "error", "not a valid signed response"),
        ("wrong-hash", "error", "request_hash"),
        ("deny", "denied", None),
    ],
)
async def test_a_failing_provider_gets_its_own_status_and_never_fails_the_others(
    exchange: Exchange, behaviour: str, status: str, detail: str | None
) -> None:
    exchange.app.state.exchange.forwarder.timeout = 0.5
    consent_id = await exchange.active_consent(await adult(exchange.app))
    exchange.providers[TD].behaviour = behaviour
    if behaviour == "gone":  # nothing listens at its endpoint any more
        await point_provider_at(exchange.app, TD, f"http://127.0.0.1:{free_port()}")
    answer = await exchange.fetch(consent_id)
    assert answer.status_code == 200, answer.text
    results = {r["provider"]: r for r in answer.json()["results"]}
    assert results[TD]["status"] == status
    if detail is not None:
        assert detail in results[TD]["detail"]
    if status != "denied":
        assert results[TD]["response"] is None  # a response that fails a check is withheld
    assert results[IMMD]["status"] == results[IRD]["status"] == "delivered"
    receipt = gateway_claims(exchange.app, answer.json()["receipt"], "exchange-receipt+jwt")
    assert {o["provider"]: o["status"] for o in receipt["results"]}[TD] == status


# --- records ---------------------------------------------------------------------------------------


async def test_every_step_is_in_the_history_and_the_audit_log(exchange: Exchange) -> None:
    resident = await adult(exchange.app)
    consent_id = await exchange.active_consent(resident, mode="period", max_fetches=3)
    await exchange.fetch(consent_id)
    async with exchange.app.state.sessionmaker() as db:
        await exchange.app.state.exchange.consents.change(db, consent_id, resident.id, "revoke")
        events = list(
            await db.scalars(
                select(ExchangeRecord.event)
                .where(ExchangeRecord.resident_id == resident.id)
                .order_by(ExchangeRecord.created_at)
            )
        )
        audit = list(
            await db.scalars(select(AuditEvent.event_type).where(AuditEvent.subject == f"consent:{consent_id}"))
        )
        history = await exchange.app.state.exchange.consents.history(db, resident.id)
    assert events == ["consent.requested", "consent.approved", "data.requested", "consent.revoked"]
    assert audit == [
        "exchange.consent_requested",
        "exchange.consent_approved",
        "exchange.data_request",
        "exchange.consent_revoked",
    ]
    assert history[0].event == "consent.revoked"
    assert {o["status"] for o in history[1].outcomes} == {"delivered"}


async def test_the_gateway_stores_no_personal_value_anywhere(exchange: Exchange) -> None:
    resident = await adult(exchange.app)
    for _ in range(2):
        consent_id = await exchange.active_consent(resident)
        assert (await exchange.fetch(consent_id)).status_code == 200
    seeded = ["Harmony Court", "Kwun Tong", "CTM853271", "312000", "2025/26", "2031-05-31"]
    async with exchange.app.state.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        dump: list[str] = []
        for table in tables:
            rows = await connection.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608 (our own table names)
            dump.extend(str(tuple(row)) for row in rows)
    everything = "\n".join(dump)
    assert "exchange_records" in tables
    assert "data.requested" in everything
    for value in seeded:
        assert value not in everything, f"{value!r} is stored by the gateway"


async def test_purge_expires_consents_and_tells_their_consumer(exchange: Exchange, settings: Settings) -> None:
    resident = await adult(exchange.app)
    consent_id = await exchange.active_consent(resident, mode="period", max_fetches=5)
    async with exchange.app.state.sessionmaker() as db:
        await db.execute(update(Consent).where(Consent.id == consent_id).values(valid_until=utcnow()))
        await db.commit()
    secret = settings.master_secret().decode()  # the CLI signs the webhook with the app's keys
    result = await invoke(["purge"], {**env_for(settings), "BAUHINIA_SECRET_KEY": secret})
    assert result.exit_code == 0, result.output
    assert "1 consents expired" in result.stdout
    async with exchange.app.state.sessionmaker() as db:
        assert (await db.get(Consent, consent_id)).status == "EXPIRED"
        webhook = await db.scalar(select(OutboxMessage).where(OutboxMessage.kind == "exchange.webhook"))
    assert webhook is not None
    event = gateway_claims(exchange.app, webhook.body, "exchange-event+jwt")
    assert (event["consent_id"], event["status"], event["aud"]) == (consent_id, "EXPIRED", CONSUMER)


async def test_a_resident_change_reaches_the_consumer_as_a_signed_webhook(exchange: Exchange) -> None:
    """Through the outbox's worker: the event is delivered to the consumer's registered webhook URL."""
    received: list[tuple[str, bytes]] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        received.append((str(request.url), request.content))
        return httpx.Response(204)

    resident = await adult(exchange.app)
    consent_id = await exchange.active_consent(resident, mode="period", max_fetches=5)
    async with deliverer_for(exchange.app, receiver, poll_interval=0.05) as deliverer:
        await deliverer.start()
        async with exchange.app.state.sessionmaker() as db:
            await exchange.app.state.exchange.consents.change(db, consent_id, resident.id, "pause")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
    assert [url for url, _ in received] == [f"{PUBLIC_URL}/demo/housing/exchange/webhook"]
    event = gateway_claims(exchange.app, received[0][1].decode(), "exchange-event+jwt")
    assert (event["consent_id"], event["status"]) == (consent_id, "PAUSED")


async def test_a_slow_provider_holds_no_lock_on_the_platform(exchange: Exchange) -> None:
    """While a provider is slow to answer, the rest of the platform writes as usual: no transaction (on
    SQLite, the database's write lock) is held across the calls to providers."""
    exchange.app.state.exchange.forwarder.timeout = 3
    consent_id = await exchange.active_consent(await adult(exchange.app), mode="period", max_fetches=5)
    exchange.providers[TD].behaviour = "hang"
    slow = asyncio.create_task(exchange.fetch(consent_id))
    for _ in range(500):  # until the request is out to the providers (at most 5 s)
        if exchange.providers[IMMD].seen:
            break
        await asyncio.sleep(0.01)
    another = await asyncio.wait_for(exchange.request_consent(), timeout=2)  # a write, meanwhile
    assert another.status_code == 201
    assert not slow.done()
    answer = await slow
    assert {r["provider"]: r["status"] for r in answer.json()["results"]}[TD] == "timeout"
