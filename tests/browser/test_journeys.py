"""Residents' journeys in a real browser: register, secure the account, sign in with a password and a code
or with a passkey (Chromium's virtual authenticator), switch language, and all of it without JavaScript.

Every page a test lands on is checked with axe-core (WCAG 2.1 A and AA) by the Tab helper.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.support import (
    Seeder,
    Tab,
    Tabs,
    VirtualAuthenticator,
    new_person,
    next_code,
    register,
    set_up_authenticator_app,
    sign_in_with_password,
    sign_out,
)

pytestmark = pytest.mark.browser

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_register_set_up_authenticator_app_and_sign_in_with_password_and_code(tab: Tab) -> None:
    person = new_person("totp")
    register(tab, person)
    assert tab.page.locator("#passkey-register-button").is_visible()  # JavaScript runs: passkeys are offered
    set_up_authenticator_app(tab, person)
    methods = tab.page.locator("main table.govuk-table tbody tr")
    assert methods.count() == 3  # password, authenticator app, recovery codes
    assert person.email in tab.main_text()

    sign_out(tab)
    tab.goto("/account", status=None)  # signed out: the account is behind sign-in again
    tab.expect_path("/signin")

    assert person.totp_secret is not None
    sign_in_with_password(tab, person.email, person.password, next_code(person.totp_secret))
    assert person.email in tab.main_text()


def test_recovery_code_signs_in_once(tab: Tab) -> None:
    person = new_person("recovery")
    register(tab, person)
    set_up_authenticator_app(tab, person)
    sign_out(tab)
    code = person.recovery_codes[0]
    sign_in_with_password(tab, person.email, person.password, code)
    assert f"{len(person.recovery_codes) - 1} codes left" in tab.main_text()
    sign_out(tab)
    tab.goto("/signin")
    tab.submit("/signin", "/signin/code", email=person.email, password=person.password)
    tab.submit("/signin/code", "/signin/code", code=code)  # spent: the page says what is wrong
    assert tab.page.locator(".govuk-error-summary").is_visible()
    assert tab.page.locator("#code-error").is_visible()


def test_passkey_created_on_the_setup_page_signs_in_without_a_password(tabs: Tabs) -> None:
    tab, context = tabs.open()
    authenticator = VirtualAuthenticator.attach(context, tab.page)
    person = new_person("passkey-setup")
    register(tab, person)

    tab.click("#passkey-register-button", "/account/recovery-codes")  # the first strong method: codes
    credentials = authenticator.credentials()
    assert len(credentials) == 1
    assert credentials[0]["isResidentCredential"] is True
    assert credentials[0]["rpId"] == "localhost"
    tab.click("main a[href='/account']", "/account")
    assert tab.page.locator("main table.govuk-table tbody tr").count() == 3  # password, passkey, recovery

    sign_out(tab)
    tab.goto("/signin")
    tab.click("#passkey-signin-button", "/account")  # usernameless: no email typed
    assert person.email in tab.main_text()
    assert authenticator.credentials()[0]["signCount"] >= 1


def test_passkey_added_on_the_account_page(tabs: Tabs, seeder: Seeder) -> None:
    resident = seeder.resident(with_totp=True)
    assert resident.totp_secret is not None
    tab, context = tabs.open()
    authenticator = VirtualAuthenticator.attach(context, tab.page)
    sign_in_with_password(tab, resident.email, resident.password, next_code(resident.totp_secret))

    tab.click("#passkey-register-button", "/account?notice=passkey-added")
    assert tab.page.locator(".govuk-notification-banner--success").is_visible()
    assert len(authenticator.credentials()) == 1

    # The same authenticator cannot register a second passkey for the account: the page says so in
    # its own words (the browser's message would be English whatever the page's language).
    tab.page.locator("#passkey-register-button").click()
    error = tab.page.locator("#passkey-error")
    error.wait_for(state="visible")
    assert error.locator(".bauhinia-passkey-error__text").inner_text() == "This passkey is already registered."
    tab.check()  # the page with the error showing
    assert len(authenticator.credentials()) == 1

    sign_out(tab)
    tab.goto("/signin?next=/account/password")
    tab.click("#passkey-signin-button", "/account/password")  # the sign-in keeps where it was going


def test_removed_passkey_is_refused_with_a_message(tabs: Tabs) -> None:
    tab, context = tabs.open()
    authenticator = VirtualAuthenticator.attach(context, tab.page)
    person = new_person("passkey-removed")
    register(tab, person)
    tab.click("#passkey-register-button", "/account/recovery-codes")
    tab.click("main a[href='/account']", "/account")
    removable = tab.page.locator("main form[action^='/account/authenticators/'] button[type='submit']")
    assert removable.count() == 1  # the passkey; the password and the recovery codes have other actions

    # The last strong method cannot go: the account page explains why.
    tab.click(removable.first, re.compile(r"/account/authenticators/[^/]+/remove"))
    assert tab.page.locator(".govuk-error-summary").is_visible()
    tab.goto("/account")

    set_up_authenticator_app(tab, person, first=False)
    assert removable.count() == 2  # passkey, then authenticator app
    tab.click(removable.first, "/account?notice=removed")
    assert removable.count() == 1
    assert len(authenticator.credentials()) == 1  # the authenticator still holds the passkey...

    sign_out(tab)
    tab.goto("/signin")
    tab.switch_language("zh-Hant")
    tab.page.locator("#passkey-signin-button").click()
    error = tab.page.locator("#passkey-error")
    error.wait_for(state="visible")  # ...but the server no longer knows it, and says so in the page's language
    assert CJK.search(error.locator(".bauhinia-passkey-error__text").inner_text())
    assert tab.path == "/signin"
    tab.check()


def test_cancelled_passkey_prompt_is_explained_in_the_page_language(tabs: Tabs) -> None:
    tab, context = tabs.open(locale="zh-HK", language="zh-Hant")
    VirtualAuthenticator.attach(context, tab.page)
    tab.goto("/signin")
    tab.page.locator("#passkey-signin-button").click()
    # The virtual authenticator holds no passkey for this site, so the browser ends the ceremony with a
    # NotAllowedError, as when someone cancels the prompt. Its English message is not what is shown.
    error = tab.page.locator("#passkey-error")
    error.wait_for(state="visible")
    assert CJK.search(error.inner_text())
    tab.check()


def test_language_switcher_translates_the_page_and_remembers_the_choice(tab: Tab) -> None:
    tab.goto("/register")
    english_title, english_heading = tab.page.title(), tab.page.locator("h1").inner_text()
    switcher = tab.page.locator("nav .bauhinia-language-switcher")
    assert switcher.locator("[aria-current='true']").inner_text() == "English"

    seen = {"en": (english_title, english_heading)}
    for language in ("zh-Hant", "zh-Hans"):
        tab.switch_language(language)  # checks <html lang> and runs axe on the translated page
        title, heading = tab.page.title(), tab.page.locator("h1").inner_text()
        assert title != english_title
        assert heading != english_heading
        assert switcher.locator("[aria-current='true']").get_attribute("lang") == language
        # The other languages are offered in their own language and script.
        for other in {"en", "zh-Hant", "zh-Hans"} - {language}:
            assert switcher.locator(f"a[hreflang='{other}']").get_attribute("lang") == other
        seen[language] = (title, heading)
        tab.goto("/signin")  # the choice is remembered on the next page
        tab.goto("/register")

    tab.switch_language("en")
    assert (tab.page.title(), tab.page.locator("h1").inner_text()) == seen["en"]


@pytest.mark.parametrize(("locale", "language"), [("zh-HK", "zh-Hant"), ("zh-CN", "zh-Hans"), ("en-GB", "en")])
def test_first_visit_follows_the_browser_language(tabs: Tabs, locale: str, language: str) -> None:
    tab, _ = tabs.open(locale=locale, language=language)
    tab.goto("/")


def test_everything_works_without_javascript(tabs: Tabs) -> None:
    tab, _ = tabs.open(javascript=False)
    tab.goto("/signin")
    assert tab.page.locator("body.js-enabled").count() == 0
    assert not tab.page.locator("#passkey-signin-button").is_visible()  # passkeys need JavaScript

    person = new_person("nojs")
    register(tab, person)
    assert not tab.page.locator("#passkey-register-button").is_visible()
    set_up_authenticator_app(tab, person)
    assert not tab.page.locator("#passkey-register-button").is_visible()

    tab.switch_language("zh-Hant")  # the switcher is a plain link
    sign_out(tab)
    assert person.totp_secret is not None
    sign_in_with_password(tab, person.email, person.password, next_code(person.totp_secret))
    assert person.email in tab.main_text()
    tab.switch_language("en")
