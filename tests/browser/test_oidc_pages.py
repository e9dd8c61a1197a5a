"""The OpenID provider's pages a resident sees, in every language, in a real browser: a service's sign-in
request, sign-in, consent, the way back to the service, a remembered choice, the list of services and
withdrawing consent, declining, the page for a service that needs a verified identity, a bad request, an
expired interaction, and signing out at a service's request. The Tab helper checks every page with axe-core.

The services are registered in the live server's database with redirect URIs on a tiny loopback web server
that notes what it receives. The provider sends the browser back to a service with a redirect, and Playwright
does not route redirected requests (page.route sees only the first request of a chain), so a real answer is
simpler and truer than intercepting. It also shows what only a browser shows: that a form whose answer
redirects to a service (consent, sign-in, sign-out) is not blocked by the pages' Content-Security-Policy.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi import FastAPI
from playwright.sync_api import ConsoleMessage, Locator, Page
from playwright.sync_api import Error as PlaywrightError

from bauhinia.core.i18n import Translator
from bauhinia.oidc.claims import ITEMS
from tests.browser.support import LANGUAGES, Seeder, Tab, Tabs, next_code
from tests.helpers import TestResident
from tests.oidc_support import pkce, register_client

pytestmark = pytest.mark.browser

CJK = re.compile(r"[\u4e00-\u9fff]")
LOCALES = {"en": "en-GB", "zh-Hant": "zh-HK", "zh-Hans": "zh-CN"}
SERVICE_NAME = {"en": "Library card renewal", "zh-Hant": "續領圖書證", "zh-Hans": "续领图书证"}
PURPOSE = {"en": "To renew your library card.", "zh-Hant": "為你續領圖書證。", "zh-Hans": "为您续领图书证。"}
VERIFIED_NAME = {"en": "Housing application", "zh-Hant": "申請公屋", "zh-Hans": "申请公屋"}
DEPARTMENT = "Leisure and Cultural Services Department"
# "openid profile email" asks for birthdate, email, gender and name; the services may have three of them.
SCOPE = "openid profile email"
SERVICE_ITEMS = ["birthdate", "email", "name"]
DECLINED = "birthdate"
SIGN_IN_ON_THE_WAY = re.compile(r"/signin\?next=%2Foidc%2Finteraction%2F[A-Za-z0-9_-]+")
INTERACTION = re.compile(r"/oidc/interaction/[A-Za-z0-9_-]+")
SERVICE_PAGE = (
    "<!doctype html><html lang='en'><head><title>The service</title><link rel='icon' href='data:,'></head>"
    "<body><p>Back at the service.</p></body></html>"
)
_serial = itertools.count(1)


# --- the services -----------------------------------------------------------------------------------


class ServiceSite:
    """The services' web server on a loopback port: it notes the path of each request and answers a tiny page."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                body = SERVICE_PAGE.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="service-site", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def site() -> Iterator[ServiceSite]:
    opened = ServiceSite()
    yield opened
    opened.close()


@dataclass
class Service:
    """A client registered in the live server's database, with its URIs on the services' site."""

    client_id: str
    site: ServiceSite

    @property
    def redirect_uri(self) -> str:
        return f"{self.site.origin}/{self.client_id}/callback"

    @property
    def signed_out_uri(self) -> str:
        return f"{self.site.origin}/{self.client_id}/signed-out"

    @property
    def requests(self) -> list[str]:
        """The paths (and queries) of the requests the browser sent to the service."""
        return [path for path in self.site.paths if path.startswith(f"/{self.client_id}/")]

    def authorize_path(self, state: str, **extra: str) -> str:
        _, challenge = pkce()
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": self.redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"/oidc/authorize?{urlencode(query)}"


def register_service(seeder: Seeder, site: ServiceSite, names: dict[str, str], **overrides: Any) -> Service:
    """A service on http://127.0.0.1:<port>, not the server's http://localhost:<port>: the Tab helper never
    mistakes the service's pages for the provider's."""
    service = Service(f"browser-svc-{next(_serial)}-{secrets.token_hex(3)}", site)

    async def work(app: FastAPI) -> None:
        metadata: dict[str, Any] = {
            "client_name": names,
            "purpose": PURPOSE,
            "department": DEPARTMENT,
            "grant_types": ["authorization_code"],
            "scopes": ["openid", "profile", "email"],
            "items": SERVICE_ITEMS,
            "redirect_uris": [service.redirect_uri],
            "post_logout_redirect_uris": [service.signed_out_uri],
            "allow_loopback_http": True,
        }
        await register_client(app, service.client_id, **{**metadata, **overrides})

    seeder.run(work)
    return service


def remember_choice(seeder: Seeder, resident: TestResident, service: Service, approved: list[str]) -> None:
    async def work(app: FastAPI) -> None:
        async with app.state.sessionmaker() as db:
            declined = [name for name in SERVICE_ITEMS if name not in approved]
            await app.state.oidc.remember(db, resident.id, service.client_id, approved, declined)
            await db.commit()

    seeder.run(work)


def back_at(tab: Tab, service: Service, uri: str, action: Callable[[], object]) -> dict[str, str]:
    """Do something that ends at one of the service's URIs; returns the query the service received.

    A navigation the browser refuses (a Content-Security-Policy that blocks a form's redirect) fails with
    what the browser said about it.
    """
    said: list[str] = []

    def note(message: ConsoleMessage) -> None:
        said.append(f"{message.type}: {message.text.strip()}")

    tab.page.on("console", note)
    try:
        with tab.page.expect_navigation(url=lambda url: url.startswith(uri), wait_until="load"):
            action()
    except PlaywrightError as error:
        tab.page.wait_for_timeout(250)  # the console message can come just after the failed navigation
        raise AssertionError(f"the browser did not reach {uri}: {error.message}; console: {said}") from error
    finally:
        tab.page.remove_listener("console", note)
    return received(tab, service, uri)


def received(tab: Tab, service: Service, uri: str) -> dict[str, str]:
    """The browser is at the service's `uri`: the query the service received."""
    parts = urlsplit(tab.page.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == uri, tab.page.url
    assert service.requests[-1] == f"{parts.path}?{parts.query}"  # the service itself got the request
    return {name: values[0] for name, values in parse_qs(parts.query).items()}


def sign_in_on_the_way(tab: Tab, resident: TestResident) -> Locator:
    """On the sign-in page a service's request led to: the password, then the authenticator app's code filled
    in. Returns the code form's button, which goes on to where the service's request leads."""
    assert resident.totp_secret is not None
    tab.expect_path(SIGN_IN_ON_THE_WAY)
    tab.submit("/signin", "/signin/code", email=resident.email, password=resident.password)
    code_form = tab.page.locator("main form[action='/signin/code']")
    code_form.locator("[name='code']").fill(next_code(resident.totp_secret))
    return code_form.locator("button[type='submit']")


# --- the test ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_oidc_pages(tabs: Tabs, seeder: Seeder, site: ServiceSite, language: str) -> None:
    t = Translator(language).gettext
    tab, _ = tabs.open(locale=LOCALES[language], language=language)
    resident = seeder.resident(with_totp=True)
    service = register_service(seeder, site, SERVICE_NAME)
    verified_only = register_service(seeder, site, VERIFIED_NAME, required_acr="verified")

    # A signed-out resident arrives from the service: sign in, then the consent page.
    tab.goto(service.authorize_path("first"))
    tab.click(sign_in_on_the_way(tab, resident), INTERACTION)
    assert_consent_page(tab, language)
    consent = consent_with_keyboard if language == "en" else consent_with_pointer
    answer = back_at(tab, service, service.redirect_uri, lambda: consent(tab))
    assert answer["code"]
    assert (answer["state"], answer["iss"]) == ("first", tab.base_url)

    # The remembered choice: the next request goes straight back to the service.
    tab.page.goto(tab.base_url + service.authorize_path("second"), wait_until="load")
    second = received(tab, service, service.redirect_uri)
    assert second["code"]
    assert second["code"] != answer["code"]
    assert (second["state"], second["iss"]) == ("second", tab.base_url)
    assert len(service.requests) == 2

    # A service that needs a verified identity, and a resident whose identity nobody has checked.
    tab.goto(verified_only.authorize_path("unmet"), status=403)
    tab.expect_path(INTERACTION)
    assert tab.page.locator("h1").inner_text() == t("This service needs a verified identity")
    assert VERIFIED_NAME[language] in tab.main_text()
    go_back = tab.page.locator(f"main a[href^='{verified_only.redirect_uri}?']")
    assert go_back.inner_text().strip() == t("Go back to the service")
    unmet = back_at(tab, verified_only, verified_only.redirect_uri, go_back.click)
    assert unmet["error"] == "unmet_authentication_requirements"
    assert (unmet["state"], unmet["iss"]) == ("unmet", tab.base_url)

    # A request with a redirect URI the service never registered: explained here, never followed.
    before = len(service.requests)
    tab.goto(service.authorize_path("bad", redirect_uri=f"{site.origin}/{service.client_id}/elsewhere"), status=400)
    assert tab.page.locator("h1").inner_text() == t("The service's sign-in request cannot be used")
    assert "invalid_request" in (tab.page.locator("main .govuk-details code").text_content() or "")
    assert len(service.requests) == before
    tab.goto("/oidc/interaction/unknown", status=400)
    assert tab.page.locator("h1").inner_text() == t("This sign-in link has expired")

    connected_services(tab, service, language)

    # Withdrawn: the service asks again, and the resident declines this time.
    tab.goto(service.authorize_path("again"))
    tab.expect_path(INTERACTION)
    declined = back_at(tab, service, service.redirect_uri, tab.page.locator("main button[value='deny']").click)
    assert (declined["error"], declined["state"], declined["iss"]) == ("access_denied", "again", tab.base_url)

    # A sign-out request without an id_token_hint: the resident confirms it.
    tab.goto("/oidc/logout")
    assert tab.page.locator("h1").inner_text() == t("Do you want to sign out?")
    tab.click("main form[action='/oidc/logout/confirm'] button[type='submit']", "/oidc/logout/confirm")
    assert tab.page.locator("h1").inner_text() == t("You have signed out")
    tab.goto("/account", status=None)
    tab.expect_path("/signin")

    # Someone whose choice is remembered signs in on the way to the service and goes straight back to it.
    returning = seeder.resident(with_totp=True)
    remember_choice(seeder, returning, service, ["email"])
    tab.goto(service.authorize_path("returning"))
    back = back_at(tab, service, service.redirect_uri, sign_in_on_the_way(tab, returning).click)
    assert (back["state"], back["iss"]) == ("returning", tab.base_url)
    assert back["code"]

    # The service asks to sign them out and names where to go after: it is named, then gone back to.
    query = urlencode(
        {"client_id": service.client_id, "post_logout_redirect_uri": service.signed_out_uri, "state": "bye"}
    )
    tab.goto(f"/oidc/logout?{query}")
    assert t("%(service)s asked to sign you out.", service=SERVICE_NAME[language]) in tab.main_text()
    confirm = tab.page.locator("main form[action='/oidc/logout/confirm'] button[type='submit']")
    assert back_at(tab, service, service.signed_out_uri, confirm.click) == {"state": "bye"}
    tab.goto("/account", status=None)
    tab.expect_path("/signin")


# --- the consent page -------------------------------------------------------------------------------


def assert_consent_page(tab: Tab, language: str) -> None:
    """The service, its department and its purpose, and the items, each in the page's language; all ticked."""
    t = Translator(language).gettext
    heading = t("Share your details with %(service)s", service=SERVICE_NAME[language])
    assert tab.page.locator("h1").inner_text() == heading
    assert heading in tab.page.title()
    main = tab.main_text()
    assert t("This service is run by %(department)s.", department=DEPARTMENT) in main
    assert PURPOSE[language] in main
    if language != "en":
        assert SERVICE_NAME["en"] not in main
        assert CJK.search(tab.page.locator("main legend").inner_text())
    labels = tab.page.locator("main label[for^='item-']").all_inner_texts()
    assert [label.strip() for label in labels] == [t(ITEMS[name].label) for name in SERVICE_ITEMS]
    for name in SERVICE_ITEMS:
        assert tab.page.locator(f"#item-{name}").is_checked()
    assert not tab.page.locator("#remember").is_checked()


def consent_with_pointer(tab: Tab) -> None:
    tab.page.locator(f"#item-{DECLINED}").uncheck()
    tab.page.locator("#remember").check()
    tab.page.locator("main button[name='decision'][value='approve']").click()


_FOCUSED = """() => {
  const element = document.activeElement;
  if (!element || element === document.body) return "";
  return element.id || `${element.getAttribute("name")}=${element.getAttribute("value")}`;
}"""


def press(page: Page, key: str = "Tab") -> str:
    """Press a key; returns what has the focus then (an id, or a button's name=value)."""
    page.keyboard.press(key)
    focused: str = page.evaluate(_FOCUSED)
    return focused


def consent_with_keyboard(tab: Tab) -> None:
    """Each checkbox and both buttons in turn with Tab; Space unticks and ticks; Enter on the approve button."""
    page = tab.page
    first = f"item-{SERVICE_ITEMS[0]}"
    for _ in range(40):  # the skip link, the header and the language switcher come first
        if press(page) == first:
            break
    else:
        raise AssertionError(f"Tab never reached #{first}")
    order = [first] + [press(page) for _ in range(len(SERVICE_ITEMS) + 2)]
    assert order == [f"item-{name}" for name in SERVICE_ITEMS] + ["remember", "decision=approve", "decision=deny"]

    # Back to the item to leave out, then on to "remember" and the approve button, by keyboard only.
    for _ in range(len(SERVICE_ITEMS) + 2):
        if press(page, "Shift+Tab") == f"item-{DECLINED}":
            break
    else:
        raise AssertionError(f"Shift+Tab never reached #item-{DECLINED}")
    page.keyboard.press("Space")
    for _ in SERVICE_ITEMS:
        if press(page) == "remember":
            break
    page.keyboard.press("Space")
    assert press(page) == "decision=approve"
    assert not page.locator(f"#item-{DECLINED}").is_checked()
    assert page.locator("#remember").is_checked()
    page.keyboard.press("Enter")


# --- the account's list of services -----------------------------------------------------------------


def connected_services(tab: Tab, service: Service, language: str) -> None:
    """The remembered choice on the account's list of services: what is shared and what is not; withdrawn."""
    t = Translator(language).gettext
    tab.goto("/account")
    tab.click("main a[href='/account/services']", "/account/services")
    withdraw = f"form[action='/account/services/{service.client_id}/withdraw']"
    card = tab.page.locator("main .govuk-summary-card").filter(has=tab.page.locator(withdraw))
    assert card.count() == 1
    title = card.locator("h2").inner_text()
    assert SERVICE_NAME[language] in title
    assert DEPARTMENT in title
    rows = card.locator(".govuk-summary-list__row")
    assert rows.nth(0).locator("dt").inner_text() == t("Shared")
    assert rows.nth(1).locator("dt").inner_text() == t("Not shared")
    shared = sorted(rows.nth(0).locator("dd li").all_inner_texts())
    assert shared == sorted(t(ITEMS[name].label) for name in SERVICE_ITEMS if name != DECLINED)
    assert rows.nth(1).locator("dd li").all_inner_texts() == [t(ITEMS[DECLINED].label)]

    tab.click(card.locator(f"{withdraw} button[type='submit']"), "/account/services?notice=withdrawn")
    banner = tab.page.locator(".govuk-notification-banner--success")
    assert banner.is_visible()
    withdrawn = "Your consent has been withdrawn. The service can no longer get your details without asking you again."
    assert t(withdrawn) in banner.inner_text()
    assert tab.page.locator(withdraw).count() == 0
    assert SERVICE_NAME[language] not in tab.main_text()
