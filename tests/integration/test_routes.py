"""Fail closed: every route needs the sign-in it should, every page has a title, unknown paths are 404s."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

import tests.helpers as h
from bauhinia.core import i18n
from tests.helpers import make_resident, sign_in
from tests.integration.support import make_staff, open_client, post_form, staff_sign_in, title_of

# Reachable without signing in, on purpose. A new route is private until it is added here.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/language/{language}"),
    ("GET", "/static"),
    ("GET", "/demo"),  # the demo departments: public sites of their own (demo and dev mode only)
    ("GET", "/register"),
    ("POST", "/register"),
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("GET", "/signin/code"),
    ("POST", "/signin/code"),
    ("POST", "/signin/passkey/options"),
    ("POST", "/signin/passkey"),
    ("POST", "/signout"),
    ("GET", "/recover"),
    ("POST", "/recover"),
    ("GET", "/staff/signin"),
    ("POST", "/staff/signin"),
    ("POST", "/staff/signout"),
    # The OpenID provider: public by protocol, or protected by client authentication / tokens of their own.
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/jwks.json"),
    ("GET", "/oidc/authorize"),
    ("POST", "/oidc/authorize"),
    ("POST", "/oidc/par"),
    ("POST", "/oidc/token"),
    ("GET", "/oidc/userinfo"),
    ("POST", "/oidc/userinfo"),
    ("POST", "/oidc/introspect"),
    ("POST", "/oidc/revoke"),
    ("GET", "/oidc/logout"),
    ("POST", "/oidc/logout"),
    ("POST", "/oidc/logout/confirm"),
    ("GET", "/oidc/interaction/{interaction_id}"),
    # e-Proof: what anyone verifying a credential needs, without signing in.
    ("GET", "/.well-known/bauhinia-eproof"),
    ("GET", "/api/eproof/credential-types"),
    ("GET", "/eproof/log/checkpoint"),
    ("GET", "/eproof/log/tile/{path:path}"),
    ("GET", "/eproof/log/consistency"),
    ("POST", "/eproof/log/cosignatures"),  # anyone may submit; only an accepted witness's verifying one is kept
    ("GET", "/eproof/credentials/{credential_id}/proof"),
    ("GET", "/eproof/status/{list_id}"),
    ("GET", "/eproof/issuers/{member_id:path}"),
    ("GET", "/eproof/types/{type_id}"),
    ("GET", "/verify"),
    ("POST", "/verify"),
}
# Routes guarded by an access token rather than a browser session: anonymous callers get a 401 with
# a Bearer challenge.
TOKEN_PROTECTED_PREFIXES = ("/api/operator/", "/api/exchange/", "/api/eproof/")
# HTML pages anyone may open; each must render, with a title, in every language.
PUBLIC_PAGES = ["/", "/register", "/signin", "/recover", "/staff/signin", "/verify"]
PATH_PARAMETERS = {
    "language": "zh-Hant",
    "authenticator_id": "00000000-0000-4000-8000-000000000000",
    "resident_id": "00000000-0000-4000-8000-000000000000",
    "client_id": "some-client",
    "interaction_id": "no-such-interaction",
    "member_id": "HK/GOV/NONE",
    "system_id": "HK/GOV/NONE/nothing",
    "item_id": "none.nothing",
    "code": "none.nothing",
    "consent_id": "00000000-0000-4000-8000-000000000000",
    "credential_id": "00000000-0000-4000-8000-000000000000",
    "list_id": "TD-1",
    "path": "0/000",
    "type_id": "td.driving-licence",
}


def routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """Every (method, path template) the app answers, including routers included into it."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.route, Mount):
            yield "GET", context.route.path
            continue
        path = context.path
        assert path is not None
        for method in sorted(context.methods or ()):
            yield method, path


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_PARAMETERS[m.group(1)], path)


def is_sign_in_redirect(response: httpx.Response, path: str) -> bool:
    if response.status_code != 303:
        return False
    sign_in = "/staff/signin" if path.startswith("/staff") else "/signin"
    return response.headers["location"].startswith(f"{sign_in}?next=")


async def anonymous_request(app: FastAPI, method: str, path: str, **headers: str) -> httpx.Response:
    """A fresh browser with an anonymous session and its CSRF token, so only the sign-in guard can refuse."""
    async with open_client(app) as browser:
        token_page = "/staff/signin" if path.startswith("/staff") else "/signin"
        token = h.CSRF_PATTERN.search((await browser.get(token_page)).text)
        assert token
        return await browser.request(
            method,
            concrete(path),
            headers={"x-csrf-token": token.group(1), **headers},
            data={} if method == "POST" else None,
        )


def test_the_allowlist_names_only_real_routes(app: FastAPI) -> None:
    assert set(routes(app)) >= PUBLIC, PUBLIC - set(routes(app))


async def reachable_private_routes(app: FastAPI) -> list[str]:
    reachable = []
    for method, path in sorted(set(routes(app)) - PUBLIC):
        response = await anonymous_request(app, method, path)
        if not (is_sign_in_redirect(response, path) or response.status_code in (401, 403, 405)):
            reachable.append(f"{method} {path} -> {response.status_code} {response.headers.get('location', '')}")
    return reachable


async def test_every_private_route_refuses_anonymous_visitors(app: FastAPI) -> None:
    assert len(set(routes(app)) - PUBLIC) >= 15  # the walk really walks
    assert await reachable_private_routes(app) == []


async def test_the_walk_notices_a_route_that_forgot_its_guard(app: FastAPI) -> None:
    router = APIRouter()

    @router.get("/account/forgotten-guard")
    async def forgotten() -> dict[str, str]:
        return {"secret": "exposed"}

    app.include_router(router)
    assert await reachable_private_routes(app) == ["GET /account/forgotten-guard -> 200 "]


async def test_private_routes_answer_api_clients_with_401_problems(app: FastAPI) -> None:
    for method, path in sorted(set(routes(app)) - PUBLIC):
        if method != "GET":
            continue
        response = await anonymous_request(app, method, path, accept="application/json")
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"
        expected = "Bearer" if path.startswith(TOKEN_PROTECTED_PREFIXES) else "Session"
        assert response.headers["www-authenticate"].split(" ")[0] == expected, path
        assert response.json()["status"] == 401


async def test_staff_routes_refuse_signed_in_residents(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    token = h.CSRF_PATTERN.search((await client.get("/staff/signin")).text)
    assert token
    for method, path in sorted(set(routes(app)) - PUBLIC):
        if not path.startswith("/staff"):
            continue
        response = await client.request(method, concrete(path), headers={"x-csrf-token": token.group(1)})
        assert is_sign_in_redirect(response, path), (method, path, response.status_code)


async def test_resident_routes_refuse_signed_in_staff(app: FastAPI, client: httpx.AsyncClient) -> None:
    staff = await make_staff(app)
    assert (await staff_sign_in(client, staff)).status_code == 303
    token = h.CSRF_PATTERN.search((await client.get("/signin")).text)
    assert token
    for method, path in sorted(set(routes(app)) - PUBLIC):
        if path.startswith(("/staff", *TOKEN_PROTECTED_PREFIXES)):
            continue
        response = await client.request(method, concrete(path), headers={"x-csrf-token": token.group(1)})
        assert is_sign_in_redirect(response, path), (method, path, response.status_code)


async def test_public_routes_never_fail_for_anonymous_visitors(app: FastAPI) -> None:
    for method, path in sorted(PUBLIC):
        response = await anonymous_request(app, method, path)
        assert response.status_code < 500, (method, path)


# --- titles ------------------------------------------------------------------------------------------


def assert_titled(response: httpx.Response, path: str) -> None:
    assert response.status_code == 200, path
    assert response.headers["content-type"].startswith("text/html"), path
    title = title_of(response.text)
    page_part = title.rsplit(" – ", 1)[0].strip()
    assert page_part, f"{path} has no page title: {title!r}"
    assert not title.startswith("–"), f"{path} has no page title: {title!r}"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
async def test_every_public_page_has_a_title_in_every_language(app: FastAPI, language: str) -> None:
    async with open_client(app) as browser:
        browser.cookies.set(i18n.LANGUAGE_COOKIE, language, domain="bauhinia.test")
        for path in PUBLIC_PAGES:
            response = await browser.get(path)
            assert_titled(response, path)
            assert f'<html lang="{language}"' in response.text


async def test_every_anonymous_html_page_in_the_walk_has_a_title(app: FastAPI) -> None:
    rendered = 0
    for method, path in sorted(set(routes(app))):
        if method != "GET":
            continue
        response = await anonymous_request(app, method, path)
        if response.status_code == 200 and response.headers["content-type"].startswith("text/html"):
            assert_titled(response, path)
            rendered += 1
    assert rendered >= len(PUBLIC_PAGES)


async def test_signed_in_pages_have_titles(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app, with_totp=False)
    await sign_in(client, who)
    for path in ("/account/setup", "/account/totp", "/account/password"):
        assert_titled(await client.get(path), path)
    secret_page = await client.get("/account/totp")
    secret = "".join(re.findall(r'id="totp-secret"><code>([^<]+)</code>', secret_page.text)[0].split())
    token = h.CSRF_PATTERN.search(secret_page.text)
    assert token
    from bauhinia.identity import totp

    await client.post("/account/totp", data={"code": totp.current_code(secret), "csrf_token": token.group(1)})
    for path in ("/account/recovery-codes", "/account", "/", "/account/consents", "/account/data-use"):
        assert_titled(await client.get(path), path)

    async with open_client(app) as staff_browser:
        staff = await make_staff(app)
        await staff_sign_in(staff_browser, staff)
        for path in ("/staff", f"/staff/residents/{who.id}", "/staff?q=nobody%40example.hk"):
            assert_titled(await staff_browser.get(path), path)


async def test_error_pages_have_titles(app: FastAPI, client: httpx.AsyncClient) -> None:
    not_found = await client.get("/no/such/page")
    assert not_found.status_code == 404
    assert title_of(not_found.text).startswith("Page not found")
    await client.get("/register")
    csrf = await client.post("/register", data={})
    assert csrf.status_code == 403
    assert title_of(csrf.text).startswith("This form has expired")
    failed = await post_form(client, "/signin", {"email": "", "password": ""})
    assert title_of(failed.text).startswith("Error: ")


# --- unknown paths and methods ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/no-such-page", "/account/nothing-here", "/staff/residents", "/%00", "/..%2f..%2fetc"]
)
async def test_unknown_paths_get_an_html_404_in_a_browser(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert title_of(response.text).startswith("Page not found")


@pytest.mark.parametrize("path", ["/no-such-page", "/api/v1/nothing", "/static/nothing.js"])
async def test_unknown_paths_get_a_problem_for_api_clients(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"accept": "application/json"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 404
    assert problem["title"] == "Not Found"
    assert problem["type"] == "about:blank"


async def test_paths_under_api_always_get_problems(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing", headers={"accept": "text/html"})
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.put("/signin", headers={"accept": "application/json"})
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert "allow" in response.headers
    page = await client.delete("/account")
    assert page.status_code == 405
