"""A strict, certified relying party against a running Bauhinia: panva's `openid-client` (npm).

openid_client/rp.mjs runs discovery, PAR + code + PKCE + DPoP, userinfo with DPoP, refresh with
rotation and reuse detection, introspection, revocation and RP-initiated logout, and checks every
token it gets (signatures against our JWKS, iss, aud, nonce, at_hash, cnf). This test is its
resident and its web server: it registers the client with `bauhinia clients add`, signs a resident
in with a password and an authenticator-app code in Debian's chromium, consents, hands the callback
URL to the RP, visits the end-session URL, and receives the back-channel logout token.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import ECKey
from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError

from tests.browser.support import Tab, next_code
from tests.servers import LiveServer, Seeder, free_port

pytestmark = [pytest.mark.conformance, pytest.mark.browser]

RP_DIRECTORY = Path(__file__).resolve().parent / "openid_client"
NODE = Path(sys.executable).with_name("node")
CLIENT_ID = "conformance-openid-client"
ITEMS = ["address", "birthdate", "email", "gender", "name", "phone"]
DECLINED = "gender"  # unticked on the consent page: userinfo must not carry it
MESSAGE_SECONDS = 60.0
BACKCHANNEL_SECONDS = 15.0


# --- the relying party's web server: callback, post-logout page, back-channel logout ----------------


@dataclass
class RelyingPartyServer:
    """What a department's web server would receive, on 127.0.0.1 (RFC 8252 loopback redirect URIs)."""

    base_url: str
    visits: queue.Queue[str] = field(default_factory=queue.Queue)
    logout_tokens: queue.Queue[str] = field(default_factory=queue.Queue)

    def wait_for(self, received: queue.Queue[str], what: str, seconds: float) -> str:
        try:
            return received.get(timeout=seconds)
        except queue.Empty:
            pytest.fail(f"the relying party's server received no {what} in {seconds}s")


def _handler(rp: RelyingPartyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        page: ClassVar[bytes] = (
            b'<!doctype html><html lang="en"><head><title>Relying party</title></head>'
            b"<body><main><h1>Relying party</h1></main></body></html>"
        )

        def do_GET(self) -> None:
            if urlsplit(self.path).path not in ("/callback", "/signed-out"):
                self._answer(404, "text/plain", b"not here")  # e.g. the browser's /favicon.ico
                return
            rp.visits.put(rp.base_url + self.path)
            self._answer(200, "text/html; charset=utf-8", self.page)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode()
            content_type = self.headers.get("content-type", "").split(";")[0].strip()
            form = parse_qs(body)
            tokens = form.get("logout_token", [])
            if urlsplit(self.path).path != "/backchannel-logout" or content_type != "application/x-www-form-urlencoded":
                self._answer(404, "text/plain", b"not here")
            elif len(tokens) != 1:
                self._answer(400, "application/json", b'{"error":"invalid_request"}')
            else:
                rp.logout_tokens.put(tokens[0])
                self._answer(200, "text/plain", b"")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("cache-control", "no-store")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def rp_server() -> Iterator[RelyingPartyServer]:
    port = free_port()
    rp = RelyingPartyServer(f"http://127.0.0.1:{port}")
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(rp))
    thread = threading.Thread(target=httpd.serve_forever, name="relying-party", daemon=True)
    thread.start()
    try:
        yield rp
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# --- the relying party's process: rp.mjs, JSON lines over stdin and stdout ---------------------------


class NodeRelyingParty:
    def __init__(self, config: Path, stderr: Path) -> None:
        if not (RP_DIRECTORY / "node_modules" / "openid-client").is_dir():
            pytest.fail(f"{RP_DIRECTORY}/node_modules is missing: run `make setup` (it runs npm ci there)")
        self.stderr_path = stderr
        self._stderr = stderr.open("wb")
        self.process = subprocess.Popen(
            [str(NODE), "rp.mjs", str(config)],
            cwd=RP_DIRECTORY,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="rp.mjs-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def receive(self) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=MESSAGE_SECONDS)
        except queue.Empty:
            pytest.fail(f"rp.mjs said nothing for {MESSAGE_SECONDS}s:\n{self.stderr_text()}")
        if line is None:
            pytest.fail(f"rp.mjs ended (status {self.process.wait(timeout=10)}) early:\n{self.stderr_text()}")
        message: dict[str, Any] = json.loads(line)
        return message

    def expect(self, need: str) -> dict[str, Any]:
        """The RP's next request of the test; when it ended early instead, its failed checks."""
        message = self.receive()
        if "summary" in message:
            pytest.fail(f"rp.mjs stopped before it needed {need!r}:\n{_failures(message['summary'])}")
        assert message.get("need") == need, message
        return message

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


def _failures(summary: dict[str, Any]) -> str:
    return "\n".join(f"  - {c['name']}: {c['detail']}" for c in summary["checks"] if not c["ok"]) or "  (none)"


@pytest.fixture
def relying_parties() -> Iterator[list[NodeRelyingParty]]:
    """The rp.mjs processes a test starts; each is ended (killed if it still runs) at the test's end."""
    started: list[NodeRelyingParty] = []
    yield started
    for rp in started:
        rp.close()


# --- the client and the resident --------------------------------------------------------------------


def register_client(server: LiveServer, rp: RelyingPartyServer, directory: Path) -> ECKey:
    """`bauhinia clients add --metadata-file`: a FAPI 2.0 client (PAR, private_key_jwt, DPoP)."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    metadata = {
        "client_id": CLIENT_ID,
        "client_name": {"en": "Conformance relying party"},
        "department": "Conformance testing",
        "purpose": {"en": "To check the provider with a certified relying party library."},
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.as_dict(private=False)]},
        "redirect_uris": [f"{rp.base_url}/callback"],
        "post_logout_redirect_uris": [f"{rp.base_url}/signed-out"],
        "backchannel_logout_uri": f"{rp.base_url}/backchannel-logout",
        "scopes": ["openid", "profile", "email", "address", "phone"],
        "items": ITEMS,
        "fapi": True,
        "allow_loopback_http": True,
    }
    path = directory / "client.json"
    path.write_text(json.dumps(metadata))
    added = server.command("clients", "add", "--client-id", CLIENT_ID, "--metadata-file", str(path))
    assert added.returncode == 0, added.stdout + added.stderr
    shown = json.loads(added.stdout)
    assert shown["metadata"]["require_pushed_authorization_requests"] is True
    assert shown["metadata"]["dpop_bound_access_tokens"] is True
    assert "client_secret" not in shown
    return key


def leave_for_relying_party(tab: Tab, rp: RelyingPartyServer, action: Callable[[], object]) -> None:
    """Do something that ends on the relying party's site, and say what the browser refused if it did not."""
    try:
        with tab.page.expect_navigation(url=lambda url: url.startswith(rp.base_url)):
            action()
    except PlaywrightError as exc:
        console = "\n".join(tab.problems) or "(nothing)"
        pytest.fail(f"the browser did not reach the relying party from {tab.page.url}: {exc.message}\n{console}")


# --- the test ---------------------------------------------------------------------------------------


def test_openid_client_signs_in_refreshes_introspects_revokes_and_logs_out(
    live_server: LiveServer,
    seeder: Seeder,
    browser: Browser,
    rp_server: RelyingPartyServer,
    relying_parties: list[NodeRelyingParty],
    tmp_path: Path,
) -> None:
    key = register_client(live_server, rp_server, tmp_path)
    resident = seeder.resident(with_totp=True)
    assert resident.totp_secret is not None
    config = tmp_path / "rp.json"
    config.write_text(
        json.dumps(
            {
                "issuer": live_server.base_url,
                "client_id": CLIENT_ID,
                "private_jwk": {**key.as_dict(private=True), "alg": "ES256"},
                "redirect_uri": f"{rp_server.base_url}/callback",
                "post_logout_redirect_uri": f"{rp_server.base_url}/signed-out",
            }
        )
    )
    rp = NodeRelyingParty(config, tmp_path / "rp.stderr")
    relying_parties.append(rp)
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 720})
    try:
        tab = Tab(context.new_page(), live_server.base_url)
        page = tab.page

        # First sign-in: password, authenticator-app code, consent (one item declined, the choice remembered).
        need = rp.expect("callback")
        assert need["login"] == "first"
        authorization = urlsplit(need["authorization_url"])
        assert f"{authorization.scheme}://{authorization.netloc}" == live_server.base_url
        tab.goto(f"{authorization.path}?{authorization.query}")
        tab.expect_path("/signin")
        tab.submit("/signin", "/signin/code", email=resident.email, password=resident.password)
        tab.submit("/signin/code", re.compile(r"/oidc/interaction/[\w-]+"), code=next_code(resident.totp_secret))
        form = page.locator("main form[action$='/consent']")
        boxes = form.locator("input[name='item']")
        assert sorted(boxes.evaluate_all("(inputs) => inputs.map((i) => i.value)")) == ITEMS
        for item in ITEMS:
            box = form.locator(f"input[name='item'][value='{item}']")
            box.set_checked(item != DECLINED)
        form.locator("input[name='remember']").check()
        leave_for_relying_party(tab, rp_server, form.locator("button[name='decision'][value='approve']").click)
        callback = rp_server.wait_for(rp_server.visits, "callback", 5)
        assert callback == page.url
        assert urlsplit(callback).path == "/callback"
        rp.send({"callback_url": callback})
        tab.goto(f"{authorization.path}?{authorization.query}", status=400)  # a pushed request is good once
        assert page.locator("main h1").is_visible()

        # Second sign-in in the same browser session: remembered consent, straight back to the RP.
        need = rp.expect("callback")
        assert need["login"] == "second"
        leave_for_relying_party(tab, rp_server, lambda: page.goto(need["authorization_url"]))
        callback = rp_server.wait_for(rp_server.visits, "callback", 5)
        assert urlsplit(callback).path == "/callback"
        rp.send({"callback_url": callback})

        # RP-initiated logout: back to the RP's page with its state; the session ends; a logout token arrives.
        need = rp.expect("logout")
        tab.goto("/account")  # signed in until now
        tab.expect_path("/account")
        leave_for_relying_party(tab, rp_server, lambda: page.goto(need["end_session_url"]))
        state = parse_qs(urlsplit(need["end_session_url"]).query)["state"][0]
        signed_out = rp_server.wait_for(rp_server.visits, "post-logout visit", 5)
        assert signed_out == page.url
        assert signed_out == f"{rp_server.base_url}/signed-out?state={state}"
        logout_token = rp_server.wait_for(rp_server.logout_tokens, "back-channel logout token", BACKCHANNEL_SECONDS)
        tab.goto("/account", status=None)
        tab.expect_path("/signin")
        rp.send({"logout_token": logout_token})

        finished = rp.receive()
        tab.assert_clean()
    finally:
        context.close()

    assert "summary" in finished, finished
    summary = finished["summary"]
    assert summary["failed"] == [], f"openid-client's checks failed:\n{_failures(summary)}\n{rp.stderr_text()}"
    assert rp.process.wait(timeout=30) == 0, rp.stderr_text()
    assert len(summary["checks"]) >= 60, [c["name"] for c in summary["checks"]]

    observed = summary["observed"]
    sub = observed["sub"]
    assert sub != resident.id, "the subject is pairwise by default, never the resident's id"
    id_claims = observed["id_token_claims"]
    assert id_claims["acr"] == "basic"
    assert set(id_claims["amr"]) == {"pwd", "otp", "mfa"}
    assert observed["access_token_claims"]["scope"].split() == ["address", "email", "openid", "phone", "profile"]
    # Only what the resident approved: no gender; no address or phone, which this resident never gave.
    expected = {"sub", "name", "family_name", "given_name", "birthdate", "email", "email_verified"}
    for userinfo in (observed["userinfo_first"], observed["userinfo_second"]):
        assert set(userinfo) == expected, userinfo
        assert userinfo["email"] == resident.email
        assert userinfo["family_name"].casefold() == "tester"
        assert userinfo["birthdate"] == "1980-06-05"
    assert observed["logout_token_claims"]["sid"] == id_claims["sid"]
    assert rp_server.logout_tokens.empty(), "one logout token per client and session"
