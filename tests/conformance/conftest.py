"""A real `bauhinia serve` and Debian's chromium for the conformance tests that drive real clients.

Started by tests.servers, as for the browser tests, when a test asks for them. Module-scoped, not
package-scoped: Playwright's sync API marks its own event loop as the main thread's running loop while
the browser is up, so the browser must be gone before any async test of this package runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright

from bauhinia.app import create_app
from tests.servers import LiveServer, Seeder, bauhinia_serve, chromium, playwright_manager


@pytest.fixture(scope="module")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with bauhinia_serve(database_url, tmp_path_factory.mktemp("conformance-server")) as server:
        yield server


@pytest.fixture(scope="module")
def seeder(live_server: LiveServer) -> Seeder:
    return Seeder(create_app(live_server.settings))


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with playwright_manager() as manager:
        yield manager


@pytest.fixture(scope="module")
def browser(playwright: Playwright, live_server: LiveServer) -> Iterator[Browser]:
    with chromium(playwright) as launched:
        yield launched
