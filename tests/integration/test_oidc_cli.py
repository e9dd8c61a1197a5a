"""`bauhinia clients …`, `bauhinia keys …` and the demo's clients, as an operator and an integrator use them."""

from __future__ import annotations

import json
import secrets
import stat
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from bauhinia.oidc.demo_clients import register_demo_clients
from bauhinia.settings import Settings
from tests.integration.test_cli import env_for, invoke
from tests.oidc_support import ASSERTION_TYPE, ISSUER, JSON


async def test_clients_add_list_disable(app: FastAPI, settings: Settings, tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    jwks_file = tmp_path / "keys.json"
    jwks_file.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    added = await invoke(
        [
            "clients",
            "add",
            "--client-id",
            "housing-portal",
            "--name",
            "Public housing",
            "--name-zh-hant",
            "公屋申請",
            "--redirect-uri",
            "https://housing.gov.hk/cb",
            "--scope",
            "openid",
            "--scope",
            "address",
            "--item",
            "address",
            "--jwks-file",
            str(jwks_file),
            "--fapi",
        ],
        env_for(settings),
    )
    assert added.exit_code == 0, added.output
    shown = json.loads(added.stdout)
    assert shown["metadata"]["fapi"] is True
    assert shown["metadata"]["require_pushed_authorization_requests"] is True
    assert "client_secret" not in shown
    listed = await invoke(["clients", "list"], env_for(settings))
    assert "housing-portal" in listed.stdout
    assert "active" in listed.stdout
    disabled = await invoke(["clients", "disable", "housing-portal"], env_for(settings))
    assert disabled.exit_code == 0
    assert "disabled" in (await invoke(["clients", "list"], env_for(settings))).stdout
    unknown = await invoke(["clients", "disable", "no-such"], env_for(settings))
    assert unknown.exit_code == 1


async def test_clients_add_generates_a_secret_once_and_refuses_bad_metadata(app: FastAPI, settings: Settings) -> None:
    added = await invoke(
        [
            "clients",
            "add",
            "--client-id",
            "dept-api",
            "--name",
            "Dept API",
            "--grant-type",
            "client_credentials",
            "--scope",
            "dept.read",
            "--auth-method",
            "client_secret_basic",
        ],
        env_for(settings),
    )
    assert added.exit_code == 0, added.output
    assert len(json.loads(added.stdout)["client_secret"]) >= 43
    duplicate = await invoke(
        [
            "clients",
            "add",
            "--client-id",
            "dept-api",
            "--name",
            "Again",
            "--grant-type",
            "client_credentials",
            "--scope",
            "dept.read",
            "--auth-method",
            "client_secret_basic",
        ],
        env_for(settings),
    )
    assert duplicate.exit_code == 1
    assert "already registered" in duplicate.output
    insecure = await invoke(
        [
            "clients",
            "add",
            "--client-id",
            "bad-uri",
            "--name",
            "Bad",
            "--redirect-uri",
            "http://evil.example/cb",
            "--auth-method",
            "client_secret_basic",
        ],
        env_for(settings),
    )
    assert insecure.exit_code == 1
    assert "https" in insecure.output


async def test_keys_rotate_keeps_the_old_keys_published(app: FastAPI, settings: Settings) -> None:
    first = await invoke(["keys", "rotate", "--activate-in", "0"], env_for(settings))
    assert first.exit_code == 0, first.output
    second = await invoke(["keys", "rotate", "--activate-in", "0"], env_for(settings))
    added = json.loads(second.stdout)["added"]
    listing = await invoke(["keys", "list"], env_for(settings))
    assert all(kid[:10] in listing.stdout for kid in added)
    assert listing.stdout.count("EC") >= 3  # the first key, the first rotation's and the second's


async def test_demo_clients_files_let_an_integrator_get_a_token(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with app.state.sessionmaker() as db:
        written = await register_demo_clients(db, app.state.oidc, tmp_path)
        again = await register_demo_clients(db, app.state.oidc, tmp_path)
    assert set(written) == {
        "housing-portal",
        "td-licensing",
        "ird-backend",
        "immd-backend",
        "td-backend",
        "housing-backend",
        "platform-operator",
    }
    assert again == []  # idempotent
    path = tmp_path / "clients" / "ird-backend.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    demo = json.loads(path.read_text())
    assert demo["scopes"] == ["ird.records"]
    assert demo["issuer"] == ISSUER
    key = ECKey.import_key(demo["private_jwk"])
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256", "kid": key.kid},
        {
            "iss": demo["client_id"],
            "sub": demo["client_id"],
            "aud": demo["issuer"],
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        },
        key,
    )
    response = await client.post(
        "/oidc/token",
        data={
            "grant_type": "client_credentials",
            "scope": "ird.records",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        headers=JSON,
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "ird.records"


async def test_purge_removes_expired_provider_records_only(app: FastAPI, settings: Settings) -> None:
    from datetime import timedelta

    from bauhinia.core.database import utcnow
    from bauhinia.oidc.models import SeenJti

    async with app.state.sessionmaker() as db:
        db.add_all(
            [
                SeenJti(key="old", expires_at=utcnow() - timedelta(seconds=1)),
                SeenJti(key="live", expires_at=utcnow() + timedelta(minutes=5)),
            ]
        )
        await db.commit()
    result = await invoke(["purge"], env_for(settings))
    assert result.exit_code == 0, result.output
    assert "and 1 expired OpenID provider records" in result.stdout
    async with app.state.sessionmaker() as db:
        assert await db.get(SeenJti, "live") is not None
        assert await db.get(SeenJti, "old") is None
