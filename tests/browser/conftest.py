"""A real `bauhinia serve` and Debian's chromium, driven through Playwright's sync API.

One server and one browser for the whole browser package; a fresh browser context per test.

Two things about the event loop. Playwright's sync API marks its own asyncio loop as the running
loop of the main thread between calls, so nothing here may call asyncio.run() in the main thread
while the browser is up: database work (emptying tables, seeding people) runs in a worker thread.
And the browser is package-scoped, so it is gone, and the thread has no running loop, before
pytest-asyncio runs the async tests of the other packages.

The server's public URL is http://localhost:<port>, not http://127.0.0.1:<port>: Chromium refuses an
IP address as a WebAuthn relying-party id ("127.0.0.1 is an invalid domain"). The server still only
listens on 127.0.0.1, and localhost is a secure context, so Secure cookies and passkeys work over HTTP.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from bauhinia.app import create_app
from bauhinia.models import load_all_models
from bauhinia.settings import Mode, Settings
from tests.browser.support import LiveServer, Seeder, Tab, Tabs
from tests.helpers import empty_all_tables

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
]
BAUHINIA = Path(sys.executable).with_name("bauhinia")
STARTUP_SECONDS = 30

load_all_models()


# --- the server -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`bauhinia serve` exited with {process.returncode}:\n{server.stderr_tail(200)}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"`bauhinia serve` did not answer /healthz in {STARTUP_SECONDS}s:\n{server.stderr_tail(200)}")


@pytest.fixture(scope="package")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    port = _free_port()
    base_url = f"http://localhost:{port}"
    data_dir = tmp_path_factory.mktemp("browser-server")
    secret = secrets.token_urlsafe(48)
    settings = Settings(
        mode=Mode.DEV,
        database_url=database_url,
        data_dir=data_dir,
        public_url=base_url,
        secret_key=secret,
        log_level="WARNING",
    )
    Seeder(create_app(settings)).run(empty_all_tables)
    env = {key: value for key, value in os.environ.items() if not key.startswith("BAUHINIA_")}
    env.update(
        BAUHINIA_MODE="dev",
        BAUHINIA_DATA_DIR=str(data_dir),
        BAUHINIA_PUBLIC_URL=base_url,
        BAUHINIA_SECRET_KEY=secret,
        BAUHINIA_DATABASE_URL=database_url,
    )
    server = LiveServer(base_url, settings, data_dir / "server.stderr")
    with (data_dir / "server.stdout").open("wb") as out, server.stderr.open("wb") as err:
        process = subprocess.Popen(
            [str(BAUHINIA), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_until_healthy(process, base_url, server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="package")
def seeder(live_server: LiveServer) -> Seeder:
    return Seeder(create_app(live_server.settings))


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"browser tests need Debian's chromium at {CHROMIUM}: run `make browsers`")
    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="package")
def browser(playwright: Playwright, live_server: LiveServer) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def tabs(browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Tabs]:
    opened = Tabs(browser, live_server.base_url, [], [], [])
    yield opened
    report = request.node.stash.get(_REPORT, None)
    opened.close(failed=report is None or report.failed, name=request.node.name)


@pytest.fixture
def tab(tabs: Tabs) -> Tab:
    """A tab in a fresh context with JavaScript, in English."""
    return tabs.open()[0]


_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[_REPORT] = report
    if report.failed:
        server = getattr(item, "funcargs", {}).get("live_server")
        if isinstance(server, LiveServer):
            report.sections.append(("bauhinia serve: stderr (last lines)", server.stderr_tail()))
    return report
