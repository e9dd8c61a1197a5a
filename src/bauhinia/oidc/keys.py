"""The provider's signing keys: stored sealed, published as a JWKS, rotated without downtime.

Rotation adds a new key that is published at once but signs only from ``active_from``
(after every JWKS cache has had time to fetch it); the key it replaces stays published
until everything it signed has expired. Every process reloads the key table often, so
no process keeps state another one needs.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey, KeySet, OKPKey
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core.database import utcnow
from bauhinia.core.keys import KeyRing
from bauhinia.oidc.models import SigningKey

KEY_TYPES = {"EC": "ES256", "OKP": "EdDSA"}
JWKS_MAX_AGE = timedelta(minutes=5)  # Cache-Control of the JWKS, and so the default activation delay
RELOAD_INTERVAL = 30.0  # seconds between reloads of the key table in each process
# The longest a token signed by a key stays valid (ID, access and logout tokens); see tokens.py.
LONGEST_SIGNED_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    kty: str
    key: ECKey | OKPKey
    active_from: datetime
    retired_at: datetime | None


def _sealing_context(kid: str) -> str:
    return f"oidc-signing-key:{kid}"


def _public_jwk(key: ECKey | OKPKey) -> dict[str, Any]:
    """As published: P-256 keys name their one algorithm; Ed25519 keys serve both EdDSA and Ed25519."""
    public = {**key.as_dict(private=False), "use": "sig"}
    if key.key_type == "EC":
        public["alg"] = "ES256"
    return public


def _generate(kty: str) -> ECKey | OKPKey:
    if kty == "EC":
        return ECKey.generate_key("P-256", auto_kid=True)
    return OKPKey.generate_key("Ed25519", auto_kid=True)


@dataclass
class SigningKeys:
    keyring: KeyRing
    _keys: list[LoadedKey] = field(default_factory=list)
    _loaded_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ensure(self, db: AsyncSession) -> None:
        """Create the first key of each type when there is none (a new installation)."""
        existing = set((await db.scalars(select(SigningKey.kty).distinct())).all())
        for kty in KEY_TYPES:
            if kty not in existing:
                await self._add(db, kty, utcnow())
        await db.commit()
        await self.load(db)

    async def rotate(self, db: AsyncSession, activate_in: timedelta = JWKS_MAX_AGE) -> list[str]:
        """A new key of each type, signing from ``now + activate_in``; the old ones retire then."""
        start = utcnow() + activate_in
        current = (await db.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None)))).all()
        for old in current:
            old.retired_at = start
            old.publish_until = start + LONGEST_SIGNED_LIFETIME
        added = [await self._add(db, kty, start) for kty in KEY_TYPES]
        await db.commit()
        await self.load(db)
        return added

    async def _add(self, db: AsyncSession, kty: str, active_from: datetime) -> str:
        key = _generate(kty)
        public = _public_jwk(key)
        private = json.dumps(key.as_dict(private=True)).encode()
        db.add(
            SigningKey(
                kid=key.kid,
                kty=kty,
                public_jwk=public,
                private_sealed=self.keyring.seal(private, _sealing_context(key.kid or "")),
                created_at=utcnow(),
                active_from=active_from,
            )
        )
        return key.kid or ""

    async def load(self, db: AsyncSession) -> None:
        now = utcnow()
        rows = (
            await db.scalars(
                select(SigningKey)
                .where(or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > now))
                .order_by(SigningKey.active_from)
            )
        ).all()
        loaded = []
        for row in rows:
            private = json.loads(self.keyring.open(row.private_sealed, _sealing_context(row.kid)))
            key: ECKey | OKPKey = ECKey.import_key(private) if row.kty == "EC" else OKPKey.import_key(private)
            loaded.append(LoadedKey(row.kid, row.kty, key, row.active_from, row.retired_at))
        self._keys, self._loaded_at = loaded, time.monotonic()

    async def refresh(self, db: AsyncSession) -> None:
        """Reload the table when the cache is older than RELOAD_INTERVAL (one process rotated)."""
        if time.monotonic() - self._loaded_at < RELOAD_INTERVAL and self._keys:
            return
        async with self._lock:
            if time.monotonic() - self._loaded_at >= RELOAD_INTERVAL or not self._keys:
                await self.load(db)
                if not self._keys:
                    await self.ensure(db)

    def current(self, kty: str) -> LoadedKey:
        """The newest key of this type that has started signing."""
        now = utcnow()
        candidates = [k for k in self._keys if k.kty == kty and k.active_from <= now]
        if not candidates:
            raise LookupError(f"no active {kty} signing key; run `bauhinia migrate` or `bauhinia keys rotate`")
        return candidates[-1]

    def published(self) -> dict[str, Any]:
        """The JWKS: every key not yet past its publication end, including keys not yet signing."""
        return {"keys": [_public_jwk(loaded.key) for loaded in self._keys]}

    def verification_keys(self) -> KeySet:
        return KeySet([k.key for k in self._keys])

    def summary(self) -> list[dict[str, Any]]:
        return [
            {"kid": k.kid, "kty": k.kty, "active_from": k.active_from.isoformat(), "retired_at": k.retired_at}
            for k in self._keys
        ]
