"""Platform settings from BAUHINIA_* environment variables.

Outside the ``demo`` and ``dev`` modes the settings refuse to load when they are
unsafe: a missing or short secret, a public URL that is not HTTPS.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bauhinia.core.hosts import LOOPBACK_HOSTS

MIN_SECRET_BYTES = 32


class Mode(StrEnum):
    DEMO = "demo"
    DEV = "dev"
    PRODUCTION = "production"


class UnsafeSettingsError(Exception):
    """Raised when settings would run a production deployment insecurely.

    Not a ValueError: pydantic would wrap a ValueError into a ValidationError and lose this type.
    """


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BAUHINIA_", extra="ignore")

    mode: Mode = Mode.PRODUCTION
    data_dir: Path = Path("bauhinia-data")
    database_url: str = ""
    # localhost, not 127.0.0.1: browsers refuse an IP address as a WebAuthn relying party id.
    public_url: str = "http://localhost:8000"
    secret_key: SecretStr | None = Field(
        default=None,
        description="Master secret (at least 32 bytes); per-purpose keys are derived from it with HKDF.",
    )
    sqlite_synchronous: str = "FULL"
    max_form_bytes: int = 64 * 1024
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    log_level: str = "INFO"
    oidc_persist_access_tokens: bool = Field(
        default=True,
        description="Record every client_credentials access token (needed to revoke one before it expires).",
    )
    oidc_dpop_nonce: bool = Field(default=True, description="Require server-issued nonces in DPoP proofs.")
    exchange_provider_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds the gateway waits for a provider's answer to a data request."
    )
    eproof_witnesses: list[str] = Field(
        default_factory=list,
        description="Witnesses whose cosignatures of the e-Proof log's checkpoints are accepted, as C2SP vkeys "
        "(Ed25519 cosignature keys, type 0x04). In demo and dev mode the demo's partner witness is added.",
    )
    outbox_poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds between the outbox worker's looks for messages committed by another node or left by a "
        "crashed process (this process's own messages go out at once).",
    )
    outbox_concurrency: int = Field(default=8, ge=1, le=64, description="Outbox messages sent at the same time.")
    outbox_timeout: float = Field(
        default=5.0, gt=0, le=30, description="Seconds an outbox delivery attempt may take before it counts as failed."
    )
    timezone: str = Field(default="Asia/Hong_Kong", description="The zone in which pages show times (stored as UTC).")

    @field_validator("eproof_witnesses")
    @classmethod
    def _witness_vkeys(cls, vkeys: list[str]) -> list[str]:
        from bauhinia.sdk.transparency import LogProofError, NoteVerifier

        for vkey in vkeys:
            try:
                NoteVerifier.from_vkey(vkey)
            except LogProofError as exc:
                raise ValueError(f"{vkey!r} is not a witness's verifier key: {exc}") from exc
        return vkeys

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Self:
        if self.mode in (Mode.DEMO, Mode.DEV):
            return self
        problems: list[str] = []
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(secret.encode()) < MIN_SECRET_BYTES:
            problems.append(f"BAUHINIA_SECRET_KEY must be set to at least {MIN_SECRET_BYTES} random bytes")
        if urlsplit(self.public_url).scheme != "https":
            problems.append("BAUHINIA_PUBLIC_URL must be an https:// URL in production")
        if problems:
            raise UnsafeSettingsError("; ".join(problems))
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'bauhinia.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def secure_transport(self) -> bool:
        """HTTPS, or plain HTTP on a loopback address (browsers treat it as secure)."""
        parts = urlsplit(self.public_url)
        return parts.scheme == "https" or parts.hostname in LOOPBACK_HOSTS

    def master_secret(self) -> bytes:
        """The master secret: configured, or (demo/dev only) generated once into the data directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()
