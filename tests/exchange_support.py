"""The gateway's test bench: the demo registry (members, systems, items, purpose, keys on disk),
test providers that follow the protocol with joserfc (independently of the SDK) and can misbehave
on demand, and a consumer that holds its own keys."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from joserfc import jwe, jws, jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bauhinia.exchange.demo import register_demo_members
from bauhinia.exchange.models import MemberSystem
from bauhinia.oidc.demo_clients import register_demo_clients
from tests.conftest import PUBLIC_URL
from tests.helpers import CSRF_PATTERN, TestResident, make_resident, sign_in
from tests.in_loop import InLoopServer, serve_in_loop
from tests.oidc_support import ASSERTION_TYPE, TOKEN_URL

CONSUMER = "HK/GOV/HD/applications"
IMMD, IRD, TD = "HK/GOV/IMMD/residency", "HK/GOV/IRD/assessments", "HK/GOV/TD/licensing"
ADDRESS, INCOME, LICENCE = "immd.residential-address", "ird.assessable-income", "td.driving-licence"
RETURN_URI = f"{PUBLIC_URL}/demo/housing/consent-done"
PURPOSE = "housing.public-rental-application"
PATHS = {IMMD: "immigration", IRD: "inland-revenue", TD: "transport"}
VALUES: dict[str, Any] = {
    ADDRESS: {"building": "Harmony Court", "district": "Kwun Tong", "region": "Kowloon"},
    INCOME: {"year_of_assessment": "2025/26", "assessable_income_hkd": 312000},
    LICENCE: {"licence_number": "CTM853271", "classes": ["1"], "expiry_date": "2031-05-31", "status": "valid"},
}
ITEMS_OF = {IMMD: ADDRESS, IRD: INCOME, TD: LICENCE}


def member_file(data_dir: Path, system_id: str) -> dict[str, Any]:
    _, _, code, subsystem = system_id.split("/")
    loaded: dict[str, Any] = json.loads((data_dir / "members" / f"{code}-{subsystem}.json").read_text())
    return loaded


@dataclass
class TestProvider:
    """A provider system following docs/exchange-protocol.md §4; ``behaviour`` makes it misbehave."""

    __test__ = False
    system_id: str
    signing_key: ECKey
    gateway_keys: KeySet
    behaviour: str = "honest"
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def answer(self, request: Request) -> Response:
        if self.behaviour == "hang":
            await asyncio.sleep(30)
        if self.behaviour == "500":
            return Response("Internal Server Error", status_code=500)
        if self.behaviour == "garbage":
            return Response(b"<html>\x00\xff not json", status_code=200, media_type="text/html")
        if self.behaviour == "huge":
            return JSONResponse({"response": "A" * (1024 * 1024 + 10)})
        if self.behaviour == "redirect":
            return Response(status_code=307, headers={"location": "http://127.0.0.1:9/elsewhere"})
        forwarded = (await request.json())["request"]
        claims = json.loads(jws.deserialize_compact(forwarded, self.gateway_keys, algorithms=["ES256"]).payload)
        self.seen.append(claims)
        if self.behaviour == "deny":
            return JSONResponse({"response": self.sign(self.claims(claims, forwarded, "denied", [], None))})
        released = list(claims["items"])
        if self.behaviour == "over-release":
            released += [i for i in ITEMS_OF.values() if i not in released][:1]
        payload = {
            "request_id": claims["request_id"],
            "items": {i: {"value": VALUES[i], "source": self.system_id, "as_of": "2026-01-01"} for i in released},
        }
        consumer_key = ECKey.import_key(claims["consumer_key"])
        header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": consumer_key.kid}
        data = jwe.encrypt_compact(header, json.dumps(payload).encode(), consumer_key)
        response = self.claims(claims, forwarded, "delivered", released, data)
        if self.behaviour == "wrong-hash":
            response["request_hash"] = "A" * 43
        key = ECKey.generate_key("P-256", auto_kid=True) if self.behaviour == "wrong-key" else self.signing_key
        return JSONResponse({"response": self.sign(response, key)})

    def claims(
        self, request: dict[str, Any], forwarded: str, status: str, items: list[str], data: str | None
    ) -> dict[str, Any]:
        from bauhinia.exchange.forwarding import request_hash

        claims: dict[str, Any] = {
            "iss": self.system_id,
            "aud": request["consumer"],
            "iat": int(time.time()),
            "request_id": request["request_id"],
            "request_hash": request_hash(forwarded),
            "status": status,
            "items": items,
        }
        if data is not None:
            claims["data"] = data
        else:
            claims["reason"] = "No record for this resident."
        return claims

    def sign(self, claims: dict[str, Any], key: ECKey | None = None) -> str:
        key = key or self.signing_key
        header = {"alg": "ES256", "typ": "exchange-response+jwt", "kid": key.kid}
        return jwt.encode(header, claims, key, algorithms=["ES256"])


@dataclass
class Exchange:
    """The demo registry in a test app, its three providers, and the Housing consumer's keys."""

    app: FastAPI
    http: httpx.AsyncClient
    data_dir: Path
    providers: dict[str, TestProvider]
    consumer_headers: dict[str, str]
    consumer_encryption_key: ECKey
    signed_in: str | None = None
    served: InLoopServer | None = None  # the test providers, over real HTTP

    async def aclose(self) -> None:
        """Stop the providers and close the gateway's connections to them (the test app has no lifespan)."""
        await self.app.state.exchange.forwarder.close()
        if self.served is not None:
            await self.served.aclose()

    async def request_consent(self, **overrides: Any) -> httpx.Response:
        body = {
            "purpose": PURPOSE,
            "items": [{"id": ADDRESS}, {"id": INCOME, "optional": True}, {"id": LICENCE, "optional": True}],
            "mode": "once",
            "valid_for": 600,
            "max_fetches": 1,
            "data_life": 0,
            "redirect_uri": RETURN_URI,
            "state": secrets.token_urlsafe(12),
            **overrides,
        }
        return await self.http.post("/api/exchange/consents", json=body, headers=self.consumer_headers)

    async def active_consent(self, resident: TestResident, left_out: tuple[str, ...] = (), **overrides: Any) -> str:
        """A consent request approved by the resident through the real review page."""
        created = await self.request_consent(**overrides)
        assert created.status_code == 201, created.text
        consent_id: str = created.json()["id"]
        if self.signed_in != resident.id:  # a TOTP code is good once: sign in once per resident
            self.http.cookies.clear()
            await sign_in(self.http, resident)
            self.signed_in = resident.id
        decided = await decide(self.http, consent_id, "approve", left_out)
        assert decided.status_code == 303, decided.text[:500]
        assert "status=ACTIVE" in decided.headers["location"]
        return consent_id

    async def fetch(self, consent_id: str, **extra: Any) -> httpx.Response:
        body = {"consent_id": consent_id, **extra}
        return await self.http.post("/api/exchange/data-requests", json=body, headers=self.consumer_headers)

    def open_response(self, response: str) -> dict[str, Any]:
        """What the consumer reads in a provider's response: only its own key opens it."""
        claims = json.loads(jws.extract_compact(response.encode()).payload)
        opened = jwe.decrypt_compact(claims["data"], self.consumer_encryption_key)
        assert opened.plaintext is not None
        content: dict[str, Any] = json.loads(opened.plaintext)
        return content


async def decide(
    http: httpx.AsyncClient, consent_id: str, action: str, left_out: tuple[str, ...] = ()
) -> httpx.Response:
    """The resident's answer on the gateway's review page: the optional items it offers stay ticked
    unless left out."""
    page = await http.get(f"/exchange/consents/{consent_id}")
    assert page.status_code == 200, page.text[:500]
    token = CSRF_PATTERN.search(page.text)
    assert token is not None
    offered = re.findall(r'name="include" type="checkbox" value="([^"]+)"', page.text)
    form = {"csrf_token": token.group(1), "action": action, "include": [i for i in offered if i not in left_out]}
    return await http.post(f"/exchange/consents/{consent_id}", data=form)


async def client_token(http: httpx.AsyncClient, data_dir: Path, client_id: str) -> str:
    private = json.loads((data_dir / "clients" / f"{client_id}.json").read_text())["private_jwk"]
    key = ECKey.import_key(private)
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": PUBLIC_URL, "iat": now, "exp": now + 60}
    claims["jti"] = secrets.token_urlsafe(16)
    assertion = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    answer = await http.post(TOKEN_URL, data=form, headers={"accept": "application/json"})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def demo_exchange(app: FastAPI, http: httpx.AsyncClient, data_dir: Path) -> Exchange:
    async with app.state.sessionmaker() as db:
        await register_demo_clients(db, app.state.oidc, data_dir)
        await register_demo_members(db, app.state.exchange, data_dir)
    token = await client_token(http, data_dir, "housing-backend")  # also loads the gateway's keys
    gateway_keys = app.state.oidc.keys.verification_keys()
    providers = {
        system_id: TestProvider(
            system_id, ECKey.import_key(member_file(data_dir, system_id)["signing_private_jwk"]), gateway_keys
        )
        for system_id in PATHS
    }
    routes = [
        Route(f"/demo/{path}/exchange/data-requests", providers[system_id].answer, methods=["POST"])
        for system_id, path in PATHS.items()
    ]
    served = await serve_in_loop(Starlette(routes=routes))
    await point_providers_at(app, served.base_url)
    consumer = member_file(data_dir, CONSUMER)
    return Exchange(
        app,
        http,
        data_dir,
        providers,
        {"accept": "application/json", "Authorization": f"Bearer {token}"},
        ECKey.import_key(consumer["encryption_private_jwk"]),
        served=served,
    )


async def point_providers_at(app: FastAPI, base_url: str) -> None:
    """The demo providers' registered data endpoints, moved to a server on 127.0.0.1 (test setup only)."""
    for system_id in PATHS:
        await point_provider_at(app, system_id, base_url)


async def point_provider_at(app: FastAPI, system_id: str, base_url: str) -> None:
    async with app.state.sessionmaker() as db:
        await db.execute(
            update(MemberSystem)
            .where(MemberSystem.id == system_id)
            .values(data_endpoint=f"{base_url}/demo/{PATHS[system_id]}/exchange")
        )
        await db.commit()
    app.state.exchange.consents.systems.forget()


async def adult(app: FastAPI) -> TestResident:
    return await make_resident(app)
