"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when BAUHINIA_TEST_DATABASE_URL is set),
an app per test on a clean database, and an HTTPS test client so Secure, __Host- cookies behave as in production."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bauhinia.app import create_app
from bauhinia.migrate import upgrade
from bauhinia.models import load_all_models
from bauhinia.settings import Mode, Settings
from tests.helpers import empty_all_tables

PUBLIC_URL = "https://bauhinia.test"
TEST_SECRET = "test-secret-that-is-long-enough-for-hkdf-0123456789"

load_all_models()


def _postgres_url() -> str | None:
    return os.environ.get("BAUHINIA_TEST_DATABASE_URL") or None


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A freshly migrated database for the whole run."""
    url = _postgres_url()
    if url is None:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        asyncio.run(_reset_postgres(url))
    upgrade(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        mode=Mode.DEV,
        database_url=database_url,
        data_dir=tmp_path,
        public_url=PUBLIC_URL,
        secret_key=TEST_SECRET,
        log_level="WARNING",
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    await empty_all_tables(application)
    yield application
    await application.state.engine.dispose()


@pytest.fixture
async def running_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app with its lifespan run, as a server runs it: its background work (the outbox's Deliverer) is
    going. The ``client`` fixture alone does not run the lifespan."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url=PUBLIC_URL, headers={"accept": "text/html"}, follow_redirects=False
    ) as http:
        yield http
