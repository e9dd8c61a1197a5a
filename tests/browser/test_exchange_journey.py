"""The whole exchange journey in a real browser, over real HTTP between every party: a resident starts the
Housing Department's application, is sent to the gateway to consent, shares two of the three items,
returns to a form pre-filled from the Immigration and Transport Departments' records, sends it, then
withdraws the consent; the Housing Department's next data request is refused; the resident's data-use
history shows every step. Every page is checked with axe-core by the Tab helper.

The demo departments are the ones `bauhinia demo` runs (mounted at /demo by the server, speaking to the
gateway only through the SDK over HTTP).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from bauhinia.exchange.demo import DEPARTMENT_RECORDS, MEMBERS, register_demo_members
from bauhinia.oidc.demo_clients import register_demo_clients
from tests.browser.support import Seeder, Tabs
from tests.browser.test_exchange_pages import sign_in_on_the_way
from tests.helpers import TestResident, empty_all_tables
from tests.servers import LiveServer

pytestmark = pytest.mark.browser

ADDRESS, INCOME, LICENCE = "immd.residential-address", "ird.assessable-income", "td.driving-licence"
PERSONA = "chan.taiman@demo.bauhinia.hk"  # whose demo records the resident is given


@pytest.fixture(scope="module")
def resident(seeder: Seeder, live_server: LiveServer) -> Iterator[TestResident]:
    """A resident the demo departments hold records on, in a registry of the demo's own making."""
    data_dir = Path(live_server.settings.data_dir)
    seeder.run(empty_all_tables)
    person = seeder.resident(with_totp=True)

    async def work(app: FastAPI) -> None:
        async with app.state.sessionmaker() as db:
            await register_demo_clients(db, app.state.oidc, data_dir)
            await register_demo_members(db, app.state.exchange, data_dir)
        for member_id, _, subsystem, roles, *_ in MEMBERS:
            if "provider" not in roles:
                continue
            records = DEPARTMENT_RECORDS[member_id].get(PERSONA)
            subject = app.state.exchange.forwarder.provider_subject(member_id, person.id)
            content = {"system_id": f"{member_id}/{subsystem}", "records": {subject: records} if records else {}}
            path = data_dir / "departments" / f"{member_id.rsplit('/', 1)[1]}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content))

    seeder.run(work)
    yield person
    seeder.run(empty_all_tables)  # the next module registers a registry of its own


def test_apply_consent_prefill_withdraw_refused_and_history(tabs: Tabs, resident: TestResident) -> None:
    tab, _ = tabs.open()
    page = tab.page

    # The Housing Department's start page: fill in from records, asking for all three items.
    tab.goto("/demo/housing/apply")
    assert "Housing Department (demo)" in tab.main_text() or "Housing Department (demo)" in page.title()
    tab.click("#fetch-from-records", re.compile(r"/signin\?next=.+"))

    # The gateway: sign in on the way, then the review page; share the address and the licence only.
    sign_in_on_the_way(tab, resident)
    assert "Housing Department" in page.locator("h1").inner_text()
    income = page.locator(f"main input[name='include'][value='{INCOME}']")
    income.uncheck()
    assert page.locator(f"main input[name='include'][value='{LICENCE}']").is_checked()
    tab.click("main button[value='approve']", "/demo/housing/apply/form?by=records")

    # Back at Housing: the form is pre-filled from the two departments, and says what was not shared.
    assert page.locator("#address-building").input_value() == "Harmony Court"
    assert page.locator("#address-district").input_value() == "Kwun Tong"
    assert page.locator("#licence-number").input_value() == "CTM853271"
    assert page.locator("#income").input_value() == ""
    assert "From Immigration Department" in page.locator("#address-building-source").inner_text()
    assert "From Transport Department" in page.locator("#licence-number-source").inner_text()
    assert "You chose not to share your assessable income." in page.locator("#not-filled-in").inner_text()
    page.locator("#applicant-name").fill("CHAN Tai Man")
    tab.click("#submit-application", re.compile(r"/demo/housing/application/HD-[A-Z0-9-]+"))
    reference = page.locator("#reference").inner_text()
    application = tab.path

    # The resident withdraws the consent in their account.
    tab.goto("/account/consents")
    withdraw = page.locator("main a[href$='/revoke']")
    assert withdraw.count() == 1
    tab.click(withdraw, re.compile(r"/account/consents/[0-9a-f-]{36}/revoke"))
    tab.click("main form[action$='/revoke'] button", "/account/consents?notice=revoked")

    # Housing's next data request is refused by the gateway, and the page says so.
    tab.goto(application)
    assert page.locator("#reference").inner_text() == reference
    tab.click("#refresh-from-records", re.compile(re.escape(application) + r"(\?.*)?"))
    notice = page.locator(".govuk-notification-banner").inner_text()
    assert "your consent no longer allows it" in notice
    assert "REVOKED" in notice

    # The history shows every step, newest first.
    tab.goto("/account/data-use")
    events = page.locator("main tr[data-event]").evaluate_all("rows => rows.map(r => r.dataset.event)")
    assert events == ["consent.revoked", "data.requested", "consent.approved", "consent.requested"]
    history = tab.main_text()
    assert "Housing Department" in history
    assert "Immigration Department" in history
    assert "Harmony Court" not in history
    assert "CTM853271" not in history
