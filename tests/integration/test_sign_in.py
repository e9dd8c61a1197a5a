"""Signing in: passwords, codes good once, recovery codes, throttling, and session rotation."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

import tests.helpers as h
from bauhinia.core import sessions
from bauhinia.core.audit import AuditEvent
from bauhinia.identity import totp
from bauhinia.identity.models import SignInThrottle
from tests.helpers import csrf_from, make_resident, next_code, sign_in
from tests.integration.support import (
    RESIDENT_COOKIE,
    audit_types,
    field_error,
    open_client,
    post_form,
    require,
    title_of,
    wrong_code,
)

WRONG_LOGIN = "The email address or password is wrong."
WRONG_CODE = "The code is wrong. Check your authenticator app and enter the current code."
USED_CODE = "That code has already been used. Wait for the next code and enter it."
LOCKED = "Too many failed attempts. Try again in 15 minutes, or ask for help at a counter."


async def password_step(client: httpx.AsyncClient, email: str, password: str, next_path: str = "") -> httpx.Response:
    data = {"email": email, "password": password}
    if next_path:
        data["next"] = next_path
    return await post_form(client, "/signin", data)


async def code_step(client: httpx.AsyncClient, code: str) -> httpx.Response:
    return await post_form(client, "/signin/code", {"code": code})


async def is_signed_in(client: httpx.AsyncClient) -> bool:
    """The account pages answer (or send an unfinished account to set-up) instead of to sign-in."""
    response = await client.get("/account")
    return response.status_code == 200 or response.headers.get("location") == "/account/setup"


async def cookie_works(app: FastAPI, cookie: str) -> bool:
    """Does this cookie value, presented by another browser, open the account?"""
    async with open_client(app) as other:
        header = f"{RESIDENT_COOKIE}={cookie}".encode()
        response = await other.get("/account", headers=[(b"cookie", header)])
        return response.status_code == 200 or response.headers.get("location") == "/account/setup"


async def recovery_codes_for(app: FastAPI, who: h.TestResident) -> list[str]:
    async with app.state.sessionmaker() as db:
        codes: list[str] = await app.state.identity.regenerate_recovery_codes(db, who.id)
    return codes


# --- passwords --------------------------------------------------------------------------------------


async def test_a_resident_signs_in_with_password_and_code(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    first = await password_step(client, who.email.upper(), who.password)
    assert first.status_code == 303
    assert first.headers["location"] == "/signin/code"
    assert not await is_signed_in(client)  # the password alone is not enough

    second = await code_step(client, next_code(require(who.totp_secret)))
    assert second.status_code == 303
    assert second.headers["location"] == "/account"
    assert await is_signed_in(client)
    assert (await audit_types(app))[-1] == "sign_in.succeeded"


async def test_a_wrong_password_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    response = await password_step(client, who.email, who.password + "!")
    assert response.status_code == 400
    assert field_error(response.text, "email") == WRONG_LOGIN
    assert title_of(response.text).startswith("Error: Sign in")
    assert who.password not in response.text
    assert not await is_signed_in(client)
    async with app.state.sessionmaker() as db:
        failed = (await db.scalars(select(AuditEvent).where(AuditEvent.event_type == "sign_in.failed"))).one()
    assert failed.subject == f"resident:{who.id}"
    assert failed.data == {"client": "203.0.113.7", "method": "password"}


async def test_an_unknown_email_gets_the_same_message(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    wrong_password = await password_step(client, who.email, "not the password at all")
    unknown = await password_step(client, "nobody@example.hk", who.password)
    assert unknown.status_code == wrong_password.status_code == 400
    assert field_error(unknown.text, "email") == field_error(wrong_password.text, "email") == WRONG_LOGIN


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"email": "", "password": "x"}, "email", "Enter your email address."),
        ({"email": "a@example.hk", "password": ""}, "password", "Enter your password."),
    ],
)
async def test_blank_fields_are_explained(
    client: httpx.AsyncClient, data: dict[str, str], field: str, message: str
) -> None:
    response = await post_form(client, "/signin", data)
    assert response.status_code == 400
    assert field_error(response.text, field) == message


@pytest.mark.parametrize(
    "email",
    ["a" * 10_000 + "@example.hk", "nul\x00byte@example.hk", "'; DROP TABLE residents; --", "\ud7ff@example.hk"],
)
async def test_odd_emails_are_just_wrong(client: httpx.AsyncClient, email: str) -> None:
    response = await password_step(client, email, "violet harbour tram lantern")
    assert response.status_code == 400
    assert field_error(response.text, "email") == WRONG_LOGIN


async def test_a_resident_without_a_second_factor_goes_straight_to_set_up(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    who = await make_resident(app, with_totp=False)
    response = await password_step(client, who.email, who.password)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    account = await client.get("/account")
    assert account.status_code == 303
    assert account.headers["location"] == "/account/setup"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
async def test_sign_in_never_redirects_off_site(app: FastAPI, client: httpx.AsyncClient, target: str) -> None:
    who = await make_resident(app, with_totp=False)
    response = await password_step(client, who.email, who.password, next_path=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"


async def test_sign_in_follows_a_same_site_next(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    page = await client.get("/account/password")
    assert page.headers["location"] == "/signin?next=%2Faccount%2Fpassword"
    await password_step(client, who.email, who.password, next_path="/account/password")
    response = await code_step(client, next_code(require(who.totp_secret)))
    assert response.headers["location"] == "/account/password"


# --- codes ------------------------------------------------------------------------------------------


async def test_the_code_page_needs_a_password_first(client: httpx.AsyncClient) -> None:
    assert (await client.get("/signin/code")).headers["location"] == "/signin"
    token = await csrf_from(client, "/signin")
    response = await client.post("/signin/code", data={"code": "123456", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"


async def test_a_wrong_code_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await password_step(client, who.email, who.password)
    response = await code_step(client, wrong_code(require(who.totp_secret)))
    assert response.status_code == 400
    assert field_error(response.text, "code") == WRONG_CODE
    assert not await is_signed_in(client)


@pytest.mark.parametrize("code", ["", "   ", "１２３４５６", "12345x", "9" * 5000, "\x00" * 6])
async def test_malformed_codes_are_refused(app: FastAPI, client: httpx.AsyncClient, code: str) -> None:
    who = await make_resident(app)
    await password_step(client, who.email, who.password)
    response = await code_step(client, code)
    assert response.status_code == 400
    assert field_error(response.text, "code")
    assert not await is_signed_in(client)


async def test_a_used_code_cannot_be_replayed(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    code = next_code(require(who.totp_secret))
    assert (await sign_in(client, who, code)).headers["location"] == "/account"
    await post_form(client, "/signout", {}, token_from="/account")

    await password_step(client, who.email, who.password)
    replay = await code_step(client, code)
    assert replay.status_code == 400
    assert field_error(replay.text, "code") == USED_CODE
    assert not await is_signed_in(client)
    async with app.state.sessionmaker() as db:
        replayed = (await db.scalars(select(AuditEvent).where(AuditEvent.event_type == "sign_in.totp_replayed"))).one()
    assert replayed.subject == f"resident:{who.id}"
    assert replayed.data == {"client": "203.0.113.7"}


async def test_the_enrolment_code_cannot_be_used_to_sign_in(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)  # enrolment used the current step
    await password_step(client, who.email, who.password)
    response = await code_step(client, totp.current_code(require(who.totp_secret)))
    assert response.status_code == 400
    assert field_error(response.text, "code") == USED_CODE


async def test_a_recovery_code_works_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    codes = await recovery_codes_for(app, who)
    assert len(codes) == 10
    assert len(set(codes)) == 10

    await password_step(client, who.email, who.password)
    first = await code_step(client, codes[0].upper())  # case and dashes do not matter
    assert first.status_code == 303
    assert await is_signed_in(client)
    await post_form(client, "/signout", {}, token_from="/account")

    await password_step(client, who.email, who.password)
    again = await code_step(client, codes[0])
    assert again.status_code == 400
    assert field_error(again.text, "code") == WRONG_CODE

    other = await code_step(client, codes[1].replace("-", " "))
    assert other.status_code == 303
    types = await audit_types(app)
    assert types.count("recovery_code.used") == 2


async def test_recovery_codes_are_stored_only_as_hashes(app: FastAPI) -> None:
    who = await make_resident(app)
    codes = await recovery_codes_for(app, who)
    async with app.state.sessionmaker() as db:
        stored = await app.state.identity.resident(db, who.id)
    sheet = next(a for a in stored.authenticators if a.kind == "recovery")
    assert all(code not in str(sheet.code_hashes) for code in codes)


async def test_the_second_step_expires(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await password_step(client, who.email, who.password)
    async with app.state.sessionmaker() as db:
        rows = (await db.scalars(select(sessions.WebSession))).all()
        row = next(r for r in rows if r.state.get("pending_resident") == who.id)
        sessions.mutate_state(row, pending_at=int(time.time()) - 301)
        await db.commit()
    assert (await client.get("/signin/code")).headers["location"] == "/signin"
    response = await post_form(
        client, "/signin/code", {"code": next_code(require(who.totp_secret))}, token_from="/signin"
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    assert not await is_signed_in(client)


# --- throttling -------------------------------------------------------------------------------------


async def test_five_failures_lock_the_account_even_against_the_right_password(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    who = await make_resident(app)
    for _ in range(5):
        assert field_error((await password_step(client, who.email, "wrong password!!")).text, "email") == WRONG_LOGIN

    # From another address too: the lock is on the account.
    async with open_client(app) as elsewhere:
        locked = await password_step(elsewhere, who.email, who.password)
    assert locked.status_code == 400
    assert field_error(locked.text, "email") == LOCKED
    types = await audit_types(app)
    assert types.count("sign_in.failed") == 5
    assert types.count("sign_in.locked") == 1


async def test_wrong_codes_count_towards_the_lock(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await password_step(client, who.email, who.password)
    bad = wrong_code(require(who.totp_secret))
    for _ in range(5):
        assert field_error((await code_step(client, bad)).text, "code") == WRONG_CODE
    response = await code_step(client, next_code(require(who.totp_secret)))
    assert field_error(response.text, "code") == LOCKED
    assert not await is_signed_in(client)


async def test_twenty_failures_from_one_address_lock_the_address(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app, with_totp=False)
    for attempt in range(20):
        response = await password_step(client, f"guess{attempt}@example.hk", "violet harbour tram lantern")
        assert field_error(response.text, "email") == WRONG_LOGIN
    blocked = await password_step(client, who.email, who.password)
    assert field_error(blocked.text, "email") == LOCKED

    async with open_client(app, "198.51.100.99") as elsewhere:  # the account itself is not locked
        allowed = await password_step(elsewhere, who.email, who.password)
    assert allowed.status_code == 303


async def test_success_clears_the_account_count(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app, with_totp=False)
    for _ in range(4):
        await password_step(client, who.email, "wrong password!!")
    assert (await password_step(client, who.email, who.password)).status_code == 303
    async with app.state.sessionmaker() as db:
        keys = set((await db.scalars(select(SignInThrottle.key))).all())
    assert f"account:{who.id}" not in keys


# --- sessions ---------------------------------------------------------------------------------------


async def test_each_sign_in_step_issues_a_new_session_cookie(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Session fixation: a cookie that existed before signing in never becomes a signed-in cookie."""
    who = await make_resident(app)
    await client.get("/signin")
    planted = client.cookies.get(RESIDENT_COOKIE)
    assert planted

    await password_step(client, who.email, who.password)
    pending = client.cookies.get(RESIDENT_COOKIE)
    assert pending
    assert pending != planted

    await code_step(client, next_code(require(who.totp_secret)))
    signed_in = client.cookies.get(RESIDENT_COOKIE)
    assert signed_in
    assert signed_in not in (planted, pending)

    assert await cookie_works(app, signed_in)
    assert not await cookie_works(app, planted)
    assert not await cookie_works(app, pending)


async def test_signing_in_again_rotates_the_cookie_and_retires_the_old_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    who = await make_resident(app, with_totp=False)
    await password_step(client, who.email, who.password)
    before = client.cookies.get(RESIDENT_COOKIE)
    assert before
    assert await cookie_works(app, before)

    await password_step(client, who.email, who.password)
    after = client.cookies.get(RESIDENT_COOKIE)
    assert after
    assert after != before
    assert await cookie_works(app, after)
    assert not await cookie_works(app, before)


async def test_sign_out_ends_the_session(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    cookie = client.cookies.get(RESIDENT_COOKIE)
    assert cookie
    assert await is_signed_in(client)

    response = await post_form(client, "/signout", {}, token_from="/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/?signed_out=1"
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert not await is_signed_in(client)
    assert not await cookie_works(app, cookie)
    assert "sign_out" in await audit_types(app)


async def test_sign_out_needs_the_csrf_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    response = await client.post("/signout")
    assert response.status_code == 403
    assert await is_signed_in(client)


async def test_an_idle_session_expires(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app, with_totp=False)
    await password_step(client, who.email, who.password)
    async with app.state.sessionmaker() as db:
        row = await db.scalar(select(sessions.WebSession).where(sessions.WebSession.principal_id == who.id))
        assert row is not None
        row.last_seen_at = row.last_seen_at - app.state.session_manager.idle
        await db.commit()
    assert not await is_signed_in(client)


@pytest.mark.parametrize("cookie", ["", "short", "x" * 43, "x" * 5000, "\u00e9" * 30])
async def test_forged_cookies_do_not_authenticate(app: FastAPI, cookie: str) -> None:
    assert not await cookie_works(app, cookie)


async def test_concurrent_first_failures_are_all_counted(app: FastAPI) -> None:
    """The first failures for a key may race to create its row: none is lost, none is a server error."""
    from bauhinia.identity import throttle

    async def fail() -> None:
        async with app.state.sessionmaker() as db:
            await throttle.record_failure(db, "address:192.0.2.1", throttle.ADDRESS_LIMIT)
            await db.commit()

    await asyncio.gather(*(fail() for _ in range(8)))
    async with app.state.sessionmaker() as db:
        row = await db.get(SignInThrottle, "address:192.0.2.1")
    assert row is not None
    assert row.failures == 8
