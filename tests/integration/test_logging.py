"""Secrets never reach the logs: passwords, codes, reset codes, cookies and CSRF tokens."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI

from bauhinia.core.observability import configure_logging
from bauhinia.identity import passwords, totp
from tests.helpers import STRONG_PASSWORD, csrf_from, make_resident, next_code
from tests.integration.support import (
    PUBLIC_URL,
    RESIDENT_COOKIE,
    issue_reset_code,
    make_staff,
    open_client,
    post_form,
    staff_sign_in,
)

_PROXY = type(structlog.get_logger())


@pytest.fixture
def log_output(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], str]]:
    """Everything the app logs at DEBUG, through its own processors (redaction, JSON), into a buffer.

    Module-level loggers keep the configuration they met on first use, so each gets a fresh proxy.
    """
    buffer = io.StringIO()
    configure_logging("DEBUG")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(buffer))
    for name, module in list(sys.modules.items()):
        if name.startswith("bauhinia"):
            for attribute, value in list(vars(module).items()):
                if isinstance(value, _PROXY):
                    monkeypatch.setattr(module, attribute, structlog.get_logger(*value._logger_factory_args))
    yield buffer.getvalue
    configure_logging("WARNING")


async def test_a_full_day_of_secrets_leaves_no_trace_in_the_logs(
    app: FastAPI, client: httpx.AsyncClient, log_output: Callable[[], str]
) -> None:
    secrets: list[str] = [STRONG_PASSWORD]

    # Register through the form, with a password.
    token = await csrf_from(client, "/register")
    secrets.append(token)
    registration_password = "plum junk frigate saxophone"
    secrets.append(registration_password)
    await client.post(
        "/register",
        data={
            "english_surname": "Ho",
            "english_given_names": "Wing Sze",
            "id_number": "A123456(3)",
            "dob_day": "1",
            "dob_month": "2",
            "dob_year": "1990",
            "gender": "F",
            "email": "wing.sze@example.hk",
            "password": registration_password,
            "csrf_token": token,
        },
    )
    cookie = client.cookies.get(RESIDENT_COOKIE)
    assert cookie
    secrets.append(cookie)

    # Sign in: a wrong password, then the right one and a code.
    who = await make_resident(app)
    assert who.totp_secret
    secrets.append(who.totp_secret)
    wrong = "definitely-not-the-password-42"
    secrets.append(wrong)
    await post_form(client, "/signin", {"email": who.email, "password": wrong})
    await post_form(client, "/signin", {"email": who.email, "password": who.password})
    code = next_code(who.totp_secret)
    secrets.append(code)
    await post_form(client, "/signin/code", {"code": code})

    # Staff sign-in and a reset code.
    staff = await make_staff(app)
    secrets.append(staff.totp_secret)
    async with open_client(app) as counter:
        await staff_sign_in(counter, staff)
        page = f"/staff/residents/{who.id}"
        reset_code = await issue_reset_code(counter, page)
    secrets.append(reset_code)
    async with open_client(app) as resident:
        await post_form(resident, "/recover", {"email": who.email, "code": reset_code})
        new_password = "quartz meadow lantern pilot"
        secrets.append(new_password)
        await post_form(resident, "/account/password", {"new_password": new_password})

    output = log_output()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) >= 10, output[:2000]  # the logs are really being captured
    assert all(len(line["request_id"]) >= 8 for line in requests)
    for secret in secrets:
        assert secret not in output, f"a secret reached the logs: {secret[:4]}…"
    assert totp.current_code(who.totp_secret) not in {line.get("code") for line in lines}


async def test_an_unexpected_error_logs_the_failure_but_not_the_password(
    app: FastAPI, log_output: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    who = await make_resident(app, with_totp=False)

    def broken(stored_hash: str | None, password: str) -> bool:
        raise RuntimeError("the hasher is unavailable")

    monkeypatch.setattr(passwords, "verify_password", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL, headers={"accept": "text/html"}) as browser:
        response = await post_form(browser, "/signin", {"email": who.email, "password": who.password})
    assert response.status_code == 500
    assert "Sorry, there is a problem with the service" in response.text
    assert who.password not in response.text

    output = log_output()
    assert "unhandled_error" in output
    assert "the hasher is unavailable" in output
    assert who.password not in output
