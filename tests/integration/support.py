"""Helpers for the integration tests: reading pages, counting rows, staff accounts, extra clients."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import DeclarativeBase

from bauhinia.core.audit import AuditEvent
from bauhinia.identity import totp
from bauhinia.identity.models import StaffMember
from tests.helpers import STRONG_PASSWORD, csrf_from

PUBLIC_URL = "https://bauhinia.test"
RESIDENT_COOKIE = "__Host-bauhinia_resident"
STAFF_COOKIE = "__Host-bauhinia_staff"
T = TypeVar("T")
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_RESET_CODE = re.compile(r'<strong id="reset-code">([^<]+)</strong>')
_REMOVE_FORM = re.compile(r'action="/account/authenticators/([^/"]+)/remove"')


@asynccontextmanager
async def open_client(app: FastAPI, address: str = "198.51.100.20") -> AsyncIterator[httpx.AsyncClient]:
    """Another browser (its own cookie jar), from another address."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url=PUBLIC_URL, headers={"accept": "text/html"}, follow_redirects=False
    ) as http:
        yield http


def require(value: T | None) -> T:
    assert value is not None
    return value


def title_of(page: str) -> str:
    match = _TITLE.search(page)
    return html.unescape(match.group(1)).strip() if match else ""


def field_error(page: str, field: str) -> str:
    """The error message shown next to a form field (GOV.UK markup), without the hidden 'Error:' prefix."""
    match = re.search(rf'<p id="{re.escape(field)}-error" class="govuk-error-message">(.*?)</p>', page, re.S)
    if match is None:
        return ""
    text = re.sub(r'<span class="govuk-visually-hidden">.*?</span>', "", match.group(1), flags=re.S)
    return html.unescape(" ".join(text.split()))


def summary_errors(page: str) -> list[str]:
    """The messages in the error summary at the top of a page."""
    block = re.search(r'<ul class="govuk-list govuk-error-summary__list">(.*?)</ul>', page, re.S)
    if block is None:
        return []
    return [html.unescape(" ".join(m.split())) for m in re.findall(r"<a [^>]*>(.*?)</a>", block.group(1), re.S)]


async def issue_reset_code(client: httpx.AsyncClient, resident_page: str) -> str:
    """An officer issues a reset code: POST, then the resident's page shows it once."""
    issued = await post_form(client, f"{resident_page}/reset-code", {}, token_from=resident_page)
    assert issued.status_code == 303, issued.text[:300]
    return reset_code_on((await client.get(issued.headers["location"])).text)


def reset_code_on(page: str) -> str:
    match = _RESET_CODE.search(page)
    assert match, "no reset code on the page"
    return match.group(1)


def removable_authenticators(page: str) -> list[str]:
    return _REMOVE_FORM.findall(page)


async def count(app: FastAPI, model: type[DeclarativeBase] | Any) -> int:
    async with app.state.sessionmaker() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def audit_types(app: FastAPI) -> list[str]:
    async with app.state.sessionmaker() as db:
        return list((await db.scalars(select(AuditEvent.event_type).order_by(AuditEvent.seq))).all())


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, str], *, token_from: str | None = None
) -> httpx.Response:
    """POST a form with the CSRF token of the page it is on (by default the same path)."""
    token = await csrf_from(client, token_from or path)
    return await client.post(path, data={**data, "csrf_token": token})


def wrong_code(secret: str) -> str:
    """A 6-digit code that is not valid for any step in the accepted window."""
    now = time.time()
    valid = {totp.current_code(secret, now + offset * totp.INTERVAL) for offset in range(-2, 3)}
    candidate = int(totp.current_code(secret, now))
    while f"{candidate:06d}" in valid:
        candidate = (candidate + 1) % 1_000_000
    return f"{candidate:06d}"


@dataclass
class StaffAccount:
    id: str
    username: str
    password: str
    totp_secret: str


_staff_serial = iter(range(1, 1_000_000))


async def make_staff(app: FastAPI, roles: tuple[str, ...] = ("officer",)) -> StaffAccount:
    """A staff member created through the service, as `bauhinia staff add` does."""
    username = f"officer{next(_staff_serial)}"
    secret = totp.new_secret()
    async with app.state.sessionmaker() as db:
        staff: StaffMember = await app.state.identity.create_staff(
            db, username, "Counter Officer", list(roles), STRONG_PASSWORD, secret
        )
    return StaffAccount(staff.id, username, STRONG_PASSWORD, secret)


async def staff_sign_in(client: httpx.AsyncClient, staff: StaffAccount, code: str | None = None) -> httpx.Response:
    return await post_form(
        client,
        "/staff/signin",
        {
            "username": staff.username,
            "password": staff.password,
            "code": code or totp.current_code(staff.totp_secret),
        },
    )
