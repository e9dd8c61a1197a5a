"""No input, however malformed, produces a server error — on either database engine.

Each form field, query parameter and path parameter gets the values that most often break
something below the web layer: NUL characters (PostgreSQL refuses them in text), huge values,
control characters, markup, non-BMP characters and percent signs.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

import tests.helpers as h
from tests.helpers import make_resident, sign_in
from tests.integration.support import make_staff, open_client, staff_sign_in

NASTY = [
    "\x00",
    "a\x00b@example.hk",
    "A123456(3)\x00",
    "x" * 20_000,
    "\r\n\t\x0b\x0c\x1b[31m",
    "<script>alert(1)</script>\"'><img src=x>{{7*7}}",
    "𠀀𝕏🙂\u202e\ufeff%00%ff%",
]
_addresses = (f"198.18.{n // 250}.{n % 250 + 1}" for n in itertools.count())


@asynccontextmanager
async def fresh_browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A new browser from a new address, so throttling never hides a deeper code path."""
    async with open_client(app, next(_addresses)) as browser:
        yield browser


def token_of(page: httpx.Response) -> str:
    match = h.CSRF_PATTERN.search(page.text)
    assert match, page.text[:300]
    return match.group(1)


def assert_handled(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code}"


REGISTRATION_FIELDS = [
    "english_surname",
    "english_given_names",
    "chinese_name",
    "id_number",
    "dob_day",
    "dob_month",
    "dob_year",
    "gender",
    "email",
    "mobile",
    "password",
    "guardian_name",
    "guardian_id_number",
    "guardian_relationship",
    "guardian_declaration",
]
MINOR = {"dob_day": "1", "dob_month": "1", "dob_year": "2012"}


@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
async def test_registration(app: FastAPI, value: str) -> None:
    async with fresh_browser(app) as browser:
        token = token_of(await browser.get("/register"))
        for field in REGISTRATION_FIELDS:
            form = {"english_surname": "Chan", "english_given_names": "Tai Man", **MINOR, field: value}
            form.update({"id_number": h.id_number("R", "100001")} if field != "id_number" else {})
            response = await browser.post("/register", data={**form, "csrf_token": token})
            assert_handled(response, f"register {field}")


@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
async def test_public_forms(app: FastAPI, value: str) -> None:
    forms = {
        "/signin": ["email", "password", "next"],
        "/recover": ["email", "code"],
    }
    for path, fields in forms.items():
        for field in fields:
            async with fresh_browser(app) as browser:
                token = token_of(await browser.get(path))
                data = {"email": "a@example.hk", "password": "violet harbour tram", "code": "abcd", field: value}
                assert_handled(await browser.post(path, data={**data, "csrf_token": token}), f"{path} {field}")
    for field in ("username", "password", "code"):
        async with fresh_browser(app) as browser:
            token = token_of(await browser.get("/staff/signin"))
            data = {"username": "officer", "password": "violet harbour tram", "code": "123456", field: value}
            assert_handled(await browser.post("/staff/signin", data={**data, "csrf_token": token}), field)


@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
async def test_query_strings_and_cookies(app: FastAPI, value: str) -> None:
    async with fresh_browser(app) as browser:
        for path in ("/", "/signin", "/register", "/language/en", f"/language/{quote(value[:100], safe='')}"):
            assert_handled(await browser.get(path, params={"next": value, "notice": value}), path)
        cookie = f"__Host-bauhinia_resident={value[:4000]}; bauhinia_lang={value[:100]}".encode()
        assert_handled(await browser.get("/account", headers=[(b"cookie", cookie)]), "cookie")
        assert_handled(await browser.get("/", headers=[(b"accept-language", value[:1000].encode())]), "language")


async def test_the_second_factor_form(app: FastAPI) -> None:
    who = await make_resident(app)
    for value in NASTY:
        async with fresh_browser(app) as browser:
            token = token_of(await browser.get("/signin"))
            await browser.post("/signin", data={"email": who.email, "password": who.password, "csrf_token": token})
            token = token_of(await browser.get("/signin/code"))
            assert_handled(await browser.post("/signin/code", data={"code": value, "csrf_token": token}), "code")
        async with app.state.sessionmaker() as db:  # keep the account unlocked for the next value
            from bauhinia.identity import throttle

            await throttle.clear(db, throttle.account_key(who.id))
            await db.commit()


async def test_account_forms(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    for value in NASTY:
        await client.get("/account/totp")
        token = token_of(await client.get("/account/password"))
        assert_handled(await client.post("/account/totp", data={"code": value, "csrf_token": token}), "totp")
        for field in ("current_password", "new_password"):
            response = await client.post(
                "/account/password",
                data={"current_password": "x", "new_password": "y", field: value, "csrf_token": token},
            )
            assert_handled(response, field)
        path_value = quote(value[:200], safe="")
        response = await client.post(f"/account/authenticators/{path_value}/remove", data={"csrf_token": token})
        assert_handled(response, "remove")
        async with app.state.sessionmaker() as db:
            from bauhinia.identity import throttle

            await throttle.clear(db, throttle.account_key(who.id))
            await db.commit()


async def test_staff_forms(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    staff = await make_staff(app)
    assert (await staff_sign_in(client, staff)).status_code == 303
    page = f"/staff/residents/{who.id}"
    for value in NASTY:
        assert_handled(await client.get("/staff", params={"q": value}), "search")
        path_value = quote(value[:200], safe="")
        assert_handled(await client.get(f"/staff/residents/{path_value}"), "resident page")
        token = token_of(await client.get(page))
        for action in ("unlock", "reset-code", "verify"):
            response = await client.post(f"/staff/residents/{path_value}/{action}", data={"csrf_token": token})
            assert_handled(response, action)
        for field in ("id_number", "channel", "document", "location"):
            form = {"id_number": who.id_number, "channel": "counter", "document": "hkid-card", "location": "Counter 1"}
            response = await client.post(f"{page}/verify", data={**form, field: value, "csrf_token": token})
            assert_handled(response, f"verify {field}")


async def test_free_text_with_a_nul_is_stored_without_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Guardian names and counter locations are free text: they reach the database as typed, minus NULs."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from bauhinia.identity.models import GuardianConsent, IdentityVerification

    year = datetime.now(UTC).year - 15
    async with fresh_browser(app) as browser:
        token = token_of(await browser.get("/register"))
        response = await browser.post(
            "/register",
            data={
                "english_surname": "Chan",
                "english_given_names": "Siu Ming",
                "id_number": h.id_number("R", "200002"),
                "dob_day": "1",
                "dob_month": "1",
                "dob_year": str(year),
                "gender": "M",
                "email": "siu.ming@example.hk",
                "password": h.STRONG_PASSWORD,
                "guardian_name": "Chan\x00 Tai Man",
                "guardian_id_number": h.id_number("R", "200003"),
                "guardian_relationship": "parent",
                "guardian_declaration": "yes",
                "csrf_token": token,
            },
        )
    assert response.status_code == 303
    async with app.state.sessionmaker() as db:
        consent = (await db.scalars(select(GuardianConsent))).one()
    assert "\x00" not in consent.guardian_name

    staff = await make_staff(app)
    await staff_sign_in(client, staff)
    page = f"/staff/residents/{consent.resident_id}"
    token = token_of(await client.get(page))
    verified = await client.post(
        f"{page}/verify",
        data={
            "id_number": h.id_number("R", "200002"),
            "channel": "counter",
            "document": "hkid-card-and-birth-certificate",
            "location": "Counter\x00 7",
            "csrf_token": token,
        },
    )
    assert verified.status_code == 303  # post/redirect/get to the resident page
    async with app.state.sessionmaker() as db:
        check = (await db.scalars(select(IdentityVerification))).one()
    assert "\x00" not in check.location
