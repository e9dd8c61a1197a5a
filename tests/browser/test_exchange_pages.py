"""The gateway's pages in a real browser without JavaScript, in every language: a signed-out resident follows
a service's consent request, signs in, reviews it and agrees by keyboard alone with an optional item left
out, lands back at the service, then pauses, resumes and withdraws the consent from their account and reads
their data-use history. The Tab helper checks every page with axe-core (WCAG 2.1 A and AA).

The consumer's return page is on a tiny loopback web server (as in test_oidc_pages): the gateway sends the
browser there with a redirect after the review form, which also shows that the pages' Content-Security-Policy
lets that form leave the site.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from playwright.sync_api import Page

from bauhinia.core.i18n import Translator
from bauhinia.exchange.consents import consumer_system
from bauhinia.exchange.schemas import (
    ConsentRequestBody,
    ConsentRequested,
    DataItemPublication,
    MemberRegistration,
    PurposeRegistration,
    SystemRegistration,
)
from tests.browser.support import LANGUAGES, Seeder, Tab, Tabs, next_code
from tests.browser.test_oidc_pages import LOCALES, ServiceSite
from tests.helpers import TestResident
from tests.integration.test_exchange_catalogue import item, system
from tests.integration.test_exchange_pages import (
    ADDRESS,
    DESCRIPTION,
    HOUSING,
    IMMD,
    INCOME,
    LICENCE,
    NAMES,
    PURPOSE_CODE,
    REVENUE,
    TITLES,
    TRANSPORT,
)
from tests.oidc_support import register_client

pytestmark = pytest.mark.browser

CLIENT_ID = "browser-housing"
SIGN_IN_ON_THE_WAY = re.compile(r"/signin\?next=%2Fexchange%2Fconsents%2F[0-9a-f-]{36}")
REVIEW = re.compile(r"/exchange/consents/[0-9a-f-]{36}")
ACTOR = "operator:browser-tests"


@dataclass
class Registry:
    """Housing asks, three departments provide; Housing's return page is on the loopback site."""

    site: ServiceSite

    @property
    def return_uri(self) -> str:
        return f"{self.site.origin}/housing/consent-done"


@pytest.fixture(scope="module")
def registry(seeder: Seeder) -> Iterator[Registry]:
    site = ServiceSite()
    registered = Registry(site)

    async def work(app: FastAPI) -> None:
        service = app.state.exchange
        clients = {IMMD: "browser-immd", TRANSPORT: "browser-td", REVENUE: "browser-ird", HOUSING: CLIENT_ID}
        for client_id in clients.values():
            grants = {"grant_types": ["client_credentials"], "redirect_uris": [], "post_logout_redirect_uris": []}
            await register_client(app, client_id, scopes=[], items=[], **grants)
        async with app.state.sessionmaker() as db:
            for member_id, name in NAMES.items():
                await service.register_member(
                    db, MemberRegistration.model_validate({"id": member_id, "name": name}), actor=ACTOR
                )
            for system_id, client_id in clients.items():
                body = system(system_id, client_id)
                if system_id == HOUSING:
                    body = system(
                        system_id,
                        client_id,
                        role="consumer",
                        redirect_uris=[registered.return_uri],
                        webhook_url=f"{site.origin}/housing/webhook",
                        allow_loopback_http=True,
                    )
                await service.register_system(db, SystemRegistration.model_validate(body), actor=ACTOR)
            for item_id, provider in ((ADDRESS, IMMD), (LICENCE, TRANSPORT), (INCOME, REVENUE)):
                publication = item(id=item_id, title=TITLES[item_id], provider_system_id=provider)
                await service.publish_item(db, DataItemPublication.model_validate(publication), actor=ACTOR)
            purpose = {"code": PURPOSE_CODE, "description": DESCRIPTION, "consumer_system_ids": [HOUSING]}
            await service.register_purpose(db, PurposeRegistration.model_validate(purpose), actor=ACTOR)

    seeder.run(work)
    yield registered
    site.close()


def ask(seeder: Seeder, registry: Registry, state: str) -> str:
    """Housing asks for the address (required), the licence and the income (optional), for 30 days."""

    async def work(app: FastAPI) -> str:
        async with app.state.sessionmaker() as db:
            consumer = await consumer_system(db, app.state.exchange.consents.systems, CLIENT_ID)
            body = ConsentRequestBody.model_validate(
                {
                    "purpose": PURPOSE_CODE,
                    "items": [{"id": ADDRESS}, {"id": LICENCE, "optional": True}, {"id": INCOME, "optional": True}],
                    "mode": "period",
                    "valid_for": 30 * 86400,
                    "max_fetches": 3,
                    "data_life": 0,
                    "redirect_uri": registry.return_uri,
                    "state": state,
                }
            )
            requested: ConsentRequested = await app.state.exchange.consents.request(db, consumer, body)
            return requested.id

    return seeder.run(work)


# --- the journey -----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_exchange_pages_without_javascript(tabs: Tabs, seeder: Seeder, registry: Registry, language: str) -> None:
    t = Translator(language)
    tab, _ = tabs.open(javascript=False, locale=LOCALES[language], language=language)
    resident = seeder.resident(with_totp=True)
    state = secrets.token_urlsafe(8)
    consent_id = ask(seeder, registry, state)

    # Signed out: the request leads to the sign-in page, and back to the request after it.
    tab.goto(f"/exchange/consents/{consent_id}")
    sign_in_on_the_way(tab, resident)
    assert_review_page(tab, language)

    # Agree by keyboard alone, with the income left out: the browser goes back to the service.
    answer = back_at_the_service(tab, registry, lambda: agree_with_keyboard(tab.page))
    assert answer == {"consent_id": consent_id, "status": "ACTIVE", "state": state}

    # The consent in the account: in use, with what was agreed; paused, resumed, then withdrawn.
    tab.goto("/account")
    tab.click("main a[href='/account/consents']", "/account/consents")
    card = tab.page.locator(f"#consent-{consent_id}")
    assert NAMES["HK/GOV/HD"][language] in card.locator("h3").inner_text()
    shared = card.locator("dd li").all_inner_texts()
    assert len(shared) == 2
    assert TITLES[ADDRESS][language] in shared[0]
    assert TITLES[LICENCE][language] in shared[1]
    assert not any(TITLES[INCOME][language] in text for text in shared)
    pause = f"main form[action='/account/consents/{consent_id}/pause'] button"
    tab.click(pause, "/account/consents?notice=paused")
    resume = f"main form[action='/account/consents/{consent_id}/resume'] button"
    tab.click(resume, "/account/consents?notice=resumed")
    tab.click(f"main a[href='/account/consents/{consent_id}/revoke']", f"/account/consents/{consent_id}/revoke")
    warning = tab.page.locator("main .govuk-warning-text").inner_text()
    assert (
        t.gettext(
            "Withdrawing cannot be undone. The service will not be able to get your data with this consent again: "
            "it would have to ask you again."
        )
        in warning
    )
    tab.click(f"main form[action='/account/consents/{consent_id}/revoke'] button", "/account/consents?notice=revoked")
    banner = tab.page.locator(".govuk-notification-banner--success")
    assert t.gettext("The consent has been withdrawn. The service can no longer get your data with it.") in (
        banner.inner_text()
    )
    ended = tab.page.locator(f"#consent-{consent_id}")
    assert ended.locator(".govuk-tag").inner_text().strip() == t.gettext("Withdrawn")
    assert tab.page.locator(f"main form[action='/account/consents/{consent_id}/pause']").count() == 0

    # The history: every step, newest first, in the page's language.
    tab.click("main a[href='/account/data-use']", "/account/data-use")
    events = tab.page.locator("main tr[data-event]").evaluate_all("rows => rows.map(r => r.dataset.event)")
    assert events == [
        "consent.revoked",
        "consent.resumed",
        "consent.paused",
        "consent.approved",
        "consent.requested",
    ]
    housing = NAMES["HK/GOV/HD"][language]
    assert t.gettext("You withdrew your consent for %(service)s", service=housing) in tab.main_text()

    # A request that does not exist, and one already answered, are explained in the same language.
    tab.goto("/exchange/consents/00000000-0000-4000-8000-000000000000", status=404)
    assert tab.page.locator("h1").inner_text() == t.gettext("There is no such consent request")
    tab.goto(f"/exchange/consents/{consent_id}", status=409)
    assert tab.page.locator("h1").inner_text() == t.gettext("This consent request has already been answered")


def test_declining_with_the_pointer_and_javascript(tabs: Tabs, seeder: Seeder, registry: Registry) -> None:
    tab, _ = tabs.open(javascript=True)
    resident = seeder.resident(with_totp=True)
    consent_id = ask(seeder, registry, "declined")
    tab.goto(f"/exchange/consents/{consent_id}")
    sign_in_on_the_way(tab, resident)
    decline = tab.page.locator("main button[name='action'][value='decline']")
    answer = back_at_the_service(tab, registry, decline.click)
    assert answer == {"consent_id": consent_id, "status": "REJECTED", "state": "declined"}
    tab.goto("/account/consents")
    assert tab.page.locator(f"#consent-{consent_id} .govuk-tag").inner_text().strip() == "Declined"


# --- steps -----------------------------------------------------------------------------------------


def sign_in_on_the_way(tab: Tab, resident: TestResident) -> None:
    assert resident.totp_secret is not None
    tab.expect_path(SIGN_IN_ON_THE_WAY)
    tab.submit("/signin", "/signin/code", email=resident.email, password=resident.password)
    tab.submit("/signin/code", REVIEW, code=next_code(resident.totp_secret))


def assert_review_page(tab: Tab, language: str) -> None:
    t = Translator(language)
    heading = t.gettext("%(service)s asks for your data", service=NAMES["HK/GOV/HD"][language])
    assert tab.page.locator("h1").inner_text() == heading
    assert heading in tab.page.title()
    main = tab.main_text()
    assert DESCRIPTION[language] in main
    assert TITLES[ADDRESS][language] in tab.page.locator("#required-items").inner_text()
    assert NAMES["HK/GOV/IMMD"][language] in tab.page.locator("#required-items").inner_text()
    labels = [label.strip() for label in tab.page.locator("main label[for^='include-']").all_inner_texts()]
    assert labels == [TITLES[LICENCE][language], TITLES[INCOME][language]]
    for box in tab.page.locator("main input[name='include']").all():
        assert box.is_checked()
    assert t.gettext("Use and discard: it must not be kept after it has been used.") in main
    assert t.ngettext("%(num)d day", "%(num)d days", 30) in tab.page.locator("#until").inner_text()


_FOCUSED = """() => {
  const element = document.activeElement;
  if (!element || element === document.body) return "";
  return element.id || `${element.getAttribute("name")}=${element.getAttribute("value")}`;
}"""


def press(page: Page, key: str = "Tab") -> str:
    page.keyboard.press(key)
    focused: str = page.evaluate(_FOCUSED)
    return focused


def agree_with_keyboard(page: Page) -> None:
    """Tab to the first optional item, on to the second and untick it with Space, then Enter on "Agree"."""
    for _ in range(40):  # the skip link, the header and the language switcher come first
        if press(page) == "include-1":
            break
    else:
        raise AssertionError("Tab never reached the first optional item")
    assert press(page) == "include-2"
    page.keyboard.press("Space")
    assert not page.locator("#include-2").is_checked()
    assert page.locator("#include-1").is_checked()
    assert press(page) == "action=approve"
    assert press(page) == "action=decline"
    assert press(page, "Shift+Tab") == "action=approve"
    page.keyboard.press("Enter")


def back_at_the_service(tab: Tab, registry: Registry, action: Callable[[], object]) -> dict[str, str]:
    """Do something that ends at the service's return page; the query the service received."""
    with tab.page.expect_navigation(url=lambda url: url.startswith(registry.return_uri), wait_until="load"):
        action()
    parts = urlsplit(tab.page.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == registry.return_uri
    assert registry.site.paths[-1] == f"{parts.path}?{parts.query}"  # the service itself got the request
    return {name: values[0] for name, values in parse_qs(parts.query).items()}
