"""Settings refuse to run production unsafely, and let demo and dev start with defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bauhinia.settings import MIN_SECRET_BYTES, Mode, Settings, UnsafeSettingsError

GOOD_SECRET = "s" * MIN_SECRET_BYTES


@pytest.fixture(autouse=True)
def _no_bauhinia_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes counts, not the machine's BAUHINIA_* variables."""
    for name in list(os.environ):
        if name.startswith("BAUHINIA_"):
            monkeypatch.delenv(name)


def test_production_is_the_default_mode() -> None:
    with pytest.raises(UnsafeSettingsError):
        Settings()


def test_production_refuses_a_missing_secret() -> None:
    with pytest.raises(UnsafeSettingsError, match="BAUHINIA_SECRET_KEY"):
        Settings(mode=Mode.PRODUCTION, public_url="https://id.example.gov.hk")


def test_production_refuses_a_short_secret() -> None:
    with pytest.raises(UnsafeSettingsError, match="BAUHINIA_SECRET_KEY"):
        Settings(mode=Mode.PRODUCTION, public_url="https://id.example.gov.hk", secret_key="s" * (MIN_SECRET_BYTES - 1))


def test_production_counts_secret_bytes_not_characters() -> None:
    # 11 three-byte characters are 33 bytes: long enough.
    Settings(mode=Mode.PRODUCTION, public_url="https://id.example.gov.hk", secret_key="紫" * 11)


def test_production_refuses_a_plain_http_public_url() -> None:
    with pytest.raises(UnsafeSettingsError, match="BAUHINIA_PUBLIC_URL"):
        Settings(mode=Mode.PRODUCTION, public_url="http://id.example.gov.hk", secret_key=GOOD_SECRET)


def test_production_reports_every_problem_at_once() -> None:
    with pytest.raises(UnsafeSettingsError) as caught:
        Settings(mode=Mode.PRODUCTION, public_url="http://id.example.gov.hk")
    assert "BAUHINIA_SECRET_KEY" in str(caught.value)
    assert "BAUHINIA_PUBLIC_URL" in str(caught.value)


def test_production_refuses_unsafe_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAUHINIA_MODE", "production")
    monkeypatch.setenv("BAUHINIA_PUBLIC_URL", "https://id.example.gov.hk")
    monkeypatch.setenv("BAUHINIA_SECRET_KEY", "short")
    with pytest.raises(UnsafeSettingsError):
        Settings()


def test_production_accepts_safe_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAUHINIA_PUBLIC_URL", "https://id.example.gov.hk")
    monkeypatch.setenv("BAUHINIA_SECRET_KEY", GOOD_SECRET)
    settings = Settings()
    assert settings.mode is Mode.PRODUCTION
    assert settings.secure_transport
    assert settings.master_secret() == GOOD_SECRET.encode()
    assert GOOD_SECRET not in repr(settings)


@pytest.mark.parametrize("mode", [Mode.DEMO, Mode.DEV])
def test_demo_and_dev_accept_the_defaults(mode: Mode, tmp_path: Path) -> None:
    settings = Settings(mode=mode, data_dir=tmp_path)
    assert settings.public_url.startswith("http://")
    assert settings.secure_transport  # loopback HTTP counts as secure for browsers
    secret = settings.master_secret()
    assert len(secret) >= MIN_SECRET_BYTES
    assert settings.master_secret() == secret  # generated once, then kept
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_database_url_defaults_to_sqlite_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(mode=Mode.DEV, data_dir=tmp_path)
    assert settings.is_sqlite
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{(tmp_path / 'bauhinia.db').resolve()}"
    postgres = Settings(mode=Mode.DEV, database_url="postgresql+asyncpg://db/bauhinia")
    assert not postgres.is_sqlite
    assert postgres.resolved_database_url == "postgresql+asyncpg://db/bauhinia"


def test_plain_http_on_another_host_is_not_secure_transport() -> None:
    assert not Settings(mode=Mode.DEV, public_url="http://bauhinia.internal").secure_transport
