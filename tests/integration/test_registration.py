"""Registration through the real form: one resident, one password, one audit event — or nothing at all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from bauhinia.core.audit import AuditEvent
from bauhinia.core.sessions import WebSession
from bauhinia.identity.models import Authenticator, GuardianConsent, Resident
from tests.helpers import STRONG_PASSWORD, csrf_from, id_number
from tests.integration.support import (
    RESIDENT_COOKIE,
    audit_types,
    count,
    field_error,
    open_client,
    summary_errors,
    title_of,
)

TODAY = datetime.now(UTC).date()
OWN_NUMBER = "A123456(3)"


def valid_form(**changes: str) -> dict[str, str]:
    form = {
        "english_surname": "Chan",
        "english_given_names": "Tai Man",
        "chinese_name": "陳大文",
        "id_number": OWN_NUMBER,
        "dob_day": "27",
        "dob_month": "3",
        "dob_year": "1985",
        "gender": "M",
        "email": "Tai.Man.Chan@Example.HK",
        "mobile": "+852 9123-4567",
        "password": STRONG_PASSWORD,
    }
    form.update(changes)
    return form


def born(years_ago: int) -> dict[str, str]:
    """A birthday on 1 January, so the age is exact whatever today is."""
    return {"dob_day": "1", "dob_month": "1", "dob_year": str(TODAY.year - years_ago)}


GUARDIAN = {
    "guardian_name": "Chan Siu Ming",
    "guardian_id_number": id_number("B", "765432"),
    "guardian_relationship": "parent",
    "guardian_declaration": "yes",
}


async def register(client: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
    token = await csrf_from(client, "/register")
    return await client.post("/register", data={**form, "csrf_token": token})


async def assert_nothing_created(app: FastAPI) -> None:
    assert await count(app, Resident) == 0
    assert await count(app, Authenticator) == 0
    assert await count(app, GuardianConsent) == 0
    assert "resident.registered" not in await audit_types(app)


@pytest.fixture
async def registered(app: FastAPI, client: httpx.AsyncClient) -> httpx.Response:
    return await register(client, valid_form())


# --- success ----------------------------------------------------------------------------------------


async def test_registration_creates_one_resident_with_a_password_and_an_audit_event(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    anonymous_cookie = (await client.get("/register")).cookies.get(RESIDENT_COOKIE)
    response = await register(client, valid_form())

    assert response.status_code == 303, field_error(response.text, "email") or response.text[:500]
    assert response.headers["location"] == "/account/setup"
    assert client.cookies.get(RESIDENT_COOKIE) not in (None, anonymous_cookie)
    assert await count(app, Resident) == 1
    assert await count(app, Authenticator) == 1
    async with app.state.sessionmaker() as db:
        resident = (await db.scalars(select(Resident))).one()
        device = (await db.scalars(select(Authenticator))).one()
        events = (await db.scalars(select(AuditEvent).where(AuditEvent.event_type == "resident.registered"))).all()
        signed_in = await db.scalar(select(WebSession).where(WebSession.principal_id == resident.id))
    assert resident.english_surname == "CHAN"
    assert resident.english_given_names == "TAI MAN"
    assert resident.chinese_name == "陳大文"
    assert resident.email == "tai.man.chan@example.hk"
    assert resident.mobile == "+85291234567"
    assert resident.assurance_level == "basic"
    assert resident.id_number_masked == "A123***(*)"
    assert "1234563" not in resident.id_number_hash  # the number itself is never stored
    assert device.kind == "password"
    assert device.password_hash is not None
    assert device.password_hash.startswith("$argon2id$")
    assert STRONG_PASSWORD not in device.password_hash
    assert len(events) == 1
    assert events[0].subject == f"resident:{resident.id}"
    assert events[0].data == {"client": "203.0.113.7", "minor": False}
    assert signed_in is not None

    setup = await client.get("/account/setup")
    assert setup.status_code == 200
    assert title_of(setup.text).startswith("Secure your account")


async def test_the_password_is_never_echoed_back_into_the_page(client: httpx.AsyncClient) -> None:
    response = await register(client, valid_form(email="not-an-email"))
    assert response.status_code == 400
    assert STRONG_PASSWORD not in response.text
    assert 'value="Chan"' in response.text  # other answers are kept


async def test_a_minor_with_guardian_consent_is_registered_with_the_consent(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await register(client, valid_form(**born(15), **GUARDIAN))
    assert response.status_code == 303
    async with app.state.sessionmaker() as db:
        consent = (await db.scalars(select(GuardianConsent))).one()
        event = (await db.scalars(select(AuditEvent).where(AuditEvent.event_type == "resident.registered"))).one()
    assert consent.guardian_name == "Chan Siu Ming"
    assert consent.guardian_id_number_masked == "B765***(*)"
    assert consent.relationship_to_resident == "parent"
    assert consent.confirmed_by_staff_id is None
    assert event.data["minor"] is True


async def test_an_eleven_year_old_may_register_with_a_guardian(client: httpx.AsyncClient) -> None:
    response = await register(client, valid_form(**born(11), **GUARDIAN))
    assert response.status_code == 303


async def test_an_adult_needs_no_guardian(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await register(client, valid_form(**born(18)))
    assert response.status_code == 303
    assert await count(app, GuardianConsent) == 0


# --- each bad field: a 400 page with the message by the field, and nothing stored --------------------

BAD_FIELDS = [
    pytest.param({"english_surname": ""}, "english_surname", "Enter your surname in English.", id="no-surname"),
    pytest.param(
        {"english_given_names": "   "}, "english_given_names", "Enter your given names in English.", id="blank-given"
    ),
    pytest.param(
        {"english_surname": "陳"},
        "english_surname",
        "Enter the English name as printed on your identity card, using letters only.",
        id="non-latin-english-name",
    ),
    pytest.param(
        {"english_given_names": "Tai Man 2"},
        "english_given_names",
        "Enter the English name as printed on your identity card, using letters only.",
        id="digits-in-name",
    ),
    pytest.param(
        {"english_surname": "<script>alert(1)</script>"},
        "english_surname",
        "Enter the English name as printed on your identity card, using letters only.",
        id="markup-in-name",
    ),
    pytest.param(
        {"chinese_name": "Chan"},
        "chinese_name",
        "Enter your Chinese name in Chinese characters, or leave it blank.",
        id="latin-chinese-name",
    ),
    pytest.param(
        {"chinese_name": "陳大文1"},
        "chinese_name",
        "Enter your Chinese name in Chinese characters, or leave it blank.",
        id="digit-in-chinese-name",
    ),
    pytest.param({"id_number": ""}, "id_number", "Enter the identity card number.", id="no-id-number"),
    pytest.param(
        {"id_number": "A123456(4)"},
        "id_number",
        "The check digit in brackets does not match the number. Check the number on the card.",
        id="wrong-check-digit",
    ),
    pytest.param(
        {"id_number": "A12345(3)"},
        "id_number",
        "Enter the identity card number as printed on the card, like A123456(3).",
        id="malformed-id-number",
    ),
    pytest.param(
        {"dob_day": "", "dob_month": "", "dob_year": ""},
        "date_of_birth",
        "Enter your date of birth, for example 27 3 1985.",
        id="no-date",
    ),
    pytest.param(
        {"dob_day": "31", "dob_month": "2", "dob_year": "1990"},
        "date_of_birth",
        "Date of birth must be a real date.",
        id="impossible-date",
    ),
    pytest.param(
        {"dob_day": "x", "dob_month": "2", "dob_year": "1990"},
        "date_of_birth",
        "Date of birth must be a real date.",
        id="non-numeric-date",
    ),
    pytest.param(
        {"dob_day": "1", "dob_month": "1", "dob_year": "1899"},
        "date_of_birth",
        "Date of birth must be after 1900.",
        id="before-1900",
    ),
    pytest.param(
        {
            "dob_day": str((TODAY + timedelta(days=1)).day),
            "dob_month": str((TODAY + timedelta(days=1)).month),
            "dob_year": str((TODAY + timedelta(days=1)).year),
        },
        "date_of_birth",
        "Date of birth must be in the past.",
        id="future-date",
    ),
    pytest.param(
        born(10),
        "date_of_birth",
        "You must be 11 or older to register. A parent can help at a counter.",
        id="under-11",
    ),
    pytest.param(
        born(15),
        "guardian_name",
        "Enter your parent or guardian's full name. Residents aged 11 to 17 need their agreement.",
        id="minor-without-guardian",
    ),
    pytest.param(
        {**born(15), **GUARDIAN, "guardian_declaration": ""},
        "guardian_declaration",
        "Your parent or guardian must confirm that they consent.",
        id="minor-without-declaration",
    ),
    pytest.param(
        {**born(15), **GUARDIAN, "guardian_relationship": "friend"},
        "guardian_relationship",
        "Select how the parent or guardian is related to you.",
        id="minor-unknown-relationship",
    ),
    pytest.param(
        {**born(15), **GUARDIAN, "guardian_id_number": "B765432(0)"},
        "guardian_id_number",
        "The check digit in brackets does not match the number. Check the number on the card.",
        id="guardian-wrong-check-digit",
    ),
    pytest.param(
        {**born(15), **GUARDIAN, "guardian_id_number": "a 123456 (3)"},
        "guardian_id_number",
        "The parent or guardian must be another person.",
        id="guardian-is-self",
    ),
    pytest.param({"gender": ""}, "gender", "Select your gender as recorded on your identity card.", id="no-gender"),
    pytest.param(
        {"gender": "Q"}, "gender", "Select your gender as recorded on your identity card.", id="unknown-gender"
    ),
    pytest.param(
        {"email": "not-an-email"},
        "email",
        "Enter an email address in the right format, like name@example.com.",
        id="bad-email",
    ),
    pytest.param(
        {"email": "a@b@example.hk"},
        "email",
        "Enter an email address in the right format, like name@example.com.",
        id="two-at-signs",
    ),
    pytest.param(
        {"email": "tai.man@example.hk\r\nBcc: victim@example.hk"},
        "email",
        "Enter an email address in the right format, like name@example.com.",
        id="header-injection-email",
    ),
    pytest.param(
        {"mobile": "12345"}, "mobile", "Enter a mobile number of 8 to 15 digits, or leave it blank.", id="short-mobile"
    ),
    pytest.param(
        {"mobile": "9123 456x"},
        "mobile",
        "Enter a mobile number of 8 to 15 digits, or leave it blank.",
        id="letters-in-mobile",
    ),
    pytest.param(
        {"password": "short"},
        "password",
        "Use at least 12 characters. A few unrelated words make a strong, memorable password.",
        id="short-password",
    ),
    pytest.param(
        {"password": "password1234"},
        "password",
        "This password is too common or too easy to guess. Try a few unrelated words.",
        id="common-password",
    ),
    pytest.param(
        {"password": "Chan Tai Man 1985"},
        "password",
        "Do not use your name, email address or identity card number in your password.",
        id="password-is-own-name",
    ),
    pytest.param(
        {"password": "tai.man.chan@example.hk"},
        "password",
        "Do not use your name, email address or identity card number in your password.",
        id="password-is-own-email",
    ),
    pytest.param(
        {"password": "A1234563A1234563"},
        "password",
        "This password is too common or too easy to guess. Try a few unrelated words.",
        id="password-is-own-id-number",
    ),
    # Oversized fields: far beyond any real value, well within the body limit.
    pytest.param(
        {"english_surname": "A" * 10_240}, "english_surname", "Names can be at most 80 characters long.", id="10kb-name"
    ),
    pytest.param(
        {"chinese_name": "陳" * 2_000},  # 6 KB of UTF-8, 18 KB percent-encoded
        "chinese_name",
        "Enter your Chinese name in Chinese characters, or leave it blank.",
        id="6kb-chinese-name",
    ),
    pytest.param(
        {"id_number": "A123456(3)" * 1024}, "id_number", "The identity card number is too long.", id="10kb-id-number"
    ),
    pytest.param(
        {"email": "a" * 10_240 + "@example.hk"},
        "email",
        "Enter an email address in the right format, like name@example.com.",
        id="10kb-email",
    ),
    pytest.param(
        {"mobile": "9" * 10_240},
        "mobile",
        "Enter a mobile number of 8 to 15 digits, or leave it blank.",
        id="10kb-mobile",
    ),
    pytest.param({"password": "x" * 10_240}, "password", "Use at most 128 characters.", id="10kb-password"),
    pytest.param({"dob_year": "9" * 10_240}, "date_of_birth", "Date of birth must be a real date.", id="10kb-year"),
    pytest.param(
        {**born(15), **GUARDIAN, "guardian_name": "B" * 10_240},
        "guardian_name",
        "Names can be at most 80 characters long.",
        id="10kb-guardian-name",
    ),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD_FIELDS)
async def test_each_bad_field_is_explained_and_nothing_is_created(
    app: FastAPI, client: httpx.AsyncClient, changes: dict[str, str], field: str, message: str
) -> None:
    response = await register(client, valid_form(**changes))

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert field_error(response.text, field) == message
    assert message in summary_errors(response.text)
    assert title_of(response.text).startswith("Error: ")
    await assert_nothing_created(app)


async def test_every_bad_field_is_reported_at_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await register(
        client,
        {
            "english_surname": "",
            "english_given_names": "",
            "chinese_name": "x",
            "id_number": "A123456(4)",
            "dob_day": "31",
            "dob_month": "2",
            "dob_year": "1990",
            "gender": "",
            "email": "nope",
            "mobile": "1",
            "password": "",
        },
    )
    assert response.status_code == 400
    for field in (
        "english_surname",
        "english_given_names",
        "chinese_name",
        "id_number",
        "date_of_birth",
        "gender",
        "email",
        "mobile",
    ):
        assert field_error(response.text, field), field
    await assert_nothing_created(app)


async def test_missing_form_fields_are_treated_as_blank(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await csrf_from(client, "/register")
    response = await client.post("/register", data={"csrf_token": token})
    assert response.status_code == 400
    assert field_error(response.text, "english_surname") == "Enter your surname in English."
    await assert_nothing_created(app)


async def test_a_body_over_the_limit_is_refused_with_a_problem(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await csrf_from(client, "/register")
    response = await client.post("/register", data={**valid_form(english_surname="A" * 70_000), "csrf_token": token})

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 413
    assert problem["title"] == "Content Too Large"
    assert "65536" in problem["detail"]
    await assert_nothing_created(app)


async def test_a_streamed_body_over_the_limit_is_refused_with_a_problem(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Without a Content-Length the limit is enforced while the body arrives."""
    token = await csrf_from(client, "/register")
    body = httpx.QueryParams({**valid_form(english_surname="A" * 70_000), "csrf_token": token}).__str__().encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = await client.post(
        "/register", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    await assert_nothing_created(app)


async def test_a_bad_content_length_is_refused(client: httpx.AsyncClient) -> None:
    token = await csrf_from(client, "/register")
    request = client.build_request("POST", "/register", data={"csrf_token": token})
    request.headers["content-length"] = "12abc"
    response = await client.send(request)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


# --- duplicates ------------------------------------------------------------------------------------


async def test_a_second_account_for_the_same_id_number_is_refused(
    app: FastAPI, client: httpx.AsyncClient, registered: httpx.Response
) -> None:
    assert registered.status_code == 303
    client.cookies.clear()
    response = await register(client, valid_form(email="someone.else@example.hk", id_number="a1234563"))
    assert response.status_code == 400
    assert field_error(response.text, "id_number") == (
        "An account already exists for this identity card number. Sign in, or ask at a counter for help."
    )
    assert await count(app, Resident) == 1
    assert await count(app, Authenticator) == 1


async def test_a_second_account_for_the_same_email_is_refused(
    app: FastAPI, client: httpx.AsyncClient, registered: httpx.Response
) -> None:
    assert registered.status_code == 303
    client.cookies.clear()
    response = await register(
        client, valid_form(id_number=id_number("C", "111111"), email="  TAI.MAN.CHAN@example.hk ")
    )
    assert response.status_code == 400
    assert field_error(response.text, "email") == "An account already uses this email address. Sign in instead."
    assert await count(app, Resident) == 1
    assert await count(app, Authenticator) == 1


# --- CSRF --------------------------------------------------------------------------------------------


async def test_a_missing_csrf_token_is_refused_and_nothing_created(app: FastAPI, client: httpx.AsyncClient) -> None:
    await client.get("/register")  # a session exists; the form just lacks its token
    response = await client.post("/register", data=valid_form())
    assert response.status_code == 403
    assert title_of(response.text).startswith("This form has expired")
    await assert_nothing_created(app)


async def test_a_post_without_any_session_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post("/register", data={**valid_form(), "csrf_token": "x" * 43})
    assert response.status_code == 403
    await assert_nothing_created(app)


async def test_a_wrong_csrf_token_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await csrf_from(client, "/register")
    response = await client.post("/register", data={**valid_form(), "csrf_token": token[:-2] + "xx"})
    assert response.status_code == 403
    await assert_nothing_created(app)


async def test_another_sessions_csrf_token_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    other_token = await csrf_from(client, "/register")
    client.cookies.clear()
    await client.get("/register")
    response = await client.post("/register", data={**valid_form(), "csrf_token": other_token})
    assert response.status_code == 403
    await assert_nothing_created(app)


async def test_a_cross_site_post_is_refused_even_with_the_right_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await csrf_from(client, "/register")
    response = await client.post(
        "/register", data={**valid_form(), "csrf_token": token}, headers={"sec-fetch-site": "cross-site"}
    )
    assert response.status_code == 403
    await assert_nothing_created(app)


async def test_a_same_origin_post_with_the_right_token_is_accepted(client: httpx.AsyncClient) -> None:
    token = await csrf_from(client, "/register")
    response = await client.post(
        "/register", data={**valid_form(), "csrf_token": token}, headers={"sec-fetch-site": "same-origin"}
    )
    assert response.status_code == 303


async def test_api_clients_get_a_csrf_problem(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post("/register", data=valid_form(), headers={"accept": "application/json"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:bauhinia:problem:csrf"
    await assert_nothing_created(app)


async def test_the_csrf_token_may_come_in_a_header(client: httpx.AsyncClient) -> None:
    token = await csrf_from(client, "/register")
    response = await client.post("/register", data=valid_form(), headers={"x-csrf-token": token})
    assert response.status_code == 303


# --- odd bodies: never a 500 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"%ff%fe=%ff&english_surname=%E9%99%B3", "application/x-www-form-urlencoded"),
        (b"&&&===&", "application/x-www-form-urlencoded"),
        (b"english_surname=a&english_surname=b", "application/x-www-form-urlencoded"),
        (json.dumps(valid_form()).encode(), "application/json"),
        (b'--x\r\nContent-Disposition: form-data; name="english_surname"\r\n\r\n', "multipart/form-data; boundary=x"),
        (b"garbage", "multipart/form-data"),
        (b"\x00\x01\x02", "application/octet-stream"),
    ],
)
async def test_odd_bodies_never_cause_a_server_error(
    app: FastAPI, client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    token = await csrf_from(client, "/register")
    response = await client.post(
        "/register", content=content, headers={"content-type": content_type, "x-csrf-token": token}
    )
    assert response.status_code in (400, 403, 413, 415, 422)
    await assert_nothing_created(app)


async def test_a_file_where_a_name_belongs_is_treated_as_blank(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await csrf_from(client, "/register")
    form = valid_form()
    del form["english_surname"]
    response = await client.post(
        "/register",
        data={**form, "csrf_token": token},
        files={"english_surname": ("name.txt", b"Chan", "text/plain")},
    )
    assert response.status_code == 400
    assert field_error(response.text, "english_surname") == "Enter your surname in English."
    await assert_nothing_created(app)


async def test_simultaneous_registrations_for_one_person_create_one_account(app: FastAPI) -> None:
    async def attempt(address: str, email: str) -> httpx.Response:
        async with open_client(app, address) as browser:
            return await register(browser, valid_form(email=email))

    responses = await asyncio.gather(
        attempt("198.51.100.71", "first@example.hk"), attempt("198.51.100.72", "second@example.hk")
    )
    assert sorted(r.status_code for r in responses) == [303, 400]
    refused = next(r for r in responses if r.status_code == 400)
    assert "already" in " ".join(summary_errors(refused.text))
    assert await count(app, Resident) == 1
    assert await count(app, Authenticator) == 1
    assert (await audit_types(app)).count("resident.registered") == 1
