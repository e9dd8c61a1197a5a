"""The demo departments mounted at /demo: the three providers answering the gateway's data requests from
their records, and the Housing Department's application site asking for consent, fetching, and hearing
webhooks — through the real gateway, over HTTP (ASGI transports in place of sockets)."""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from joserfc import jwe, jws
from joserfc.jwk import ECKey
from starlette.routing import Route

from bauhinia.demo import Departments
from bauhinia.exchange.demo import DEPARTMENT_RECORDS, ITEMS, write_department_records
from bauhinia.exchange.forwarding import REQUEST_TYP, request_hash
from bauhinia.oidc.demo_clients import register_demo_clients
from bauhinia.settings import Settings
from tests.conftest import PUBLIC_URL
from tests.exchange_support import (
    ADDRESS,
    CONSUMER,
    IMMD,
    INCOME,
    IRD,
    LICENCE,
    PURPOSE,
    TD,
    Exchange,
    decide,
    demo_exchange,
    member_file,
    point_providers_at,
)
from tests.helpers import CSRF_PATTERN, TestResident, empty_all_tables, make_resident, sign_in
from tests.in_loop import serve_in_loop
from tests.integration.support import title_of

CHAN, WONG = "chan.taiman@demo.bauhinia.hk", "wong.siuming@demo.bauhinia.hk"
PROVIDER_PATHS = {IMMD: "immigration", IRD: "inland-revenue", TD: "transport"}
HOUSING = "/demo/housing"


@dataclass
class Demo:
    exchange: Exchange
    departments: Departments
    data_dir: Path
    chan: TestResident
    wong: TestResident

    @property
    def app(self) -> FastAPI:
        return self.exchange.app

    @property
    def http(self) -> httpx.AsyncClient:
        return self.exchange.http


@pytest.fixture
async def demo(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> AsyncIterator[Demo]:
    """The demo registry, two demo residents with the departments' records, and every hop over HTTP:
    the gateway forwards to the demo providers and the departments call the gateway, all in this app."""
    data_dir = Path(settings.data_dir)
    exchange = await demo_exchange(app, client, data_dir)
    chan = await make_resident(app, email=CHAN)
    wong = await make_resident(app, email=WONG)
    async with app.state.sessionmaker() as db:
        await write_department_records(db, app.state.exchange, data_dir)
    await exchange.aclose()  # the demo departments answer here instead of the test providers
    served = await serve_in_loop(app)  # the gateway reaches the providers over real HTTP
    await point_providers_at(app, served.base_url)
    to_app = httpx.ASGITransport(app=app, client=("192.0.2.10", 443))
    departments: Departments = app.state.departments
    departments.http = httpx.AsyncClient(transport=to_app, base_url=PUBLIC_URL, timeout=30)
    yield Demo(exchange, departments, data_dir, chan, wong)
    await departments.aclose()
    await departments.http.aclose()
    await app.state.exchange.forwarder.close()
    await served.aclose()


def subject_of(app: FastAPI, provider: str, resident: TestResident) -> str:
    member = provider.rsplit("/", 1)[0]
    subject: str = app.state.exchange.forwarder.provider_subject(member, resident.id)
    return subject


def forwarded_request(app: FastAPI, provider: str, subject: str, items: list[str], **overrides: Any) -> str:
    """A data request as the gateway forwards it (docs/exchange-protocol.md §4), signed with the gateway's key."""
    now = int(time.time())
    artefact = app.state.oidc.signer.sign(
        {
            "iss": PUBLIC_URL,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "consumer": CONSUMER,
            "purpose": PURPOSE,
            "items": [{"id": ADDRESS, "version": 1, "provider": IMMD}, {"id": LICENCE, "version": 1, "provider": TD}],
            "mode": "once",
            "max_fetches": 1,
            "data_life": 0,
        },
        typ="consent+jwt",
    )
    consumer_key = member_file(Path(app.state.settings.data_dir), CONSUMER)["encryption_private_jwk"]
    claims = {
        "iss": PUBLIC_URL,
        "aud": provider,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
        "request_id": str(uuid.uuid4()),
        "consent": artefact,
        "sub": subject,
        "items": items,
        "consumer": CONSUMER,
        "consumer_key": ECKey.import_key(consumer_key).as_dict(private=False),
        **overrides,
    }
    token: str = app.state.oidc.signer.sign(claims, typ=REQUEST_TYP)
    return token


def provider_answer(demo: Demo, provider: str, answer: httpx.Response, request: str) -> dict[str, Any]:
    """A provider's signed response, checked as a consumer would: its key, the request hash, then the data."""
    assert answer.status_code == 200, answer.text
    signing = ECKey.import_key(member_file(demo.data_dir, provider)["signing_private_jwk"])
    token = answer.json()["response"]
    assert jws.extract_compact(token.encode()).headers()["typ"] == "exchange-response+jwt"
    claims: dict[str, Any] = json.loads(jws.deserialize_compact(token, signing, algorithms=["ES256"]).payload)
    assert claims["iss"] == provider
    assert claims["aud"] == CONSUMER
    assert claims["request_hash"] == request_hash(request)
    if "data" in claims:
        claims["opened"] = json.loads(
            jwe.decrypt_compact(claims["data"], demo.exchange.consumer_encryption_key).plaintext or b""
        )
    return claims


async def post_request(demo: Demo, provider: str, token: str) -> httpx.Response:
    path = f"/demo/{PROVIDER_PATHS[provider]}/exchange/data-requests"
    return await demo.http.post(path, json={"request": token}, headers={"accept": "application/json"})


# --- the providers -------------------------------------------------------------------------------


def test_the_demo_records_satisfy_the_items_schemas() -> None:
    schemas = {item["id"]: item["value_schema"] for item in ITEMS}
    checked = 0
    for residents in DEPARTMENT_RECORDS.values():
        for items in residents.values():
            for item_id, record in items.items():
                jsonschema.validate(record["value"], schemas[item_id], format_checker=jsonschema.FormatChecker())
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["as_of"])
                checked += 1
    assert checked >= 6


async def test_a_provider_releases_exactly_the_items_asked_for_a_subject_it_knows(demo: Demo) -> None:
    subject = subject_of(demo.app, IMMD, demo.chan)
    records_file = demo.data_dir / "departments" / "IMMD.json"
    records = json.loads(records_file.read_text())
    extra = {"value": {"note": "not asked for"}, "as_of": "2026-01-01"}
    records["records"][subject]["immd.travel-history"] = extra  # held, never asked: never released
    records_file.write_text(json.dumps(records))
    request = forwarded_request(demo.app, IMMD, subject, [ADDRESS])
    claims = provider_answer(demo, IMMD, await post_request(demo, IMMD, request), request)
    assert claims["status"] == "delivered"
    assert claims["items"] == [ADDRESS]
    released = claims["opened"]["items"]
    assert list(released) == [ADDRESS]
    assert released[ADDRESS]["source"] == IMMD
    assert released[ADDRESS]["as_of"] == "2024-05-02"
    assert released[ADDRESS]["value"] == DEPARTMENT_RECORDS["HK/GOV/IMMD"][CHAN][ADDRESS]["value"]
    assert "not asked for" not in json.dumps(claims)


async def test_a_provider_denies_a_subject_it_holds_nothing_on(demo: Demo) -> None:
    for subject in (subject_of(demo.app, TD, demo.wong), "someone-it-never-heard-of"):
        request = forwarded_request(demo.app, TD, subject, [LICENCE])
        claims = provider_answer(demo, TD, await post_request(demo, TD, request), request)
        assert claims["status"] == "denied"
        assert claims["items"] == []
        assert claims["reason"] == "No record for this resident."
        assert "data" not in claims


async def test_a_provider_refuses_a_tampered_replayed_or_misdirected_request(demo: Demo) -> None:
    subject = subject_of(demo.app, IMMD, demo.chan)
    request = forwarded_request(demo.app, IMMD, subject, [ADDRESS])
    header, payload, signature = request.split(".")
    claims = json.loads(jws.extract_compact(request.encode()).payload)
    claims["items"] = [ADDRESS, LICENCE]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    tampered = [
        f"{header}.{forged_payload}.{signature}",  # the payload changed under the signature
        f"{header}.{payload}.{signature[:-4]}AAAA",
        forwarded_request(demo.app, IRD, subject, [INCOME]),  # meant for another provider
        forwarded_request(demo.app, IMMD, subject, [LICENCE]),  # an item another provider holds
        forwarded_request(demo.app, IMMD, subject, [ADDRESS], exp=int(time.time()) - 3600),
    ]
    for token in tampered:
        answer = await post_request(demo, IMMD, token)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]
    other_key = ECKey.generate_key("P-256", {"use": "sig"}, auto_kid=True)
    foreign = jws.serialize_compact({"alg": "ES256", "typ": REQUEST_TYP, "kid": other_key.kid}, payload, other_key)
    assert (await post_request(demo, IMMD, foreign)).status_code == 400
    for body in (b"", b"not json", b'{"request": 1}', b"[]"):
        answer = await demo.http.post("/demo/immigration/exchange/data-requests", content=body)
        assert answer.status_code == 400, body
    assert (await post_request(demo, IMMD, request)).status_code == 200
    replay = await post_request(demo, IMMD, request)
    assert replay.status_code == 400, replay.text
    assert "replay" in replay.json()["error"]


async def test_the_gateway_gets_each_providers_answer_through_the_demo_endpoints(demo: Demo) -> None:
    consent_id = await demo.exchange.active_consent(demo.wong)
    answer = await demo.exchange.fetch(consent_id)
    assert answer.status_code == 200, answer.text
    results = {r["provider"]: r for r in answer.json()["results"]}
    assert {p: r["status"] for p, r in results.items()} == {IMMD: "delivered", IRD: "delivered", TD: "denied"}
    released = demo.exchange.open_response(results[IRD]["response"])["items"]
    assert released[INCOME]["value"]["assessable_income_hkd"] == 0


async def test_without_credentials_the_departments_say_they_are_not_set_up(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    answer = await client.post("/demo/transport/exchange/data-requests", content=b'{"request": "x"}')
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert "bauhinia demo" in answer.json()["detail"]
    start = await client.get(f"{HOUSING}/apply")
    assert start.status_code == 200
    token = CSRF_PATTERN.search(start.text)
    assert token is not None
    page = await client.post(f"{HOUSING}/apply/fetch", data={"csrf_token": token.group(1)})
    assert page.status_code == 503
    assert "not set up" in title_of(page.text)
    webhook = await client.post(f"{HOUSING}/exchange/webhook", content=b"x.y.z")
    assert webhook.status_code == 503


# --- the Housing Department ------------------------------------------------------------------------


def input_value(page: str, name: str) -> str:
    match = re.search(rf'id="{re.escape(name)}" name="{re.escape(name)}" type="text" value="([^"]*)"', page)
    assert match is not None, name
    return html.unescape(match.group(1))


def selected(page: str, name: str) -> str:
    match = re.search(rf'<select[^>]* id="{re.escape(name)}"[^>]*>(.*?)</select>', page, re.S)
    assert match is not None, name
    chosen = re.search(r'<option value="([^"]*)" selected>', match.group(1))
    return html.unescape(chosen.group(1)) if chosen else ""


def text_of(page: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))


async def start_fetch(http: httpx.AsyncClient, items: tuple[str, ...] = (INCOME, LICENCE)) -> str:
    """From the start page to the gateway's review page: the consent id asked for."""
    start = await http.get(f"{HOUSING}/apply")
    assert start.status_code == 200
    assert "Housing Department (demo)" in start.text
    assert 'id="fetch-from-records"' in start.text
    assert 'id="fill-in-by-hand"' in start.text
    token = CSRF_PATTERN.search(start.text)
    assert token is not None
    asked = await http.post(f"{HOUSING}/apply/fetch", data={"csrf_token": token.group(1), "items": list(items)})
    assert asked.status_code == 303, asked.text[:500]
    review_url = asked.headers["location"]
    assert review_url.startswith(f"{PUBLIC_URL}/exchange/consents/")
    return review_url.rsplit("/", 1)[1]


async def approve(demo: Demo, resident: TestResident, consent_id: str, left_out: tuple[str, ...] = ()) -> str:
    await sign_in(demo.http, resident)
    decided = await decide(demo.http, consent_id, "approve", left_out)
    assert decided.status_code == 303, decided.text[:500]
    location: str = decided.headers["location"]
    assert location.startswith(f"{PUBLIC_URL}{HOUSING}/consent-done?")
    return location


async def withdraw(demo: Demo, consent_id: str) -> None:
    """The resident (still signed in) withdraws the consent from their account, confirming it."""
    path = f"/account/consents/{consent_id}/revoke"
    token = CSRF_PATTERN.search((await demo.http.get(path)).text)
    assert token is not None
    withdrawn = await demo.http.post(path, data={"csrf_token": token.group(1)})
    assert withdrawn.headers.get("location") == "/account/consents?notice=revoked", withdrawn.text[:300]


async def back_to_the_form(demo: Demo, location: str) -> str:
    done = await demo.http.get(location)
    assert done.status_code == 303, done.text[:500]
    form = await demo.http.get(done.headers["location"])
    assert form.status_code == 200, form.text[:500]
    return form.text


async def submit(http: httpx.AsyncClient, page: str, **changes: str) -> httpx.Response:
    fields = re.findall(r'<(?:input|select)[^>]* name="([^"]+)"', page)
    form = {name: input_value(page, name) for name in fields if f'id="{name}" name="{name}" type="text"' in page}
    form |= {name: selected(page, name) for name in ("household-size", "address-region")}
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    return await http.post(f"{HOUSING}/apply/submit", data={**form, **hidden, **changes})


async def test_the_form_fills_itself_in_from_the_records_the_resident_agreed_to_share(demo: Demo) -> None:
    consent_id = await start_fetch(demo.http)
    page = await back_to_the_form(demo, await approve(demo, demo.chan, consent_id, left_out=(INCOME,)))
    assert input_value(page, "address-building") == "Harmony Court"
    assert input_value(page, "address-flat") == "12A"
    assert input_value(page, "address-district") == "Kwun Tong"
    assert selected(page, "address-region") == "Kowloon"
    assert input_value(page, "licence-number") == "CTM853271"
    assert input_value(page, "licence-classes") == "1, 2"
    assert input_value(page, "income") == ""  # left out by the resident
    shown = text_of(page)
    assert "From Immigration Department (as of 2 May 2024)" in shown
    assert "From Transport Department (as of 1 June 2021)" in shown
    assert "You chose not to share your assessable income." in shown
    assert 'aria-describedby="address-building-source"' in page

    sent = await submit(demo.http, page, **{"applicant-name": "CHAN Tai Man", "address-flat": "12B"})
    assert sent.status_code == 303, sent.text[:800]
    application = await demo.http.get(sent.headers["location"])
    assert application.status_code == 200
    reference = re.search(r'id="reference">(HD-[A-Z0-9-]+)<', application.text)
    assert reference is not None
    summary = text_of(application.text)
    assert "Harmony Court From Immigration Department (as of 2 May 2024)" in summary
    assert "12B From" not in summary  # changed by the resident: no longer the department's value

    # The consent lets the department refresh the application; once withdrawn, refreshing is refused
    # and the gateway's refusal is shown in plain words.
    async def refresh() -> str:
        token = CSRF_PATTERN.search((await demo.http.get(sent.headers["location"])).text)
        assert token is not None
        refreshed = await demo.http.post(
            f"{HOUSING}/application/{reference.group(1)}/refresh", data={"csrf_token": token.group(1)}
        )
        assert refreshed.status_code == 303
        return text_of((await demo.http.get(refreshed.headers["location"])).text)

    assert "could not refresh" not in await refresh()
    await withdraw(demo, consent_id)
    again = await refresh()
    assert "We could not refresh your application from records: your consent no longer allows it." in again
    assert "REVOKED" in again

    # Another browser cannot see the application.
    async with httpx.AsyncClient(transport=demo.http._transport, base_url=PUBLIC_URL) as stranger:
        assert (await stranger.get(sent.headers["location"])).status_code == 404


async def test_what_a_department_cannot_provide_is_said_plainly(demo: Demo) -> None:
    consent_id = await start_fetch(demo.http)
    page = await back_to_the_form(demo, await approve(demo, demo.wong, consent_id))
    assert input_value(page, "address-building") == "Wah Fu Estate"
    assert input_value(page, "income") == "0"
    assert input_value(page, "licence-number") == ""
    shown = text_of(page)
    assert "The Transport Department could not provide your driving licence: No record for this resident." in shown
    assert "From Inland Revenue Department (as of 30 July 2026)" in shown


async def test_a_declined_consent_leaves_the_form_empty_with_a_note(demo: Demo) -> None:
    consent_id = await start_fetch(demo.http, items=())
    await sign_in(demo.http, demo.chan)
    decided = await decide(demo.http, consent_id, "decline")
    page = await back_to_the_form(demo, decided.headers["location"])
    assert input_value(page, "address-building") == ""
    assert "You chose not to share your records, so nothing was filled in." in text_of(page)
    assert "From Immigration Department" not in page


async def test_consent_done_refuses_a_state_it_did_not_give(demo: Demo) -> None:
    consent_id = await start_fetch(demo.http)
    location = await approve(demo, demo.chan, consent_id)
    forged = re.sub(r"state=[^&]+", "state=" + secrets.token_urlsafe(24), location)
    refused = await demo.http.get(forged)
    assert refused.status_code == 400
    assert "We could not match this answer to your application" in text_of(refused.text)
    async with httpx.AsyncClient(transport=demo.http._transport, base_url=PUBLIC_URL) as other_browser:
        assert (await other_browser.get(location)).status_code == 400  # right state, wrong browser
    # The resident's own answer still works afterwards; nothing was fetched by the forged one.
    page = await back_to_the_form(demo, location)
    assert input_value(page, "address-building") == "Harmony Court"


async def test_forms_without_the_visits_token_are_refused(demo: Demo) -> None:
    await demo.http.get(f"{HOUSING}/apply")
    for path in ("/apply/fetch", "/apply/submit"):
        refused = await demo.http.post(f"{HOUSING}{path}", data={"csrf_token": "forged"})
        assert refused.status_code == 403
        assert title_of(refused.text).startswith("This form has expired")


async def test_a_hand_filled_application_is_checked_and_escaped(demo: Demo) -> None:
    page = (await demo.http.get(f"{HOUSING}/apply/form?by=hand")).text
    assert title_of(page) == "Your application for public rental housing – Housing Department (demo)"
    for name in ("applicant-name", "address-building", "address-district", "income", "licence-number"):
        assert f'<label class="govuk-label" for="{name}">' in page
    invalid = await submit(demo.http, page, **{"licence-number": "bad one", "income": "lots"})
    assert invalid.status_code == 400
    assert title_of(invalid.text).startswith("Error: ")
    assert 'href="#applicant-name"' in invalid.text
    assert 'href="#address-building"' in invalid.text
    assert 'href="#licence-number"' in invalid.text
    assert 'href="#income"' in invalid.text
    script = "<script>alert(1)</script>"
    sent = await submit(
        demo.http,
        page,
        **{"applicant-name": script, "address-building": "Harmony Court", "address-district": "Kwun Tong"},
        **{"address-region": "Kowloon"},
    )
    assert sent.status_code == 303, sent.text[:800]
    shown = await demo.http.get(sent.headers["location"])
    assert script not in shown.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert "From " not in text_of(shown.text).split("What you sent", 1)[1].split("Start another", 1)[0]
    assert 'id="refresh-from-records"' not in shown.text  # no consent, nothing to refresh


def gateway_event(app: FastAPI, consent_id: str, status: str, **overrides: Any) -> str:
    claims = {
        "iss": PUBLIC_URL,
        "aud": CONSUMER,
        "jti": str(uuid.uuid4()),
        "iat": int(time.time()),
        "event": "consent.status",
        "consent_id": consent_id,
        "status": status,
        **overrides,
    }
    token: str = app.state.oidc.signer.sign(claims, typ="exchange-event+jwt")
    return token


async def test_the_webhook_takes_only_the_gateways_events_and_shows_a_withdrawal(demo: Demo) -> None:
    consent_id = await start_fetch(demo.http, items=())
    page = await back_to_the_form(demo, await approve(demo, demo.chan, consent_id))
    sent = await submit(demo.http, page, **{"applicant-name": "CHAN Tai Man"})
    application = sent.headers["location"]
    assert "withdrawn" not in (await demo.http.get(application)).text

    webhook = f"{HOUSING}/exchange/webhook"
    headers = {"content-type": "application/jwt"}
    other_key = ECKey.generate_key("P-256", {"use": "sig"}, auto_kid=True)
    genuine = gateway_event(demo.app, consent_id, "REVOKED")
    payload = genuine.split(".")[1]
    forged = [
        jws.serialize_compact({"alg": "ES256", "typ": "exchange-event+jwt", "kid": other_key.kid}, payload, other_key),
        gateway_event(demo.app, consent_id, "REVOKED", aud="HK/GOV/XX/someone-else"),
        gateway_event(demo.app, consent_id, "REVOKED", iss="https://evil.example"),
        genuine.rsplit(".", 1)[0] + "." + "A" * 86,
        "not a token",
    ]
    for body in forged:
        refused = await demo.http.post(webhook, content=body.encode(), headers=headers)
        assert refused.status_code == 400, body
        assert refused.json()["error"]
    assert "withdrawn" not in (await demo.http.get(application)).text

    accepted = await demo.http.post(webhook, content=genuine.encode(), headers=headers)
    assert accepted.status_code == 204
    assert (await demo.http.post(webhook, content=genuine.encode(), headers=headers)).status_code == 204  # again
    older = gateway_event(demo.app, consent_id, "ACTIVE", iat=int(time.time()) - 60)  # out of order
    assert (await demo.http.post(webhook, content=older.encode(), headers=headers)).status_code == 204
    shown = text_of((await demo.http.get(application)).text)
    assert "Your consent was withdrawn on" in shown


# --- hostile input --------------------------------------------------------------------------------


def demo_routes(departments: Departments) -> list[tuple[str, str]]:
    found = []
    for route in departments.routes:
        assert isinstance(route, Route)
        path = route.path.replace("{reference}", "HD-AAAA-BBBB")
        found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


HOSTILE_BODIES: list[dict[str, Any]] = [
    {"content": b"\xff\xfe\x00garbage", "headers": {"content-type": "application/x-www-form-urlencoded"}},
    {"content": b"csrf_token=%ff%fe&items=%00", "headers": {"content-type": "application/x-www-form-urlencoded"}},
    {"files": {"applicant-name": ("a.txt", b"file instead of text")}},
    {"content": b"--x\r\nnot multipart", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    {"json": {"request": ["not", "a", "token"]}},
    {"content": b"a" * 5000, "headers": {"content-type": "application/jwt"}},
]


async def test_no_input_makes_a_demo_department_fail(demo: Demo) -> None:
    await demo.http.get(f"{HOUSING}/apply")  # a visit, so forms get past the cookie
    routes = demo_routes(demo.departments)
    assert len(routes) >= 13
    for method, path in routes:
        url = f"/demo{path}"
        if method == "GET":
            for query in ("", "?consent_id=%00&state=%ff%fe&status=<b>", "?by=records&by=hand&" + "x=1&" * 300):
                for accept in ("text/html", "application/json"):
                    answer = await demo.http.get(url + query, headers={"accept": accept})
                    assert answer.status_code < 500, (url, query, answer.status_code)
            continue
        for body in HOSTILE_BODIES:
            answer = await demo.http.request(method, url, **body)
            assert answer.status_code < 500, (method, url, body, answer.status_code)
            assert answer.status_code >= 400, (method, url, body)
    wrong_method = await demo.http.get("/demo/immigration/exchange/data-requests")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"
    assert "POST" in wrong_method.headers["allow"]
    missing = await demo.http.get("/demo/housing/no-such-page")
    assert missing.status_code == 404
    assert title_of(missing.text) == "Page not found – Housing Department (demo)"


async def test_demo_clients_removed_meanwhile_are_registered_again(app: FastAPI, settings: Settings) -> None:
    """Registration looks at the database, not at the registry's 5-second cache of clients it read."""
    data_dir = Path(settings.data_dir)
    async with app.state.sessionmaker() as db:
        await register_demo_clients(db, app.state.oidc, data_dir)
        assert await app.state.oidc.clients.get(db, "td-backend") is not None  # now in the cache
    await empty_all_tables(app)
    async with app.state.sessionmaker() as db:
        await register_demo_clients(db, app.state.oidc, data_dir)
        assert await app.state.oidc.clients.get(db, "td-backend", fresh=True) is not None
