"""Sign-in methods: forced set-up, authenticator apps, recovery codes shown once, removal, passwords."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

import tests.helpers as h
from bauhinia.identity import totp
from bauhinia.identity.models import Authenticator
from tests.helpers import make_resident, sign_in
from tests.integration.support import (
    audit_types,
    field_error,
    post_form,
    removable_authenticators,
    require,
    title_of,
    wrong_code,
)

LAST_STRONG = "You need at least one authenticator app or passkey. Add another before you remove this one."


async def signed_in_without_app(app: FastAPI, client: httpx.AsyncClient) -> h.TestResident:
    who = await make_resident(app, with_totp=False)
    response = await sign_in(client, who)
    assert response.status_code == 303
    return who


async def start_totp(client: httpx.AsyncClient) -> tuple[str, str]:
    """Open the set-up page; return the key it shows and the page's CSRF token."""
    page = await client.get("/account/totp")
    assert page.status_code == 200
    shown = re.search(r'id="totp-secret"><code>([^<]+)</code>', page.text)
    secret = "".join(require(shown).group(1).split())
    token = require(h.CSRF_PATTERN.search(page.text)).group(1)
    assert 'src="data:image/svg+xml' in page.text  # the QR code is inline: no request leaves the page
    return secret, token


async def add_totp(client: httpx.AsyncClient, code_for: int = 0) -> tuple[str, httpx.Response]:
    secret, token = await start_totp(client)
    code = totp.current_code(secret, time.time() + code_for * totp.INTERVAL)
    return secret, await client.post("/account/totp", data={"code": code, "csrf_token": token})


async def kinds_of(app: FastAPI, resident_id: str) -> list[str]:
    async with app.state.sessionmaker() as db:
        return sorted(
            (await db.scalars(select(Authenticator.kind).where(Authenticator.resident_id == resident_id))).all()
        )


@pytest.mark.parametrize("path", ["/account", "/account/recovery-codes"])
async def test_a_resident_without_a_strong_method_is_sent_to_set_up(
    app: FastAPI, client: httpx.AsyncClient, path: str
) -> None:
    await signed_in_without_app(app, client)
    response = await client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/account/setup"
    setup = await client.get("/account/setup")
    assert setup.status_code == 200
    assert 'href="/account/totp"' in setup.text
    assert title_of(setup.text).startswith("Secure your account")


async def test_set_up_pages_need_a_signed_in_resident(client: httpx.AsyncClient) -> None:
    for path in ("/account/setup", "/account/totp", "/account/password", "/account/recovery-codes"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/signin?next=")


async def test_adding_an_app_shows_recovery_codes_exactly_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await signed_in_without_app(app, client)
    _, response = await add_totp(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/account/recovery-codes"

    shown = await client.get("/account/recovery-codes")
    assert shown.status_code == 200
    codes = re.findall(r"<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>", shown.text)
    assert len(codes) == 10
    assert shown.headers["cache-control"] == "no-store"

    again = await client.get("/account/recovery-codes")
    assert again.status_code == 303
    assert again.headers["location"] == "/account"
    assert await kinds_of(app, who.id) == ["password", "recovery", "totp"]
    account = await client.get("/account")
    assert account.status_code == 200
    assert re.search(r"\b10 (codes )?left", account.text)  # the account page counts unused codes
    types = await audit_types(app)
    assert "authenticator.added" in types
    assert "recovery_codes.generated" in types


async def test_a_wrong_first_code_does_not_add_the_app(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await signed_in_without_app(app, client)
    secret, token = await start_totp(client)
    response = await client.post("/account/totp", data={"code": wrong_code(secret), "csrf_token": token})
    assert response.status_code == 400
    assert field_error(response.text, "code") == (
        "The code is wrong. Check your authenticator app and enter the current code."
    )
    assert await kinds_of(app, who.id) == ["password"]


async def test_the_key_is_bound_to_the_session_that_was_shown_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    """A code for a key of the attacker's choosing cannot be slipped in: the key lives sealed in the session."""
    await signed_in_without_app(app, client)
    _, page_token = await start_totp(client)
    attacker_secret = totp.new_secret()
    response = await client.post(
        "/account/totp",
        data={"code": totp.current_code(attacker_secret), "csrf_token": page_token, "secret": attacker_secret},
    )
    assert response.status_code == 400


async def test_posting_a_code_without_opening_the_page_starts_over(app: FastAPI, client: httpx.AsyncClient) -> None:
    await signed_in_without_app(app, client)
    token = require(h.CSRF_PATTERN.search((await client.get("/account/password")).text)).group(1)
    response = await client.post("/account/totp", data={"code": "123456", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/account/totp"


async def test_removing_the_last_strong_method_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    account = await client.get("/account")
    [only_app] = removable_authenticators(account.text)
    response = await post_form(client, f"/account/authenticators/{only_app}/remove", {}, token_from="/account")
    assert response.status_code == 400
    assert LAST_STRONG in response.text
    assert await kinds_of(app, who.id) == ["password", "recovery", "totp"]


async def test_removing_one_of_two_apps_is_allowed(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    _, added = await add_totp(client)
    assert added.headers["location"] == "/account?notice=totp-added"  # not the first: no new codes
    account = await client.get(added.headers["location"])
    assert "Your authenticator app is set up." in account.text
    first, second = removable_authenticators(account.text)

    removed = await post_form(client, f"/account/authenticators/{first}/remove", {}, token_from="/account")
    assert removed.status_code == 303
    assert removed.headers["location"] == "/account?notice=removed"
    assert await kinds_of(app, who.id) == ["password", "recovery", "totp"]
    assert "authenticator.removed" in await audit_types(app)

    refused = await post_form(client, f"/account/authenticators/{second}/remove", {}, token_from="/account")
    assert refused.status_code == 400
    assert LAST_STRONG in refused.text
    assert await kinds_of(app, who.id) == ["password", "recovery", "totp"]


@pytest.mark.parametrize("target", ["00000000-0000-0000-0000-000000000000", "x" * 500, "%00"])
async def test_removing_something_that_is_not_yours_is_refused(
    app: FastAPI, client: httpx.AsyncClient, target: str
) -> None:
    victim = await make_resident(app)
    async with app.state.sessionmaker() as db:
        victims_app = (
            await db.scalars(
                select(Authenticator.id).where(Authenticator.resident_id == victim.id, Authenticator.kind == "totp")
            )
        ).one()
    who = await make_resident(app)
    await sign_in(client, who)
    await add_totp(client)
    for candidate in (target, victims_app):
        response = await post_form(client, f"/account/authenticators/{candidate}/remove", {}, token_from="/account")
        assert response.status_code == 400
        assert "That sign-in method was not found." in response.text
    assert await kinds_of(app, victim.id) == ["password", "recovery", "totp"]


async def test_new_recovery_codes_replace_the_old_ones(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    async with app.state.sessionmaker() as db:
        old = await app.state.identity.regenerate_recovery_codes(db, who.id)
    await sign_in(client, who)
    response = await post_form(client, "/account/recovery-codes", {}, token_from="/account")
    assert response.headers["location"] == "/account/recovery-codes"
    page = await client.get("/account/recovery-codes")
    new = re.findall(r"<li>([a-z2-9-]{19})</li>", page.text)
    assert len(new) == 10
    assert not set(new) & set(old)


# --- passwords --------------------------------------------------------------------------------------


async def test_changing_the_password_needs_the_current_one(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    new_password = "amber ferry kite orchard"

    wrong = await post_form(
        client, "/account/password", {"current_password": "not my password", "new_password": new_password}
    )
    assert wrong.status_code == 400
    assert field_error(wrong.text, "current_password") == "Your current password is wrong."

    missing = await post_form(client, "/account/password", {"new_password": new_password})
    assert missing.status_code == 400
    assert field_error(missing.text, "current_password") == "Your current password is wrong."

    weak = await post_form(
        client, "/account/password", {"current_password": who.password, "new_password": "password1234"}
    )
    assert weak.status_code == 400
    assert field_error(weak.text, "new_password").startswith("This password is too common")

    named = await post_form(
        client, "/account/password", {"current_password": who.password, "new_password": "Tester Ka Ming 1980"}
    )
    assert field_error(named.text, "new_password").startswith("Do not use your name")

    ok = await post_form(client, "/account/password", {"current_password": who.password, "new_password": new_password})
    assert ok.status_code == 303
    assert ok.headers["location"] == "/account?notice=password-changed"
    assert "password.changed" in await audit_types(app)

    client.cookies.clear()
    old = await post_form(client, "/signin", {"email": who.email, "password": who.password})
    assert old.status_code == 400
    new = await post_form(client, "/signin", {"email": who.email, "password": new_password})
    assert new.status_code == 303


async def test_the_password_page_never_echoes_passwords(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    response = await post_form(client, "/account/password", {"current_password": who.password, "new_password": "short"})
    assert response.status_code == 400
    assert who.password not in response.text
