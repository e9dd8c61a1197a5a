"""Operations endpoints, security headers, request ids and cookie attributes."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import httpx
import pytest
from fastapi import FastAPI
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from bauhinia.app import create_app
from bauhinia.settings import Settings
from tests.helpers import make_resident, sign_in
from tests.integration.support import RESIDENT_COOKIE, STAFF_COOKIE, make_staff, open_client, staff_sign_in

JSON = {"accept": "application/json"}


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers=JSON)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz", headers=JSON)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "keys": "ok"}


async def test_readyz_reports_an_unreachable_database_as_a_problem(settings: Settings) -> None:
    # Nothing listens on port 1. (A SQLite file in a missing directory would do too, but aiosqlite
    # leaves its worker thread behind after a failed connect.)
    broken = settings.model_copy(update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/nothing"})
    application = create_app(broken)
    try:
        async with open_client(application) as browser:
            response = await browser.get("/readyz", headers=JSON)
    finally:
        await application.state.engine.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 503


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/language/zh-Hant")
    await client.get("/no/such/page/12345")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "bauhinia_http_requests_total" in text
    assert 'route="/healthz"' in text
    assert 'route="/language/{language}"' in text
    assert "12345" not in text  # raw paths never become labels
    assert "bauhinia_http_request_duration_seconds_bucket" in text


async def test_mounted_apps_are_labelled_by_their_full_route(client: httpx.AsyncClient) -> None:
    """The demo departments (a mounted app) and static files: labelled where they are, not as the root's."""
    await client.get("/demo/housing/apply")
    await client.get("/static/vendor/bauhinia.css")
    text = (await client.get("/metrics")).text
    assert 'route="/demo/housing/apply"' in text
    assert 'route="/static"' in text
    assert 'route="/housing/apply"' not in text


async def test_openapi_document_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    OPENAPI_31_VALIDATOR.validate(document)
    assert {"/healthz", "/readyz"} <= set(document["paths"])
    assert not any(path.startswith(("/account", "/staff", "/signin")) for path in document["paths"])


# --- headers ------------------------------------------------------------------------------------------


async def test_pages_carry_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/signin")
    headers = response.headers
    csp = headers["content-security-policy"]
    nonce = re.search(r"'nonce-([A-Za-z0-9_-]+)'", csp)
    assert nonce
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "object-src 'none'" in csp
    scripts = re.findall(r"<script[^>]*>", response.text)
    assert scripts
    assert all(f'nonce="{nonce.group(1)}"' in tag for tag in scripts)
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["strict-transport-security"].startswith("max-age=")
    assert headers["cross-origin-opener-policy"] == "same-origin"


async def test_only_staff_pages_restrict_form_targets(client: httpx.AsyncClient) -> None:
    # A resident's sign-in or consent form ends in a redirect to a department's service on another origin,
    # which Chromium checks against form-action; the counter's forms never leave the site.
    assert "form-action" not in (await client.get("/signin")).headers["content-security-policy"]
    assert "form-action 'self'" in (await client.get("/staff/signin")).headers["content-security-policy"]


async def test_every_response_gets_a_fresh_nonce(client: httpx.AsyncClient) -> None:
    first = (await client.get("/")).headers["content-security-policy"]
    second = (await client.get("/")).headers["content-security-policy"]
    assert first != second


@pytest.mark.parametrize("path", ["/healthz", "/no/such/page", "/static/bauhinia.svg", "/openapi.json"])
async def test_security_headers_on_every_kind_of_response(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert "content-security-policy" in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_error_responses_carry_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.post("/register", content=b"x" * 70_000)
    assert response.status_code == 413
    assert "content-security-policy" in response.headers
    assert "x-request-id" in response.headers


async def test_a_valid_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "trace-abc123.DEF_9"})
    assert response.headers["x-request-id"] == "trace-abc123.DEF_9"


@pytest.mark.parametrize("offered", ["", "short", "has spaces in it", "x" * 65, "<script>alert(1)</script>", "é" * 10])
async def test_an_unusable_request_id_is_replaced(client: httpx.AsyncClient, offered: str) -> None:
    response = await client.get("/healthz", headers=[(b"x-request-id", offered.encode())])
    generated = response.headers["x-request-id"]
    assert generated != offered
    assert re.fullmatch(r"[0-9a-f]{24}", generated)


async def test_request_ids_are_unique(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/healthz")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


# --- cookies ----------------------------------------------------------------------------------------


def cookies_of(response: httpx.Response) -> dict[str, SimpleCookie]:
    parsed = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name in jar:
            parsed[name] = jar
    return parsed


def assert_locked_down(header: str, same_site: str) -> None:
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")[1:]}
    assert "httponly" in attributes, header
    assert "secure" in attributes, header
    assert attributes.get("samesite", "").lower() == f"samesite={same_site}", header
    assert attributes.get("path") == "Path=/", header
    assert "domain" not in attributes, header


async def test_the_resident_session_cookie_is_locked_down(app: FastAPI, client: httpx.AsyncClient) -> None:
    anonymous = await client.get("/signin")
    [header] = anonymous.headers.get_list("set-cookie")
    assert header.startswith(f"{RESIDENT_COOKIE}=")
    assert_locked_down(header, "lax")

    who = await make_resident(app)
    final = await sign_in(client, who)
    [header] = final.headers.get_list("set-cookie")
    assert_locked_down(header, "lax")


async def test_the_staff_session_cookie_is_strict(app: FastAPI, client: httpx.AsyncClient) -> None:
    staff = await make_staff(app)
    response = await staff_sign_in(client, staff)
    [header] = response.headers.get_list("set-cookie")
    assert header.startswith(f"{STAFF_COOKIE}=")
    assert_locked_down(header, "strict")


async def test_the_language_cookie_is_locked_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/language/zh-Hant", params={"next": "/signin"})
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("bauhinia_lang=")]
    assert_locked_down(header, "lax")
    page = await client.get("/signin")
    assert '<html lang="zh-Hant"' in page.text


async def test_the_language_switch_never_redirects_off_site(client: httpx.AsyncClient) -> None:
    response = await client.get("/language/en", params={"next": "//evil.example/"})
    assert response.headers["location"] == "/"
    unknown = await client.get("/language/klingon")
    assert unknown.status_code == 303
    assert not unknown.headers.get_list("set-cookie")


async def test_pages_follow_accept_language(client: httpx.AsyncClient) -> None:
    page = await client.get("/signin", headers={"accept-language": "zh-CN,zh;q=0.9"})
    assert '<html lang="zh-Hans"' in page.text


async def test_no_page_sets_a_cookie_without_the_safety_attributes(app: FastAPI) -> None:
    who = await make_resident(app)
    async with open_client(app) as browser:
        responses = [await browser.get(path) for path in ("/", "/register", "/signin", "/recover", "/staff/signin")]
        responses.append(await sign_in(browser, who))
        responses.append(await browser.get("/language/zh-Hant"))
    for response in responses:
        for header in response.headers.get_list("set-cookie"):
            assert "HttpOnly" in header, header
            assert "Secure" in header, header
            assert "SameSite" in header, header
