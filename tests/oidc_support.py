"""Helpers for the OpenID provider's tests: clients with keys, assertions, DPoP proofs, PKCE,
and the authorization flow driven through the real pages."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey

from bauhinia.oidc.schemas import ClientMetadata
from tests.conftest import PUBLIC_URL
from tests.helpers import CSRF_PATTERN, TestResident, sign_in

ISSUER = PUBLIC_URL
TOKEN_URL = f"{ISSUER}/oidc/token"
USERINFO_URL = f"{ISSUER}/oidc/userinfo"
PAR_URL = f"{ISSUER}/oidc/par"
REDIRECT_URI = "https://rp.example.hk/callback"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JSON = {"accept": "application/json"}


@dataclass
class TestClient:
    __test__ = False
    client_id: str
    key: ECKey
    secret: str | None
    metadata: ClientMetadata


async def register_client(app: FastAPI, client_id: str = "rp-one", **overrides: Any) -> TestClient:
    key = ECKey.generate_key("P-256", auto_kid=True)
    values: dict[str, Any] = {
        "client_id": client_id,
        "client_name": {"en": "Test service", "zh-Hant": "測試服務", "zh-Hans": "测试服务"},
        "department": "Test Department",
        "purpose": {"en": "To test the provider."},
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "profile", "email", "phone", "address"],
        "items": ["name", "birthdate", "gender", "address", "phone", "email"],
        "redirect_uris": [REDIRECT_URI],
        "post_logout_redirect_uris": ["https://rp.example.hk/signed-out"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.as_dict(private=False)]},
    }
    values.update(overrides)
    metadata = ClientMetadata.model_validate(values)
    async with app.state.sessionmaker() as db:
        secret = await app.state.oidc.clients.register(db, metadata)
        await db.commit()
    return TestClient(client_id, key, secret, metadata)


def assertion(
    client: TestClient,
    *,
    aud: str | list[str] = ISSUER,
    jti: str | None = None,
    lifetime: int = 60,
    alg: str = "ES256",
    key: Any = None,
    claims: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    body = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or secrets.token_urlsafe(16),
        **(claims or {}),
    }
    return jwt.encode({"alg": alg, "kid": client.key.kid}, body, key or client.key, algorithms=[alg])


def client_auth(client: TestClient, **kwargs: Any) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion(client, **kwargs)}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64(hashlib.sha256(verifier.encode()).digest())


@dataclass
class DPoPKey:
    key: ECKey
    nonce: str | None = None

    @classmethod
    def new(cls) -> DPoPKey:
        return cls(ECKey.generate_key("P-256"))

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        jti: str | None = None,
        iat: int | None = None,
        nonce: str | None = None,
        typ: str = "dpop+jwt",
    ) -> str:
        claims: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": iat if iat is not None else int(time.time()),
        }
        if nonce or self.nonce:
            claims["nonce"] = nonce or self.nonce
        if access_token is not None:
            claims["ath"] = b64(hashlib.sha256(access_token.encode()).digest())
        header = {"alg": "ES256", "typ": typ, "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])


async def post_token(
    http: httpx.AsyncClient, form: dict[str, str], dpop: DPoPKey | None = None, **headers: str
) -> httpx.Response:
    """POST to the token endpoint; with DPoP, fetch a server nonce first when asked (as real clients do)."""
    for _ in range(2):
        sent = {**JSON, **headers}
        if dpop is not None:
            sent["DPoP"] = dpop.proof("POST", TOKEN_URL)
        response = await http.post("/oidc/token", data=form, headers=sent)
        if dpop is not None and response.status_code == 400 and response.json().get("error") == "use_dpop_nonce":
            dpop.nonce = response.headers["DPoP-Nonce"]
            continue
        if dpop is not None and "DPoP-Nonce" in response.headers:
            dpop.nonce = response.headers["DPoP-Nonce"]
        return response
    return response


async def get_userinfo(http: httpx.AsyncClient, access_token: str, dpop: DPoPKey | None) -> httpx.Response:
    for _ in range(2):
        if dpop is None:
            return await http.get("/oidc/userinfo", headers={**JSON, "Authorization": f"Bearer {access_token}"})
        headers = {
            **JSON,
            "Authorization": f"DPoP {access_token}",
            "DPoP": dpop.proof("GET", USERINFO_URL, access_token=access_token),
        }
        response = await http.get("/oidc/userinfo", headers=headers)
        if response.status_code == 401 and 'error="use_dpop_nonce"' in response.headers.get("www-authenticate", ""):
            dpop.nonce = response.headers["DPoP-Nonce"]
            continue
        return response
    return response


def authorize_query(client: TestClient, challenge: str, **extra: str) -> str:
    params = {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return urlencode({k: v for k, v in params.items() if v != ""})


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def approve(http: httpx.AsyncClient, interaction: str, items: list[str] | None, remember: bool = False) -> str:
    """Load the consent page and approve the given items (None: as ticked). Returns the redirect."""
    page = await http.get(interaction)
    assert page.status_code == 200, page.text[:400]
    token_match = CSRF_PATTERN.search(page.text)
    assert token_match, "no form on the consent page"
    if items is None:
        import re

        items = re.findall(r'name="item" type="checkbox" value="([a-z]+)" checked', page.text)
    form: list[tuple[str, str]] = [("csrf_token", token_match.group(1)), ("decision", "approve")]
    form += [("item", item) for item in items]
    if remember:
        form.append(("remember", "yes"))
    response = await http.post(
        f"{interaction}/consent",
        content=urlencode(form),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 303, response.text[:400]
    return response.headers["location"]


async def code_flow(
    http: httpx.AsyncClient,
    client: TestClient,
    resident: TestResident | None,
    *,
    items: list[str] | None = None,
    signed_in: bool = False,
    **extra: str,
) -> tuple[str, str]:
    """Sign in (unless already), authorize and consent; returns (code, verifier)."""
    if resident is not None and not signed_in:
        await sign_in(http, resident)
    verifier, challenge = pkce()
    start = await http.get(f"/oidc/authorize?{authorize_query(client, challenge, **extra)}")
    assert start.status_code == 303, start.text[:400]
    location = start.headers["location"]
    if location.startswith("/oidc/interaction/"):
        step = await http.get(location)
        location = step.headers["location"] if step.status_code == 303 else await approve(http, location, items)
    query = query_of(location)
    assert "code" in query, location
    return query["code"], verifier


def code_form(code: str, verifier: str, client: TestClient) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        **client_auth(client),
    }


async def verify_resident(app: FastAPI, resident: TestResident) -> None:
    """Make the resident ``verified`` as an officer at a counter would."""
    service = app.state.identity
    async with app.state.sessionmaker() as db:
        officer = await service.create_staff(
            db,
            f"officer{secrets.token_hex(3)}",
            "Officer",
            ["officer"],
            "violet harbour tram lantern",
            "JBSWY3DPEHPK3PXP",
        )
        await service.verify_identity(
            db,
            officer,
            resident.id,
            id_number=resident.id_number,
            channel="counter",
            document="hkid-card",
            location="Test counter",
        )
