"""Passkeys end to end through the real routes, with a software authenticator: registration,
usernameless sign-in, and every forged, altered or replayed assertion refused with its reason."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from bauhinia.core.audit import AuditEvent
from bauhinia.identity.models import Authenticator
from tests.helpers import TestResident, make_resident, sign_in
from tests.integration.support import open_client
from tests.softauthn import SoftAuthenticator, b64url

ORIGIN = "https://bauhinia.test"
META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


async def page_csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    match = META_CSRF.search(page.text)
    assert match, f"no CSRF meta tag on {path}"
    return match.group(1)


async def post_json(client: httpx.AsyncClient, path: str, token: str, body: Any = None) -> httpx.Response:
    return await client.post(
        path,
        content=b"" if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-csrf-token": token, "accept": "application/json"},
    )


async def register_passkey(client: httpx.AsyncClient, authenticator: SoftAuthenticator) -> httpx.Response:
    token = await page_csrf(client, "/account/password")
    options = await post_json(client, "/account/passkeys/options", token)
    assert options.status_code == 200, options.text
    return await post_json(client, "/account/passkeys", token, authenticator.create(options.json(), ORIGIN))


async def passkey_options(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    token = await page_csrf(client, "/signin")
    options = await post_json(client, "/signin/passkey/options", token)
    assert options.status_code == 200, options.text
    return token, options.json()


async def resident_with_passkey(app: FastAPI, client: httpx.AsyncClient) -> tuple[TestResident, SoftAuthenticator]:
    who = await make_resident(app, with_totp=False)
    await sign_in(client, who)
    authenticator = SoftAuthenticator()
    registered = await register_passkey(client, authenticator)
    assert registered.status_code == 200, registered.text
    return who, authenticator


async def events(app: FastAPI, event_type: str) -> int:
    async with app.state.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).where(AuditEvent.event_type == event_type)) or 0)


async def test_first_passkey_secures_the_account_and_shows_recovery_codes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    who = await make_resident(app, with_totp=False)
    await sign_in(client, who)
    assert (await client.get("/account")).headers["location"] == "/account/setup"
    registered = await register_passkey(client, SoftAuthenticator())
    assert registered.json() == {"redirect": "/account/recovery-codes"}
    codes_page = await client.get("/account/recovery-codes")
    assert codes_page.status_code == 200
    assert len(re.findall(r"<li>[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}</li>", codes_page.text)) == 10
    assert (await client.get("/account")).status_code == 200


async def test_usernameless_sign_in_with_a_passkey(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, authenticator = await resident_with_passkey(app, client)
    async with open_client(app) as browser:
        token, options = await passkey_options(browser)
        assert "allowCredentials" not in options or options["allowCredentials"] == []
        assert options["userVerification"] == "required"
        result = await post_json(browser, "/signin/passkey?next=/account", token, authenticator.get(options, ORIGIN))
        assert result.status_code == 200, result.text
        assert result.json() == {"redirect": "/account"}
        assert (await browser.get("/account")).status_code == 200
    assert await events(app, "sign_in.succeeded") >= 2


async def test_a_resident_can_hold_several_passkeys(app: FastAPI, client: httpx.AsyncClient) -> None:
    who, _ = await resident_with_passkey(app, client)
    second = await register_passkey(client, SoftAuthenticator())
    assert second.json() == {"redirect": "/account?notice=passkey-added"}
    async with app.state.sessionmaker() as db:
        count = await db.scalar(
            select(func.count()).where(Authenticator.resident_id == who.id, Authenticator.kind == "passkey")
        )
    assert count == 2


async def test_the_same_authenticator_cannot_register_twice(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, authenticator = await resident_with_passkey(app, client)
    token = await page_csrf(client, "/account")
    options = (await post_json(client, "/account/passkeys/options", token)).json()
    excluded = {c["id"] for c in options["excludeCredentials"]}
    assert excluded == {b64url(c.credential_id) for c in authenticator.credentials.values()}


ATTACKS: dict[str, dict[str, Any]] = {
    "forged signature (another key)": {"forge": True},
    "altered signature": {"tamper_signature": True},
    "user not verified": {"user_verified": False},
    "assertion for another relying party": {"rp_id": "evil.example"},
    "another user's handle": {"user_handle": b"\x01" * 32},
    "no user handle": {"omit_user_handle": True},
    "cloned authenticator (counter rolled back)": {"sign_count": 0},
    "registration data posted as an assertion": {"client_data_type": "webauthn.create"},
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_bad_assertions_are_refused(app: FastAPI, client: httpx.AsyncClient, attack: str) -> None:
    _, authenticator = await resident_with_passkey(app, client)
    async with open_client(app) as browser:
        # one good sign-in first, so the stored counter is above zero
        token, options = await passkey_options(browser)
        assert (
            await post_json(browser, "/signin/passkey", token, authenticator.get(options, ORIGIN))
        ).status_code == 200
    failures_before = await events(app, "sign_in.failed")
    async with open_client(app, "198.51.100.99") as attacker:
        token, options = await passkey_options(attacker)
        response = await post_json(
            attacker, "/signin/passkey", token, authenticator.get(options, ORIGIN, **ATTACKS[attack])
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["detail"]
        assert (await attacker.get("/account")).status_code == 303
    assert await events(app, "sign_in.failed") == failures_before + 1


async def test_assertion_from_another_origin_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, authenticator = await resident_with_passkey(app, client)
    async with open_client(app) as browser:
        token, options = await passkey_options(browser)
        phished = authenticator.get(options, "https://bauhinia.test.evil.example")
        response = await post_json(browser, "/signin/passkey", token, phished)
        assert response.status_code == 400
        assert (await browser.get("/account")).status_code == 303


async def test_a_replayed_assertion_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    _, authenticator = await resident_with_passkey(app, client)
    async with open_client(app) as browser:
        token, options = await passkey_options(browser)
        assertion = authenticator.get(options, ORIGIN)
        assert (await post_json(browser, "/signin/passkey", token, assertion)).status_code == 200
    async with open_client(app, "198.51.100.77") as attacker:
        # the same assertion, with no challenge in this session …
        token = await page_csrf(attacker, "/signin")
        assert (await post_json(attacker, "/signin/passkey", token, assertion)).status_code == 400
        # … and against a fresh challenge
        token, _ = await passkey_options(attacker)
        assert (await post_json(attacker, "/signin/passkey", token, assertion)).status_code == 400
        assert (await attacker.get("/account")).status_code == 303


async def test_concurrent_replay_in_one_session_signs_in_at_most_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    """The challenge is spent atomically: two copies of one assertion racing each other cannot both win."""
    _, authenticator = await resident_with_passkey(app, client)
    async with open_client(app) as browser:
        token, options = await passkey_options(browser)
        assertion = authenticator.get(options, ORIGIN)
        results = await asyncio.gather(*(post_json(browser, "/signin/passkey", token, assertion) for _ in range(4)))
    statuses = sorted(r.status_code for r in results)
    # One wins; the others find the challenge spent (400) or their session already rotated away (403).
    assert statuses[0] == 200
    assert all(status in (400, 403) for status in statuses[1:]), statuses


async def test_unknown_passkey_and_malformed_bodies(app: FastAPI, client: httpx.AsyncClient) -> None:
    stranger = SoftAuthenticator()
    stranger.create(
        {
            "rp": {"id": "bauhinia.test"},
            "user": {"id": "AQID", "name": "x"},
            "challenge": "AAAA",
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        },
        ORIGIN,
    )
    for body in [stranger, b"not json", b"[]", b'{"rawId": 5}', b'{"rawId": "!!!"}']:
        token, options = await passkey_options(client)
        content = body.get(options, ORIGIN) if isinstance(body, SoftAuthenticator) else None
        response = await client.post(
            "/signin/passkey",
            content=json.dumps(content).encode() if content is not None else body,  # type: ignore[arg-type]
            headers={"content-type": "application/json", "x-csrf-token": token, "accept": "application/json"},
        )
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_passkey_endpoints_need_the_csrf_header(app: FastAPI, client: httpx.AsyncClient) -> None:
    await page_csrf(client, "/signin")
    response = await client.post("/signin/passkey/options", headers={"accept": "application/json"})
    assert response.status_code == 403
    response = await client.post(
        "/signin/passkey/options", headers={"accept": "application/json", "x-csrf-token": "x" * 43}
    )
    assert response.status_code == 403
