"""A real `bauhinia serve` and Debian's chromium, driven through Playwright's sync API.

One server and one browser for the whole browser package; a fresh browser context per test.

Two things about the event loop. Playwright's sync API marks its own asyncio loop as the running
loop of the main thread between calls, so nothing here may call asyncio.run() in the main thread
while the browser is up: database work (emptying tables, seeding people) runs in a worker thread.
And the browser is package-scoped, so it is gone, and the thread has no running loop, before
pytest-asyncio runs the async tests of the other packages.

The server and the browser are started by tests.servers, which the conformance tests share.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Playwright

from bauhinia.app import create_app
from tests.browser.support import Tab, Tabs
from tests.servers import LiveServer, Seeder, bauhinia_serve, chromium, playwright_manager

# --- the server -----------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with bauhinia_serve(database_url, tmp_path_factory.mktemp("browser-server")) as server:
        yield server


@pytest.fixture(scope="package")
def seeder(live_server: LiveServer) -> Seeder:
    return Seeder(create_app(live_server.settings))


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with playwright_manager() as manager:
        yield manager


@pytest.fixture(scope="package")
def browser(playwright: Playwright, live_server: LiveServer) -> Iterator[Browser]:
    with chromium(playwright) as launched:
        yield launched


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
