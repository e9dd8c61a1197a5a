"""Every page, in every language, checked with axe-core (WCAG 2.1 A and AA): the public pages, their error
states, a resident's account pages, the staff counter, and assisted recovery with an officer's reset code.
"""

from __future__ import annotations

import re

import pytest

from bauhinia.identity import totp
from tests.browser.support import LANGUAGES, Seeder, Tab, Tabs, next_code, sign_in_with_password, sign_out

pytestmark = pytest.mark.browser

CJK = re.compile(r"[\u4e00-\u9fff]")
NEW_PASSWORD = "orchid ferry typhoon junk"


def wrong_code(secret: str) -> str:
    right = totp.current_code(secret)
    return f"{(int(right) + 1) % 1_000_000:06d}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page(tabs: Tabs, seeder: Seeder, language: str) -> None:
    tab, _ = tabs.open()
    tab.goto("/")
    if language != "en":
        tab.switch_language(language)
        assert CJK.search(tab.page.locator("h1").inner_text())
    public_pages(tab)
    account_pages(tab, seeder, language)


def public_pages(tab: Tab) -> None:
    for path in ("/register", "/signin", "/recover", "/staff/signin"):
        tab.goto(path)
        tab.submit(path, path)  # nothing filled in: the form comes back with its errors
        assert tab.page.locator(".govuk-error-summary").is_visible(), path
        # GOV.UK pattern: the title starts with "Error:" (in the page's language) when the form has errors.
        prefix = tab.page.locator(".govuk-error-message .govuk-visually-hidden").first.text_content() or ""
        assert prefix.strip(), path
        assert tab.page.title().startswith(prefix.strip()), (path, tab.page.title())
        assert_error_links_reach_fields(tab)
    # With JavaScript, GOV.UK's error summary takes focus, and its links move focus to the field.
    tab.goto("/register")
    tab.submit("/register", "/register")
    assert tab.page.evaluate("() => document.activeElement.classList.contains('govuk-error-summary')")
    tab.page.locator(".govuk-error-summary a[href='#dob_day']").click()
    assert tab.page.evaluate("() => document.activeElement.id") == "dob_day"
    tab.goto("/signin/code", status=None)  # no sign-in under way: back to the start
    tab.expect_path("/signin")
    tab.goto("/no-such-page", status=404)
    tab.goto("/staff", status=None)  # the counter is behind staff sign-in
    tab.expect_path("/staff/signin")

    # A form whose CSRF token no longer matches the session: the "form has expired" page.
    tab.goto("/signin")
    tab.page.locator("main form[action='/signin'] input[name='csrf_token']").evaluate("input => input.value = 'stale'")
    tab.submit("/signin", "/signin", email="someone@example.hk", password="not relevant here")
    assert tab.page.locator("main form").count() == 0


def assert_error_links_reach_fields(tab: Tab) -> None:
    """Each link of the error summary points at a form field that exists (GOV.UK: link to the first field)."""
    targets = tab.page.locator(".govuk-error-summary a").evaluate_all(
        """links => links.map(link => {
             const target = document.getElementById(link.hash.slice(1));
             return [link.hash, target ? target.tagName : null];
           })"""
    )
    for fragment, tag in targets:
        assert tag in ("INPUT", "SELECT", "TEXTAREA"), f"{tab.path}: error link {fragment} leads to {tag}"


def account_pages(tab: Tab, seeder: Seeder, language: str) -> None:
    resident = seeder.resident(with_totp=False)
    sign_in_with_password(tab, resident.email, resident.password, None, to="/account/setup")
    tab.goto("/")  # the start page for someone signed in
    tab.click("main a[href='/account']", "/account/setup")

    # The authenticator app, with a wrong code first.
    tab.click("main a[href='/account/totp']", "/account/totp")
    secret = "".join(tab.page.locator("#totp-secret").inner_text().split())
    tab.submit("/account/totp", "/account/totp", code=wrong_code(secret))
    assert tab.page.locator("#code-error").is_visible()
    tab.submit("/account/totp", "/account/recovery-codes", code=totp.current_code(secret))
    tab.click("main a[href='/account']", "/account")
    tab.screenshot(f"account-{language}")

    tab.click("main a[href='/account/password']", "/account/password")
    tab.submit("/account/password", "/account/password")  # nothing filled in
    assert tab.page.locator("#current_password-error, #new_password-error").count() >= 1
    tab.goto("/account")
    tab.click("main form[action='/account/recovery-codes'] button[type='submit']", "/account/recovery-codes")
    tab.click("main a[href='/account']", "/account")
    for notice in ("totp-added", "passkey-added", "removed", "password-changed"):
        tab.goto(f"/account?notice={notice}")
        assert tab.page.locator(".govuk-notification-banner--success").is_visible()
    sign_out(tab)

    # The counter: an officer finds the resident, records an identity check and issues a reset code.
    username = f"officer-{language.lower()}"
    staff_password, staff_secret = seeder.staff(username)
    tab.goto("/staff/signin")
    tab.submit(
        "/staff/signin", "/staff", username=username, password=staff_password, code=totp.current_code(staff_secret)
    )
    tab.submit("/staff", "/staff?q=nobody%40example.hk", q="nobody@example.hk")
    assert tab.page.locator("#q-error").is_visible()
    tab.submit("/staff", re.compile(r"/staff/residents/[^/]+"), q=resident.email)
    resident_page = tab.path
    tab.submit(f"{resident_page}/verify", f"{resident_page}/verify", id_number="", location="")
    assert tab.page.locator(".govuk-error-summary").is_visible()
    tab.submit(
        f"{resident_page}/verify", f"{resident_page}?notice=verified", id_number=resident.id_number, location="Central"
    )
    assert tab.page.locator(".govuk-notification-banner--success").is_visible()
    assert "(counter)" not in tab.main_text()  # the channel is named in words, in the page's language
    # Actions redirect back to the resident's page (post/redirect/get), which names what was done.
    tab.click(f"main form[action='{resident_page}/unlock'] button[type='submit']", f"{resident_page}?notice=unlocked")
    tab.click(
        f"main form[action='{resident_page}/reset-code'] button[type='submit']", f"{resident_page}?notice=reset-code"
    )
    reset_code = tab.page.locator("#reset-code").inner_text().strip()
    tab.screenshot(f"staff-resident-{language}")
    tab.click("header a[href='/staff']", "/staff")
    tab.click("main form[action='/staff/signout'] button[type='submit']", "/staff/signin")

    # The resident, who lost their phone, recovers the account with the officer's code.
    tab.goto("/recover")
    tab.submit("/recover", "/account/password", email=resident.email, code=reset_code)
    assert tab.page.locator("#current_password").count() == 0  # they choose a new password, no old one asked
    tab.submit("/account/password", "/account/setup", new_password=NEW_PASSWORD)
    tab.click("main a[href='/account/totp']", "/account/totp")
    secret = "".join(tab.page.locator("#totp-secret").inner_text().split())
    tab.submit("/account/totp", "/account/recovery-codes", code=totp.current_code(secret))
    tab.click("main a[href='/account']", "/account")
    sign_out(tab)
    sign_in_with_password(tab, resident.email, NEW_PASSWORD, next_code(secret))


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_pages_reflow_on_a_narrow_screen(tabs: Tabs, seeder: Seeder, javascript: bool) -> None:
    """WCAG 1.4.10: at 320 CSS pixels wide nothing needs scrolling sideways, and the header's links show."""
    tab, _ = tabs.open(javascript=javascript, viewport={"width": 320, "height": 640})
    resident = seeder.resident(with_totp=True)
    assert resident.totp_secret is not None
    tab.goto("/")
    tab.switch_language("zh-Hant")
    for path in ("/", "/register", "/signin"):
        tab.goto(path)
        assert_no_sideways_scrolling(tab)
        assert tab.page.locator("header nav a[href='/signin']").is_visible()
    tab.switch_language("en")
    sign_in_with_password(tab, resident.email, resident.password, next_code(resident.totp_secret))
    assert_no_sideways_scrolling(tab)
    assert tab.page.locator("header nav a[href='/account']").is_visible()
    tab.screenshot(f"account-320px-{'js' if javascript else 'nojs'}")


def assert_no_sideways_scrolling(tab: Tab) -> None:
    widths = tab.page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"{tab.path} scrolls sideways at 320px: {widths}"
