"""e-Proof in a real browser, over real HTTP: the Transport Department's back end issues a driving
licence through the API; the resident sees it in the wallet with its QR code; a verifier uploads a
picture of that code on the public verification page (no sign-in) and is told it is valid; after the
department revokes it, the same picture is said to be revoked. Every page is checked with axe-core.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from bauhinia.eproof.demo import register_demo_types
from bauhinia.exchange.demo import register_demo_members
from bauhinia.oidc.demo_clients import register_demo_clients
from tests.browser.support import Seeder, Tabs, next_code, sign_in_with_password
from tests.helpers import TestResident, empty_all_tables
from tests.oidc_support import ASSERTION_TYPE
from tests.servers import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def resident(seeder: Seeder, live_server: LiveServer) -> Iterator[TestResident]:
    data_dir = Path(live_server.settings.data_dir)
    seeder.run(empty_all_tables)
    person = seeder.resident(with_totp=True)

    async def work(app: FastAPI) -> None:
        async with app.state.sessionmaker() as db:
            await register_demo_clients(db, app.state.oidc, data_dir)
            await register_demo_members(db, app.state.exchange, data_dir)
            await register_demo_types(db, app.state.eproof)

    seeder.run(work)
    yield person
    seeder.run(empty_all_tables)


class TransportBackEnd:
    """The Transport Department's back end: its own client, calling the platform's API over HTTP."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.base_url, timeout=10)
        private = json.loads((Path(server.settings.data_dir) / "clients" / "td-backend.json").read_text())
        key = ECKey.import_key(private["private_jwk"])
        now = int(time.time())
        claims = {"iss": "td-backend", "sub": "td-backend", "aud": server.base_url, "iat": now, "exp": now + 60}
        assertion = jwt.encode({"alg": "ES256", "kid": key.kid}, claims | {"jti": secrets.token_urlsafe(16)}, key)
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        answer = self.http.post("/oidc/token", data=form)
        assert answer.status_code == 200, answer.text
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def issue_licence(self, holder: TestResident) -> dict[str, str]:
        claims = {
            "name_en": "CHAN, Tai Man",
            "name_zh": "陳大文",
            "licence_number": "CTM853271",
            "classes": ["1", "2"],
            "issued_on": "2021-06-01",
            "expires_on": "2031-05-31",
        }
        body = {"type": "td.driving-licence", "holder": {"identity_number": holder.id_number}, "claims": claims}
        answer = self.http.post("/api/eproof/credentials", json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text
        issued: dict[str, str] = answer.json()
        return issued

    def revoke(self, credential_id: str) -> None:
        body = {"status": "revoked", "reason": "the holder was disqualified from driving"}
        answer = self.http.post(f"/api/eproof/credentials/{credential_id}/status", json=body, headers=self.headers)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def transport(live_server: LiveServer, resident: TestResident) -> Iterator[TransportBackEnd]:
    back_end = TransportBackEnd(live_server)
    yield back_end
    back_end.http.close()


def test_issue_see_in_wallet_verify_the_qr_code_revoke(
    tabs: Tabs, resident: TestResident, transport: TransportBackEnd, tmp_path: Path
) -> None:
    issued = transport.issue_licence(resident)

    # The resident signs in and finds the licence in the wallet, with its QR code.
    tab, _ = tabs.open()
    page = tab.page
    assert resident.totp_secret is not None
    sign_in_with_password(tab, resident.email, resident.password, next_code(resident.totp_secret))
    tab.goto("/account/wallet")
    card = page.locator(f"main li[data-credential='{issued['id']}'] a")
    assert "Full driving licence" in card.inner_text()
    tab.click(card, f"/account/wallet/{issued['id']}")
    assert "陳大文" in tab.main_text()
    picture = tmp_path / "licence-qr.png"
    page.locator("#qr").screenshot(path=str(picture))

    # A verifier, in another browser and not signed in, uploads the picture of the code.
    verifier, _ = tabs.open()
    verifier.goto("/verify")
    verifier.page.locator("#file").set_input_files(str(picture))
    verifier.click("main form[action='/verify'] button[type='submit']", "/verify")
    assert verifier.page.locator("#verdict").get_attribute("data-valid") == "true"
    said = verifier.main_text()
    assert "Transport Department" in said
    assert "CTM853271" in said
    checks = verifier.page.locator("#checks li").evaluate_all("items => items.map(i => i.dataset.check)")
    assert checks == ["signature", "log", "status", "validity"]

    # The department revokes the licence; the same picture is now said to be revoked.
    transport.revoke(issued["id"])
    verifier.goto("/verify")
    verifier.page.locator("#file").set_input_files(str(picture))
    verifier.click("main form[action='/verify'] button[type='submit']", "/verify")
    assert verifier.page.locator("#verdict").get_attribute("data-valid") == "false"
    assert "The issuer has revoked it." in verifier.main_text()

    # The wallet says so too.
    tab.goto("/account/wallet")
    assert "Revoked" in page.locator(f"main li[data-credential='{issued['id']}']").inner_text()
