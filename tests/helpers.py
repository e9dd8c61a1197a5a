"""Helpers shared by the tests: reading CSRF tokens, making residents, signing in."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date

import httpx
from fastapi import FastAPI

from bauhinia.core.database import Base
from bauhinia.identity import idcard, totp
from bauhinia.identity.schemas import RegistrationInput, ValidRegistration, validate_registration

CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')
STRONG_PASSWORD = "violet harbour tram lantern"


async def empty_all_tables(app: FastAPI) -> None:
    """Every table emptied, children before parents: a clean database without migrating again."""
    async with app.state.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


async def csrf_from(client: httpx.AsyncClient, path: str) -> str:
    """Load a page and return the CSRF token of its first form."""
    page = await client.get(path)
    assert page.status_code == 200, page.text[:500]
    match = CSRF_PATTERN.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def id_number(prefix: str, digits: str) -> str:
    return f"{prefix}{digits}({idcard.check_digit(prefix, digits)})"


@dataclass
class TestResident:
    __test__ = False  # a fixture's product, not a test class
    id: str
    email: str
    password: str
    totp_secret: str | None
    id_number: str
    recovery_codes: list[str] = field(default_factory=list)


_counter = iter(range(100000, 999999))


async def make_resident(
    app: FastAPI, *, email: str | None = None, with_totp: bool = True, birth_year: int = 1980
) -> TestResident:
    """A registered resident (through the real service), optionally with an authenticator app."""
    serial = next(_counter)
    number = id_number("K", f"{serial:06d}")
    form = RegistrationInput(
        english_surname="Tester",
        english_given_names="Ka Ming",
        id_number=number,
        dob_day="5",
        dob_month="6",
        dob_year=str(birth_year),
        gender="X",
        email=email or f"resident{serial}@example.hk",
        password=STRONG_PASSWORD,
    )
    checked = validate_registration(form, date.today())
    assert isinstance(checked, ValidRegistration), checked
    service = app.state.identity
    async with app.state.sessionmaker() as db:
        resident = await service.register(db, checked, language="en", client="test", today=date.today())
        secret, codes = None, None
        if with_totp:
            secret = totp.new_secret()
            codes = await service.add_totp(db, resident.id, secret, totp.current_code(secret))
    return TestResident(resident.id, checked.email, STRONG_PASSWORD, secret, number, list(codes or []))


def next_code(secret: str) -> str:
    """The code of the next 30-second step: enrolment already spent the current one, and a code is good once."""
    return totp.current_code(secret, time.time() + totp.INTERVAL)


async def sign_in(client: httpx.AsyncClient, who: TestResident, code: str | None = None) -> httpx.Response:
    """Password then TOTP, through the real pages. Returns the last response."""
    token = await csrf_from(client, "/signin")
    first = await client.post("/signin", data={"email": who.email, "password": who.password, "csrf_token": token})
    if who.totp_secret is None:
        return first
    assert first.headers.get("location") == "/signin/code", first.text[:300]
    token = await csrf_from(client, "/signin/code")
    return await client.post("/signin/code", data={"code": code or next_code(who.totp_secret), "csrf_token": token})
