"""The gateway's pages for residents: reviewing a consent request (in three languages), agreeing with an
optional item left out, declining, the guardian rule for residents aged 11-17, the resident's consents
(pause, resume, withdraw), the history of every use of their data — and every way these pages refuse."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from bauhinia.core import i18n
from bauhinia.core.database import utcnow
from bauhinia.core.i18n import Translator
from bauhinia.exchange.models import Consent
from bauhinia.identity import totp
from bauhinia.identity.schemas import RegistrationInput, ValidRegistration, validate_registration
from bauhinia.settings import Settings
from tests.exchange_support import IRD, TD, VALUES, Exchange, demo_exchange
from tests.helpers import TestResident, csrf_from, id_number, make_resident, next_code, sign_in
from tests.integration.support import open_client, title_of
from tests.integration.test_exchange_catalogue import Headers, backend, bearer, item, system
from tests.oidc_support import JSON, client_auth, post_token, verify_resident

HOUSING = "HK/GOV/HD/applications"
IMMD, TRANSPORT, REVENUE = "HK/GOV/IMMD/residency", "HK/GOV/TD/licensing", "HK/GOV/IRD/assessments"
ADDRESS, LICENCE, INCOME = "immd.residential-address", "td.driving-licence", "ird.assessable-income"
RETURN_URI = "https://housing.example.hk/consent-done"
PURPOSE_CODE = "housing.public-rental-application"
NAMES = {
    "HK/GOV/IMMD": {"en": "Immigration Department", "zh-Hant": "入境事務處", "zh-Hans": "入境事务处"},
    "HK/GOV/TD": {"en": "Transport Department", "zh-Hant": "運輸署", "zh-Hans": "运输署"},
    "HK/GOV/IRD": {"en": "Inland Revenue Department", "zh-Hant": "稅務局", "zh-Hans": "税务局"},
    "HK/GOV/HD": {"en": "Housing Department", "zh-Hant": "房屋署", "zh-Hans": "房屋署"},
}
TITLES = {
    ADDRESS: {"en": "Residential address", "zh-Hant": "住址", "zh-Hans": "住址"},
    LICENCE: {"en": "Driving licence", "zh-Hant": "駕駛執照", "zh-Hans": "驾驶执照"},
    INCOME: {"en": "Assessable income", "zh-Hant": "應評稅入息", "zh-Hans": "应评税入息"},
}
DESCRIPTION = {
    "en": "To fill in and check your application for public rental housing.",
    "zh-Hant": "填寫及核實你的公共租住房屋申請。",
    "zh-Hans": "填写及核实您的公共租住房屋申请。",
}
ZONE = ZoneInfo("Asia/Hong_Kong")
UNKNOWN = "00000000-0000-4000-8000-000000000000"


# --- the registry: three departments provide, Housing asks ----------------------------------------


@dataclass
class Gateway:
    app: FastAPI
    http: httpx.AsyncClient
    consumer: Headers

    async def ask(self, **overrides: Any) -> str:
        """A consent request from Housing: the address required, the licence and the income optional."""
        body = {
            "purpose": PURPOSE_CODE,
            "items": [{"id": ADDRESS}, {"id": LICENCE, "optional": True}, {"id": INCOME, "optional": True}],
            "mode": "period",
            "valid_for": 30 * 86400,
            "max_fetches": 5,
            "data_life": 0,
            "redirect_uri": RETURN_URI,
            "state": "state-123",
            **overrides,
        }
        created = await self.http.post("/api/exchange/consents", json=body, headers=self.consumer)
        assert created.status_code == 201, created.text
        assert created.json()["review_url"] == f"https://bauhinia.test/exchange/consents/{created.json()['id']}"
        consent_id: str = created.json()["id"]
        return consent_id

    async def status(self, consent_id: str) -> dict[str, Any]:
        answer = await self.http.get(f"/api/exchange/consents/{consent_id}", headers=self.consumer)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture
async def gateway(app: FastAPI, client: httpx.AsyncClient) -> Gateway:
    operator = await bearer(app, client, "ops", ["bauhinia.operator"])
    for client_id in ("immd-backend", "td-backend", "ird-backend"):
        await backend(app, client_id, [])
    housing = await backend(app, "housing-backend", [])
    for member_id, name in NAMES.items():
        created = await client.post("/api/exchange/members", json={"id": member_id, "name": name}, headers=operator)
        assert created.status_code == 201, created.text
    systems = [
        system(IMMD, "immd-backend"),
        system(TRANSPORT, "td-backend"),
        system(REVENUE, "ird-backend"),
        system(HOUSING, "housing-backend", role="consumer", redirect_uris=[RETURN_URI]),
    ]
    for body in systems:
        created = await client.post("/api/exchange/systems", json=body, headers=operator)
        assert created.status_code == 201, created.text
    for item_id, provider in ((ADDRESS, IMMD), (LICENCE, TRANSPORT), (INCOME, REVENUE)):
        body = item(id=item_id, title=TITLES[item_id], provider_system_id=provider)
        published = await client.post("/api/exchange/catalogue/items", json=body, headers=operator)
        assert published.status_code == 201, published.text
    purpose = {"code": PURPOSE_CODE, "description": DESCRIPTION, "consumer_system_ids": [HOUSING]}
    assert (await client.post("/api/exchange/purposes", json=purpose, headers=operator)).status_code == 201
    token = await post_token(client, {"grant_type": "client_credentials", **client_auth(housing)})
    assert token.status_code == 200, token.text
    return Gateway(app, client, {**JSON, "Authorization": f"Bearer {token.json()['access_token']}"})


@pytest.fixture
async def resident(app: FastAPI, client: httpx.AsyncClient) -> TestResident:
    who = await make_resident(app)
    await sign_in(client, who)
    return who


@pytest.fixture
async def other_browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(app) as browser:
        yield browser


# --- reading pages -------------------------------------------------------------------------------


def text_of(page: str) -> str:
    """The page's <main> as text: tags dropped, entities decoded, white space collapsed."""
    main = page[page.index("<main") : page.index("</main>")]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", main)).split())


def checkboxes(page: str) -> dict[str, bool]:
    """Each item checkbox of the review form: its value, and whether it is ticked."""
    found = re.findall(r'<input class="govuk-checkboxes__input"[^>]*name="include"[^>]*>', page)
    return {re.search(r'value="([^"]+)"', tag).group(1): " checked" in tag for tag in found}  # type: ignore[union-attr]


def events_on(page: str) -> list[str]:
    return re.findall(r'data-event="([^"]+)"', page)


Form = dict[str, str | list[str]]


async def form_post(http: httpx.AsyncClient, path: str, form: Form, token_from: str) -> httpx.Response:
    token = await csrf_from(http, token_from)
    return await http.post(path, data={"csrf_token": token, **form})


async def answer(
    http: httpx.AsyncClient,
    consent_id: str,
    action: str,
    include: tuple[str, ...] = (LICENCE, INCOME),
    token_from: str | None = None,
) -> httpx.Response:
    """Press a button of the review form with the optional items in ``include`` ticked (the form's token is
    taken from the review page, or from ``token_from`` when the review page no longer shows the form)."""
    path = f"/exchange/consents/{consent_id}"
    return await form_post(http, path, {"action": action, "include": list(include)}, token_from or path)


def local(moment: datetime) -> str:
    return moment.astimezone(ZONE).strftime("%Y-%m-%d")


# --- the review page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("language", i18n.LANGUAGES)
async def test_the_review_page_says_who_asks_for_what_from_whom_why_and_until_when(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient, language: str
) -> None:
    t = Translator(language)
    consent_id = await gateway.ask()
    client.cookies.set(i18n.LANGUAGE_COOKIE, language, domain="bauhinia.test")
    page = await client.get(f"/exchange/consents/{consent_id}")
    assert page.status_code == 200
    assert f'<html lang="{language}"' in page.text
    housing = NAMES["HK/GOV/HD"][language]
    heading = t.gettext("%(service)s asks for your data", service=housing)
    assert title_of(page.text).startswith(heading + " – ")
    main = text_of(page.text)
    assert heading in main
    assert DESCRIPTION[language] in main
    # The required item is listed with its department; the optional ones are ticked checkboxes.
    address = t.gettext(
        "%(item)s, from %(department)s", item=TITLES[ADDRESS][language], department=NAMES["HK/GOV/IMMD"][language]
    )
    assert address in main
    assert checkboxes(page.text) == {LICENCE: True, INCOME: True}
    assert ADDRESS not in checkboxes(page.text)
    for item_id, member in ((LICENCE, "HK/GOV/TD"), (INCOME, "HK/GOV/IRD")):
        assert TITLES[item_id][language] in main
        assert t.gettext("From %(department)s", department=NAMES[member][language]) in main
    # For how long: a period of 30 days, up to 5 fetches, use and discard.
    assert t.ngettext("%(num)d day", "%(num)d days", 30) in main
    assert local(datetime.now(UTC) + timedelta(days=30)) in main
    assert (
        t.ngettext(
            "For a period: the service can get your data up to %(num)d time.",
            "For a period: the service can get your data up to %(num)d times.",
            5,
        )
        in main
    )
    assert t.gettext("Use and discard: it must not be kept after it has been used.") in main
    assert t.gettext("You can pause or withdraw this consent at any time in your account, under Consents.") in main
    assert 'name="action" value="approve"' in page.text
    assert t.gettext("Agree and share") in main
    assert 'name="action" value="decline"' in page.text
    assert t.gettext("Do not share") in main
    if language != "en":
        for english in ("Housing Department", "Residential address", DESCRIPTION["en"], "Agree and share"):
            assert english not in main, english


async def test_a_one_time_request_kept_for_a_while_says_so(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask(mode="once", valid_for=600, max_fetches=1, data_life=30 * 86400)
    main = text_of((await client.get(f"/exchange/consents/{consent_id}")).text)
    assert "One time: the service can get your data once." in main
    assert "(10 minutes)" in main
    assert "Up to 30 days after receiving it, then it must be deleted." in main


async def test_a_signed_out_resident_signs_in_and_comes_back_to_the_request(
    app: FastAPI, gateway: Gateway, client: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask()
    here = f"/exchange/consents/{consent_id}"
    away = await client.get(here)
    assert away.status_code == 303
    assert away.headers["location"] == f"/signin?next={quote(here, safe='')}"
    who = await make_resident(app)
    assert who.totp_secret is not None
    token = await csrf_from(client, away.headers["location"])
    first = await client.post(
        "/signin", data={"email": who.email, "password": who.password, "next": here, "csrf_token": token}
    )
    assert first.headers["location"] == "/signin/code"
    token = await csrf_from(client, "/signin/code")
    back = await client.post("/signin/code", data={"code": next_code(who.totp_secret), "csrf_token": token})
    assert back.status_code == 303
    assert back.headers["location"] == here
    assert (await client.get(here)).status_code == 200
    # A form posted while signed out goes to the sign-in page too, and decides nothing.
    async with open_client(app) as stranger:
        token = await csrf_from(stranger, "/signin")
        posted = await stranger.post(here, data={"csrf_token": token, "action": "approve"})
        assert posted.status_code == 303
        assert posted.headers["location"].startswith("/signin?next=")
    assert (await gateway.status(consent_id))["status"] == "PENDING"


# --- deciding ------------------------------------------------------------------------------------------


async def test_agreeing_with_an_optional_item_left_out_returns_to_the_service(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask()
    decided = await answer(client, consent_id, "approve", include=(LICENCE,))
    assert decided.status_code == 303
    location = urlsplit(decided.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URI
    assert parse_qs(location.query) == {"consent_id": [consent_id], "status": ["ACTIVE"], "state": ["state-123"]}
    status = await gateway.status(consent_id)
    assert status["status"] == "ACTIVE"
    assert sorted(status["items"]) == sorted([ADDRESS, LICENCE])
    assert status["artefact"]
    assert status["artefact"].count(".") == 2
    # Answered: the page now says so instead of asking again, and a second answer changes nothing.
    again = await client.get(f"/exchange/consents/{consent_id}")
    assert again.status_code == 409
    assert title_of(again.text).startswith("This consent request has already been answered")
    second = await answer(client, consent_id, "decline", token_from="/account")
    assert second.status_code == 409
    assert (await gateway.status(consent_id))["status"] == "ACTIVE"


async def test_declining_returns_rejected_to_the_service(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask()
    decided = await answer(client, consent_id, "decline")
    assert decided.status_code == 303
    query = parse_qs(urlsplit(decided.headers["location"]).query)
    assert query["status"] == ["REJECTED"]
    assert query["state"] == ["state-123"]
    status = await gateway.status(consent_id)
    assert status["status"] == "REJECTED"
    assert status["artefact"] is None
    page = await client.get(f"/exchange/consents/{consent_id}")
    assert page.status_code == 409
    assert "You chose not to share your data." in text_of(page.text)


async def test_a_form_without_its_csrf_token_is_refused(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask()
    refused = await client.post(f"/exchange/consents/{consent_id}", data={"action": "approve", "include": LICENCE})
    assert refused.status_code == 403
    assert title_of(refused.text).startswith("This form has expired")
    wrong = await client.post(f"/exchange/consents/{consent_id}", data={"action": "approve", "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    assert (await gateway.status(consent_id))["status"] == "PENDING"


async def test_a_required_item_cannot_be_left_out_and_a_forged_form_is_refused(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask()
    forms: list[Form] = [
        {"action": "approve", "include": "immd.something-else"},
        {"action": "approve-everything"},
        {"include": LICENCE},
    ]
    for form in forms:
        forged = await form_post(client, f"/exchange/consents/{consent_id}", form, f"/exchange/consents/{consent_id}")
        assert forged.status_code == 422, form
        assert title_of(forged.text).startswith("Your answer could not be used")
        assert (await gateway.status(consent_id))["status"] == "PENDING"
    # The form names only optional items: whatever it leaves out, the required one is shared.
    decided = await answer(client, consent_id, "approve", include=())
    assert decided.status_code == 303
    assert (await gateway.status(consent_id))["items"] == [ADDRESS]


async def test_another_resident_can_neither_see_nor_decide_someone_elses_consent(
    app: FastAPI, gateway: Gateway, resident: TestResident, client: httpx.AsyncClient, other_browser: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask()
    assert (await answer(client, consent_id, "approve")).status_code == 303
    await sign_in(other_browser, await make_resident(app))
    seen = await other_browser.get(f"/exchange/consents/{consent_id}")
    assert seen.status_code == 404
    assert title_of(seen.text).startswith("There is no such consent request")
    token = await csrf_from(other_browser, "/account")
    for action in ("pause", "resume", "revoke"):
        changed = await other_browser.post(f"/account/consents/{consent_id}/{action}", data={"csrf_token": token})
        assert changed.status_code == 404, action
    assert (await other_browser.get(f"/account/consents/{consent_id}/revoke")).status_code == 404
    posted = await other_browser.post(
        f"/exchange/consents/{consent_id}", data={"csrf_token": token, "action": "decline"}
    )
    assert posted.status_code == 404
    assert consent_id not in (await other_browser.get("/account/consents")).text
    assert consent_id not in (await other_browser.get("/account/data-use")).text
    assert (await gateway.status(consent_id))["status"] == "ACTIVE"


async def test_an_expired_request_is_explained(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask()
    async with gateway.app.state.sessionmaker() as db:
        past = utcnow() - timedelta(seconds=1)
        await db.execute(update(Consent).where(Consent.id == consent_id).values(request_expires_at=past))
        await db.commit()
    page = await client.get(f"/exchange/consents/{consent_id}")
    assert page.status_code == 409
    assert title_of(page.text).startswith("This consent request has expired")
    assert (await answer(client, consent_id, "approve", token_from="/account")).status_code == 409
    assert (await gateway.status(consent_id))["status"] == "EXPIRED"


@pytest.mark.parametrize(
    "junk",
    [
        "x",
        UNKNOWN,
        UNKNOWN.upper(),
        "0" * 36,
        "a" * 300,
        "%00",
        "%E4%BD%A0%E5%A5%BD",
        "..%2F..%2Fetc",
        "1%27%20OR%201=1",
    ],
)
async def test_junk_consent_ids_get_a_page_not_a_500(
    resident: TestResident, client: httpx.AsyncClient, junk: str
) -> None:
    page = await client.get(f"/exchange/consents/{junk}")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    token = await csrf_from(client, "/account")
    posted = await client.post(f"/exchange/consents/{junk}", data={"csrf_token": token, "action": "approve"})
    assert posted.status_code == 404
    for action in ("pause", "resume", "revoke"):
        changed = await client.post(f"/account/consents/{junk}/{action}", data={"csrf_token": token})
        assert changed.status_code == 404, action
    assert (await client.get(f"/account/consents/{junk}/revoke")).status_code == 404


# --- the guardian rule -------------------------------------------------------------------------------


async def make_minor(app: FastAPI, age: int = 15) -> TestResident:
    """A resident aged ``age`` who registered with a parent's online declaration (not yet confirmed)."""
    today = datetime.now(ZONE).date()
    number = id_number("M", f"{200000 + age:06d}")
    form = RegistrationInput(
        english_surname="Lee",
        english_given_names="Siu Fung",
        id_number=number,
        dob_day="1",
        dob_month="1",
        dob_year=str(today.year - age),
        gender="F",
        email=f"minor{age}@example.hk",
        password="violet harbour tram lantern",
        guardian_name="Lee Ka Yan",
        guardian_id_number=id_number("N", "135791"),
        guardian_relationship="parent",
        guardian_declaration="yes",
    )
    checked = validate_registration(form, today)
    assert isinstance(checked, ValidRegistration), checked
    secret = totp.new_secret()
    async with app.state.sessionmaker() as db:
        minor = await app.state.identity.register(db, checked, language="en", client="test", today=today)
        await app.state.identity.add_totp(db, minor.id, secret, totp.current_code(secret))
    return TestResident(minor.id, checked.email, form.password, secret, number)


async def test_a_minor_needs_a_guardians_consent_confirmed_in_person(
    app: FastAPI, gateway: Gateway, client: httpx.AsyncClient
) -> None:
    minor = await make_minor(app)
    await sign_in(client, minor)
    consent_id = await gateway.ask()
    assert (await client.get(f"/exchange/consents/{consent_id}")).status_code == 200
    refused = await answer(client, consent_id, "approve")
    assert refused.status_code == 403
    assert title_of(refused.text).startswith("A parent or guardian must agree first")
    assert "confirmed in person" in text_of(refused.text)
    assert (await gateway.status(consent_id))["status"] == "PENDING"  # it stays open until it expires
    client.cookies.set(i18n.LANGUAGE_COOKIE, "zh-Hant", domain="bauhinia.test")
    in_chinese = await answer(client, consent_id, "approve")
    assert in_chinese.status_code == 403
    assert title_of(in_chinese.text).startswith(Translator("zh-Hant").gettext("A parent or guardian must agree first"))
    client.cookies.set(i18n.LANGUAGE_COOKIE, "en", domain="bauhinia.test")

    await verify_resident(app, minor)  # the officer's check confirms the parent's declaration
    decided = await answer(client, consent_id, "approve")
    assert decided.status_code == 303
    assert "status=ACTIVE" in decided.headers["location"]
    async with app.state.sessionmaker() as db:
        consent = await db.get(Consent, consent_id)
        assert consent is not None
        assert consent.guardian_consent_id is not None


async def test_a_minor_may_always_decline(app: FastAPI, gateway: Gateway, client: httpx.AsyncClient) -> None:
    await sign_in(client, await make_minor(app, age=12))
    consent_id = await gateway.ask()
    assert (await answer(client, consent_id, "decline")).status_code == 303
    assert (await gateway.status(consent_id))["status"] == "REJECTED"


# --- the resident's consents ---------------------------------------------------------------------------


def group_of(page: str, consent_id: str) -> str:
    """The heading (In use, Paused, Ended) a consent's card is under."""
    position = page.index(f'id="consent-{consent_id}"')
    headings = [(m.start(), m.group(1)) for m in re.finditer(r'<h2 class="govuk-heading-m" id="(\w+)"', page)]
    return [name for start, name in headings if start < position][-1]


async def test_pause_resume_and_withdraw_from_the_consents_page(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient
) -> None:
    consent_id = await gateway.ask()
    assert (await answer(client, consent_id, "approve", include=(INCOME,))).status_code == 303
    page = await client.get("/account/consents")
    assert page.status_code == 200
    assert title_of(page.text).startswith("Your consents – ")
    assert group_of(page.text, consent_id) == "active"
    main = text_of(page.text)
    assert "Housing Department" in main
    assert DESCRIPTION["en"] in main
    assert "Residential address, from Immigration Department" in main
    assert "Assessable income, from Inland Revenue Department" in main
    assert "Driving licence" not in main
    assert "0 requests used." in main
    status = await gateway.status(consent_id)
    assert local(datetime.fromisoformat(status["valid_until"])) in main
    assert f'action="/account/consents/{consent_id}/pause"' in page.text
    assert f'href="/account/consents/{consent_id}/revoke"' in page.text

    paused = await form_post(client, f"/account/consents/{consent_id}/pause", {}, "/account")
    assert (paused.status_code, paused.headers["location"]) == (303, "/account/consents?notice=paused")
    assert (await gateway.status(consent_id))["status"] == "PAUSED"
    page = await client.get(paused.headers["location"])
    assert "The consent is paused." in text_of(page.text)
    assert group_of(page.text, consent_id) == "paused"
    assert f'action="/account/consents/{consent_id}/resume"' in page.text

    resumed = await form_post(client, f"/account/consents/{consent_id}/resume", {}, "/account")
    assert resumed.headers["location"] == "/account/consents?notice=resumed"
    assert (await gateway.status(consent_id))["status"] == "ACTIVE"

    confirm = await client.get(f"/account/consents/{consent_id}/revoke")
    assert confirm.status_code == 200
    assert title_of(confirm.text).startswith("Withdraw your consent for Housing Department?")
    assert "Withdrawing cannot be undone." in text_of(confirm.text)
    revoked = await form_post(
        client, f"/account/consents/{consent_id}/revoke", {}, f"/account/consents/{consent_id}/revoke"
    )
    assert revoked.headers["location"] == "/account/consents?notice=revoked"
    assert (await gateway.status(consent_id))["status"] == "REVOKED"
    page = await client.get(revoked.headers["location"])
    assert group_of(page.text, consent_id) == "ended"
    assert "Withdrawn" in text_of(page.text)
    assert f"/account/consents/{consent_id}/pause" not in page.text

    # Ended is final: another change is refused with a notice, and the confirmation page is not offered.
    again = await form_post(client, f"/account/consents/{consent_id}/resume", {}, "/account")
    assert again.headers["location"] == "/account/consents?notice=unchanged"
    assert (await client.get(f"/account/consents/{consent_id}/revoke")).headers["location"].endswith("unchanged")
    assert (await gateway.status(consent_id))["status"] == "REVOKED"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
async def test_the_account_pages_speak_the_residents_language(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient, language: str
) -> None:
    t = Translator(language).gettext
    consent_id = await gateway.ask()
    assert (await answer(client, consent_id, "approve")).status_code == 303
    client.cookies.set(i18n.LANGUAGE_COOKIE, language, domain="bauhinia.test")
    for path, heading in (("/account/consents", "Your consents"), ("/account/data-use", "How your data was used")):
        page = await client.get(path)
        assert page.status_code == 200
        assert title_of(page.text).startswith(t(heading) + " – ")
        assert NAMES["HK/GOV/HD"][language] in text_of(page.text)
        assert DESCRIPTION[language] in text_of(page.text)
    account = await client.get("/account")
    assert 'href="/account/consents"' in account.text
    assert 'href="/account/data-use"' in account.text
    home = await client.get("/")
    assert 'href="/account/consents"' in home.text
    assert 'href="/account/data-use"' in home.text


# --- the history ----------------------------------------------------------------------------------------


async def test_the_history_lists_every_consent_event_newest_first(
    gateway: Gateway, resident: TestResident, client: httpx.AsyncClient
) -> None:
    empty = await client.get("/account/data-use")
    assert "Nothing yet" in text_of(empty.text)
    consent_id = await gateway.ask()
    assert (await answer(client, consent_id, "approve", include=(LICENCE,))).status_code == 303
    for action in ("pause", "resume", "revoke"):
        changed = await form_post(client, f"/account/consents/{consent_id}/{action}", {}, "/account")
        assert changed.status_code == 303
    declined = await gateway.ask()
    assert (await answer(client, declined, "decline")).status_code == 303
    page = await client.get("/account/data-use")
    assert page.status_code == 200
    assert events_on(page.text) == [
        "consent.rejected",
        "consent.requested",
        "consent.revoked",
        "consent.resumed",
        "consent.paused",
        "consent.approved",
        "consent.requested",
    ]
    main = text_of(page.text)
    for sentence in (
        "Housing Department asked for your consent",
        "You agreed to share your data with Housing Department",
        "You paused your consent for Housing Department",
        "You resumed your consent for Housing Department",
        "You withdrew your consent for Housing Department",
        "You declined to share your data with Housing Department",
    ):
        assert sentence in main, sentence
    assert local(datetime.now(UTC)) in main
    assert "HKT" in main


@pytest.fixture
async def demo(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> AsyncIterator[Exchange]:
    exchange = await demo_exchange(app, client, Path(settings.data_dir))
    yield exchange
    await exchange.aclose()


async def demo_consent(demo: Exchange, browser: httpx.AsyncClient, include: tuple[str, ...] = (LICENCE, INCOME)) -> str:
    """A demo consent request, approved on the review page by a resident who stays signed in."""
    created = await demo.request_consent()
    assert created.status_code == 201, created.text
    consent_id: str = created.json()["id"]
    await sign_in(browser, await make_resident(demo.app))
    assert (await answer(browser, consent_id, "approve", include=include)).status_code == 303
    return consent_id


async def test_the_history_says_how_each_department_answered_and_never_shows_a_value(
    demo: Exchange, client: httpx.AsyncClient
) -> None:
    consent_id = await demo_consent(demo, client)
    demo.providers[TD].behaviour = "deny"
    demo.providers[IRD].behaviour = "500"
    fetched = await demo.fetch(consent_id)
    assert fetched.status_code == 200, fetched.text
    page = await client.get("/account/data-use")
    assert events_on(page.text)[:2] == ["consent.expired", "data.requested"]  # the one fetch used it up
    row = page.text[page.text.index('data-event="data.requested"') :]
    row = text_of("<main>" + row[: row.index("</tr>")] + "</main>")
    assert "Housing Department asked for your data" in row
    assert "Immigration Department: Delivered Residential address" in row
    assert "Transport Department: Refused Driving licence" in row
    assert "Inland Revenue Department: Error Assessable income" in row
    for value in VALUES.values():
        for part in value.values():
            assert str(part) not in page.text


async def test_a_provider_that_does_not_answer_is_named(demo: Exchange, client: httpx.AsyncClient) -> None:
    consent_id = await demo_consent(demo, client, include=(LICENCE,))
    demo.providers[TD].behaviour = "hang"
    demo.app.state.exchange.forwarder.timeout = 0.2
    assert (await demo.fetch(consent_id)).status_code == 200
    page = await client.get("/account/data-use")
    assert "Transport Department: Did not answer Driving licence" in text_of(page.text)
