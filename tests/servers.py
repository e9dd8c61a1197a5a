"""A real `bauhinia serve` on a free port and Debian's chromium: what the browser and conformance tests share.

The server's public URL is http://localhost:<port>, not http://127.0.0.1:<port>: Chromium refuses an
IP address as a WebAuthn relying-party id ("127.0.0.1 is an invalid domain"). The server still only
listens on 127.0.0.1, and localhost is a secure context, so Secure cookies and passkeys work over HTTP.

Playwright's sync API marks its own asyncio loop as the running loop of the main thread between calls,
so nothing may call asyncio.run() in the main thread while the browser is up: the Seeder runs database
work (emptying tables, seeding people) in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Playwright, sync_playwright

from bauhinia.app import create_app
from bauhinia.identity import totp
from bauhinia.models import load_all_models
from bauhinia.settings import Mode, Settings
from tests.helpers import TestResident, empty_all_tables, make_resident

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
T = TypeVar("T")

load_all_models()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    settings: Settings
    stderr: Path
    env: dict[str, str] = field(default_factory=dict)  # the server's BAUHINIA_* environment, for CLI commands
    process: subprocess.Popen[bytes] | None = None  # the server process, for tests that kill it

    def stderr_tail(self, lines: int = 60) -> str:
        text = self.stderr.read_text(encoding="utf-8", errors="replace") if self.stderr.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def command(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `bauhinia ARGS…` against the server's database and settings, as an operator would."""
        return subprocess.run(
            [str(BAUHINIA), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


@dataclass
class Seeder:
    """Database work for the tests (through the real service) on an app built from the server's settings.

    Each call runs in a worker thread with its own event loop, and leaves no connection behind.
    """

    app: FastAPI

    def run(self, work: Callable[[FastAPI], Coroutine[Any, Any, T]]) -> T:
        async def call() -> T:
            try:
                return await work(self.app)
            finally:
                await self.app.state.engine.dispose()

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seeder") as pool:
            return pool.submit(asyncio.run, call()).result()

    def resident(self, *, with_totp: bool = True) -> TestResident:
        async def work(app: FastAPI) -> TestResident:
            return await make_resident(app, with_totp=with_totp)

        return self.run(work)

    def staff(self, username: str, roles: list[str] | None = None) -> tuple[str, str]:
        """A staff account; returns its password and authenticator-app key."""
        password = "-".join(secrets.token_urlsafe(6) for _ in range(4))
        secret = totp.new_secret()

        async def work(app: FastAPI) -> None:
            async with app.state.sessionmaker() as db:
                await app.state.identity.create_staff(
                    db, username, "Officer Browser", roles or ["officer"], password, secret
                )

        self.run(work)
        return password, secret


def _wait_until_healthy(process: subprocess.Popen[bytes], server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`bauhinia serve` exited with {process.returncode}:\n{server.stderr_tail(200)}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"`bauhinia serve` did not answer /healthz in {STARTUP_SECONDS}s:\n{server.stderr_tail(200)}")


@contextmanager
def bauhinia_serve(database_url: str, data_dir: Path) -> Iterator[LiveServer]:
    """`bauhinia serve` on 127.0.0.1 and a free port, published as http://localhost:<port>, on emptied tables."""
    port = free_port()
    base_url = f"http://localhost:{port}"
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
    server = LiveServer(base_url, settings, data_dir / "server.stderr", env)
    with (data_dir / "server.stdout").open("wb") as out, server.stderr.open("wb") as err:
        process = subprocess.Popen(
            [str(BAUHINIA), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    server = dataclasses.replace(server, process=process)
    try:
        _wait_until_healthy(process, server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def playwright_manager() -> Iterator[Playwright]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"browser tests need Debian's chromium at {CHROMIUM}: run `make browsers`")
    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()


@contextmanager
def chromium(playwright: Playwright) -> Iterator[Browser]:
    """Debian's chromium, headless (never a downloaded browser)."""
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield launched
    finally:
        launched.close()
