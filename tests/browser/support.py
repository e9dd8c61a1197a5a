"""What the browser tests share: a tab that checks every page it lands on with axe-core; the browser
contexts of a test (the live server and the seeder come from tests.servers); the journeys (register, set up an
authenticator app, sign in and out) written once against GOV.UK Frontend markup; Chromium's virtual
authenticator.

Selectors never use visible wording, so one journey runs in English, Traditional and Simplified Chinese.
"""

from __future__ import annotations

import itertools
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from playwright.sync_api import (
    Browser,
    BrowserContext,
    CDPSession,
    ConsoleMessage,
    Frame,
    Locator,
    Page,
    Route,
    ViewportSize,
)

from bauhinia.identity import totp
from tests.helpers import STRONG_PASSWORD, id_number
from tests.servers import LiveServer as LiveServer
from tests.servers import Seeder as Seeder

ROOT = Path(__file__).resolve().parents[2]
AXE_SOURCE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
LANGUAGES = ("en", "zh-Hant", "zh-Hans")
NAVIGATION_TIMEOUT_MS = 15_000
_NOSCRIPT_TAG = re.compile(r"</?noscript\b[^>]*>", re.IGNORECASE)

_AXE_RUN = """async (tags) => {
  const results = await axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
  return results.violations.map((v) => ({
    id: v.id,
    impact: v.impact || "",
    help: v.help,
    helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({ target: n.target.map(String).join(" "), summary: n.failureSummary || "" })),
  }));
}"""


class AxeNode(TypedDict):
    target: str
    summary: str


class AxeViolation(TypedDict):
    id: str
    impact: str
    help: str
    helpUrl: str
    nodes: list[AxeNode]


@cache
def axe_source() -> str:
    if not AXE_SOURCE.exists():
        raise RuntimeError(f"{AXE_SOURCE} is missing: run `make setup` (it installs the front-end packages)")
    return AXE_SOURCE.read_text(encoding="utf-8")


def run_axe(page: Page) -> list[AxeViolation]:
    """Inject axe-core (evaluate is not subject to the page's CSP) and run the WCAG 2.1 A and AA rules."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    violations: list[AxeViolation] = page.evaluate(_AXE_RUN, WCAG_21_AA)
    return violations


def describe_violations(url: str, language: str, violations: list[AxeViolation]) -> str:
    lines = [f"axe-core found {len(violations)} WCAG 2.1 A/AA violation(s) on {url} (lang={language}):"]
    for violation in violations:
        lines.append(f"  - {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"    {violation['helpUrl']}")
        for node in violation["nodes"][:10]:
            summary = " ".join(node["summary"].split())
            lines.append(f"      at {node['target']}: {summary}")
    return "\n".join(lines)


class Auditor:
    """Runs axe on pages of a context without JavaScript.

    axe-core needs timers, and a page loaded with scripts disabled never runs them. So the
    no-JavaScript page's DOM (exactly the server's HTML: nothing ran) is rendered again at the same
    URL in a page of a JavaScript-enabled context, served with a CSP that forbids every script, so the
    page looks as it did without JavaScript, and axe runs there.
    """

    def __init__(self, browser: Browser, viewport: ViewportSize | None) -> None:
        self._context = browser.new_context(viewport=viewport)
        self._page = self._context.new_page()

    def audit(self, url: str, html: str) -> list[AxeViolation]:
        # Without JavaScript, <noscript> content is part of the page; where scripts may run it is not.
        html = _NOSCRIPT_TAG.sub("", html)

        def serve(route: Route) -> None:
            route.fulfill(
                status=200,
                content_type="text/html; charset=utf-8",
                headers={"content-security-policy": "script-src 'none'"},
                body=html,
            )

        def same(candidate: str) -> bool:
            return candidate == url

        self._page.route(same, serve)
        try:
            self._page.goto(url, wait_until="load")
            assert "js-enabled" not in (self._page.get_attribute("body", "class") or "")
            return run_axe(self._page)
        finally:
            self._page.unroute(same, serve)

    def close(self) -> None:
        self._context.close()


@dataclass
class Tab:
    """A page that runs axe-core on every page it lands on, and notices any page it did not check.

    goto(), follow() and the helpers built on follow() (click, submit, switch_language) check the page
    they land on. A page reached in another way must be checked with check(), or the test fails at
    teardown. Console errors (a script blocked by the CSP, an uncaught exception) fail it too.
    """

    page: Page
    base_url: str
    language: str = "en"
    auditor: Auditor | None = None
    checked: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _pending: str | None = None

    def __post_init__(self) -> None:
        self.page.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        self.page.set_default_timeout(NAVIGATION_TIMEOUT_MS)
        self.page.on("framenavigated", self._navigated)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught error: {error}"))

    # --- bookkeeping -------------------------------------------------------------------------------

    def _navigated(self, frame: Frame) -> None:
        if frame.parent_frame is not None or not frame.url.startswith(self.base_url):
            return
        if self._pending is not None:
            self.unchecked.append(self._pending)
        self._pending = frame.url

    def _console(self, message: ConsoleMessage) -> None:
        """CSP violations, script errors and missing static files fail the test.

        Pages and JSON answers with a 4xx status by design (a form with errors, a 404 page, a refused
        passkey) are logged by Chromium as failed loads too; those are not problems.
        """
        if message.type != "error":
            return
        failed_load = message.text.startswith("Failed to load resource")
        if not failed_load or "/static/" in message.location.get("url", ""):
            self.problems.append(f"console error on {self.page.url}: {message.text} ({message.location})")

    def assert_clean(self) -> None:
        if self._pending is not None:
            self.unchecked.append(self._pending)
            self._pending = None
        assert not self.unchecked, f"pages visited without an axe-core check: {self.unchecked}"
        assert not self.problems, "\n".join(self.problems)

    # --- navigation --------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        parts = urlsplit(self.page.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def goto(self, path: str, *, status: int | None = 200) -> None:
        response = self.page.goto(self.base_url + path, wait_until="load")
        assert response is not None
        if status is not None:
            assert response.status == status, f"GET {path}: {response.status}"
        self.check()

    def follow(self, action: Callable[[], object], to: str | re.Pattern[str]) -> None:
        """Do something that loads a new page (a click, a form, a script), land on `to`, and check it."""
        with self.page.expect_navigation(wait_until="load"):
            action()
        self.expect_path(to)
        self.check()

    def click(self, target: str | Locator, to: str | re.Pattern[str]) -> None:
        locator = self.page.locator(target) if isinstance(target, str) else target
        self.follow(locator.click, to)

    def submit(self, form: str, to: str | re.Pattern[str], **fields: str) -> None:
        """Fill a form's fields by name and press its submit button."""
        scope = self.page.locator(f"main form[action='{form}']")
        for name, value in fields.items():
            scope.locator(f"[name='{name}']").fill(value)
        self.click(scope.locator("button[type='submit']"), to)

    def expect_path(self, to: str | re.Pattern[str]) -> None:
        if isinstance(to, str):
            matched = self.path == to if "?" in to else urlsplit(self.page.url).path == to
        else:
            matched = to.fullmatch(self.path) is not None
        assert matched, f"expected to be on {to!r}, but the browser is on {self.path!r}"

    # --- checks ------------------------------------------------------------------------------------

    def check(self) -> None:
        """axe-core, WCAG 2.1 A and AA rules, zero violations; and the page says which language it is in."""
        self.page.wait_for_load_state("load")
        url = self.page.url
        lang = self.page.get_attribute("html", "lang")
        assert lang == self.language, f"{url}: <html lang={lang!r}>, expected {self.language!r}"
        assert self.page.title().strip(), f"{url} has no title"
        violations = run_axe(self.page) if self.auditor is None else self.auditor.audit(url, self.page.content())
        assert not violations, describe_violations(url, self.language, violations)
        self.checked.append(url)
        self._pending = None

    def switch_language(self, language: str) -> None:
        """Use the language switcher (a plain link) and stay on the same page."""
        before = self.path
        link = self.page.locator(f"nav .bauhinia-language-switcher a[hreflang='{language}']")
        self.language = language
        self.follow(link.click, before)

    def main_text(self) -> str:
        return self.page.locator("main").inner_text()

    def screenshot(self, name: str) -> Path:
        path = Path(tempfile.gettempdir()) / f"bauhinia-browser-{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path


# --- the browser contexts of a test ---------------------------------------------------------------


@dataclass
class Tabs:
    """Opens browser contexts for one test and closes them, with every tab checked, at its end."""

    browser: Browser
    base_url: str
    contexts: list[BrowserContext]
    tabs: list[Tab]
    auditors: list[Auditor]

    def open(
        self,
        *,
        javascript: bool = True,
        locale: str = "en-GB",
        language: str = "en",
        viewport: ViewportSize | None = None,
    ) -> tuple[Tab, BrowserContext]:
        context = self.browser.new_context(
            java_script_enabled=javascript, locale=locale, viewport=viewport or {"width": 1280, "height": 720}
        )
        self.contexts.append(context)
        page = context.new_page()
        auditor = None
        if not javascript:
            auditor = Auditor(self.browser, page.viewport_size)
            self.auditors.append(auditor)
        tab = Tab(page, self.base_url, language=language, auditor=auditor)
        self.tabs.append(tab)
        return tab, context

    def close(self, failed: bool, name: str) -> None:
        try:
            if failed:
                for index, tab in enumerate(self.tabs):
                    if not tab.page.is_closed():
                        shot = tab.screenshot(f"failed-{name}-{index}")
                        sys.stderr.write(f"screenshot of the failed test's page: {shot}\n")
            else:
                for tab in self.tabs:
                    tab.assert_clean()
        finally:
            for auditor in self.auditors:
                auditor.close()
            for context in self.contexts:
                context.close()


# --- people ---------------------------------------------------------------------------------------

_serial = itertools.count(1)


@dataclass
class Person:
    """Someone who registers through the pages."""

    email: str
    id_number: str
    password: str = STRONG_PASSWORD
    surname: str = "Chan"
    given_names: str = "Siu Wai"
    totp_secret: str | None = None
    recovery_codes: list[str] = field(default_factory=list)


def new_person(tag: str) -> Person:
    serial = next(_serial)
    return Person(email=f"{tag}-{serial}@browser.example.hk", id_number=id_number("B", f"{700000 + serial:06d}"))


def register(tab: Tab, person: Person) -> None:
    """Fill the registration form as an adult and land on "Secure your account"."""
    tab.goto("/register")
    form = tab.page.locator("main form[action='/register']")
    form.locator("#english_surname").fill(person.surname)
    form.locator("#english_given_names").fill(person.given_names)
    form.locator("#id_number").fill(person.id_number)
    form.locator("#dob_day").fill("27")
    form.locator("#dob_month").fill("3")
    form.locator("#dob_year").fill("1985")
    form.locator("input[name='gender'][value='F']").check()
    form.locator("#email").fill(person.email)
    form.locator("#password").fill(person.password)
    tab.click(form.locator("button[type='submit']"), "/account/setup")


def set_up_authenticator_app(tab: Tab, person: Person, *, first: bool = True) -> None:
    """From any page with the link to /account/totp: read the key, prove it with a code, see recovery codes."""
    tab.click("main a[href='/account/totp']", "/account/totp")
    key = tab.page.locator("#totp-secret").inner_text()
    person.totp_secret = "".join(key.split())
    assert re.fullmatch(r"[A-Z2-7]{32}", person.totp_secret), key
    code = totp.current_code(person.totp_secret)
    if first:
        tab.submit("/account/totp", "/account/recovery-codes", code=code)
        person.recovery_codes = tab.page.locator("#recovery-codes li").all_inner_texts()
        assert len(person.recovery_codes) >= 8
        tab.click("main a[href='/account']", "/account")
    else:
        tab.submit("/account/totp", "/account?notice=totp-added", code=code)


def next_code(secret: str) -> str:
    """Enrolment or the last sign-in spent the current code; each code is accepted once."""
    return totp.current_code(secret, time.time() + totp.INTERVAL)


def sign_out(tab: Tab) -> None:
    tab.click("main form[action='/signout'] button[type='submit']", "/?signed_out=1")
    assert tab.page.locator(".govuk-notification-banner--success").is_visible()


def sign_in_with_password(tab: Tab, email: str, password: str, code: str | None, to: str = "/account") -> None:
    tab.goto("/signin")
    if code is None:
        tab.submit("/signin", to, email=email, password=password)
        return
    tab.submit("/signin", "/signin/code", email=email, password=password)
    tab.submit("/signin/code", to, code=code)


# --- the virtual authenticator (DevTools WebAuthn domain) -----------------------------------------


@dataclass
class VirtualAuthenticator:
    session: CDPSession
    authenticator_id: str

    @classmethod
    def attach(cls, context: BrowserContext, page: Page) -> VirtualAuthenticator:
        """A platform authenticator with user verification that says yes at once, like Touch ID would."""
        session = context.new_cdp_session(page)
        session.send("WebAuthn.enable", {"enableUI": False})
        added = session.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        return cls(session, str(added["authenticatorId"]))

    def credentials(self) -> list[dict[str, Any]]:
        found = self.session.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        credentials: list[dict[str, Any]] = found["credentials"]
        return credentials
