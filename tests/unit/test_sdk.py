"""The department SDK against a fake gateway served through httpx.MockTransport: the token dance (private_key_jwt,
DPoP with server nonces), the provider's checks of forwarded requests (each attack refused with its reason),
the consumer's end-to-end checks of providers' answers, receipts and webhooks. Misbehaving parties are built
here with joserfc directly, independently of the SDK's own JOSE code."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from joserfc import jwe, jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey

from bauhinia.sdk import (
    ConsumerClient,
    ForwardedRequest,
    GatewayClient,
    GatewayProblem,
    ProviderHelper,
    ReleasedValue,
    RequestRefused,
    ResponseRefused,
    SystemCredentials,
    request_hash,
)

GW = "https://gateway.example.hk"
TOKEN_URL = f"{GW}/oidc/token"
HOUSING, IMMD, TD = "HK/GOV/HD/applications", "HK/GOV/IMMD/residency", "HK/GOV/TD/licensing"
ADDRESS, LICENCE, INCOME = "immd.residential-address", "td.driving-licence", "ird.assessable-income"
PURPOSE = "housing.public-rental-application"
CONSENT_ID = "5f0c6f6e-3a53-4c1e-9a43-1f7e0c2a9b11"
VALUES: dict[str, Any] = {
    ADDRESS: {"building": "Harmony Court", "district": "Kwun Tong", "region": "Kowloon"},
    LICENCE: {"licence_number": "CTM853271", "classes": ["1"], "expiry_date": "2031-05-31", "status": "valid"},
    INCOME: {"year_of_assessment": "2025/26", "assessable_income_hkd": 312000},
}
PROBLEM = {"content-type": "application/problem+json"}

Provider = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sha256(text: str) -> str:
    return b64(hashlib.sha256(text.encode()).digest())


def sig_key(kid: str | None = None) -> ECKey:
    if kid is not None:
        return ECKey.generate_key("P-256", {"use": "sig", "alg": "ES256", "kid": kid})
    return ECKey.generate_key("P-256", {"use": "sig", "alg": "ES256"}, auto_kid=True)


def enc_key() -> ECKey:
    return ECKey.generate_key("P-256", {"use": "enc", "alg": "ECDH-ES"}, auto_kid=True)


def sign(claims: dict[str, Any], key: ECKey, typ: str, **header: Any) -> str:
    protected = {"alg": "ES256", "typ": typ, "kid": key.kid, **header}
    return jws.serialize_compact(protected, json.dumps(claims), key, algorithms=["ES256"])


def now() -> int:
    return int(time.time())


@dataclass
class System:
    id: str
    client_id: str
    client: ECKey = field(default_factory=sig_key)
    signing: ECKey = field(default_factory=sig_key)
    encryption: ECKey = field(default_factory=enc_key)

    def credentials(self) -> SystemCredentials:
        return SystemCredentials(
            system_id=self.id,
            client_id=self.client_id,
            gateway=GW + "/",
            client_private_jwk=self.client.as_dict(private=True),
            signing_private_jwk=self.signing.as_dict(private=True),
            encryption_private_jwk=self.encryption.as_dict(private=True),
        )

    def registration(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "signing_jwks": {"keys": [self.signing.as_dict(private=False)]},
            "encryption_jwks": {"keys": [self.encryption.as_dict(private=False)]},
        }


def problem(status: int, title: str, detail: str, **headers: str) -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers={**PROBLEM, **headers})


class FakeGateway:
    """The gateway's HTTP surface as the SDK sees it: discovery, token endpoint (private_key_jwt, DPoP with
    nonces), JWKS, the registry's systems, consents and data requests (forwarding to in-test providers)."""

    def __init__(self, systems: list[System]) -> None:
        self.key = sig_key()
        self.published = [self.key]
        self.systems = {s.id: s for s in systems}
        self.nonce = "nonce-one"
        self.expires_in = 300
        self.tokens: dict[str, str] = {}  # access token -> thumbprint of its DPoP key
        self.assertions: list[dict[str, Any]] = []
        self.token_proofs: list[dict[str, Any]] = []
        self.resource_calls: list[tuple[httpx.Request, dict[str, Any]]] = []
        self.paths: list[str] = []
        self.jwks_fetches = 0
        self.consents: dict[str, dict[str, Any]] = {}
        self.consent_bodies: list[dict[str, Any]] = []
        self.providers: dict[str, Provider] = {}
        self.tamper: Callable[[dict[str, Any]], None] = lambda answer: None
        self.refusal: httpx.Response | None = None
        self.issuer = GW

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        return sign(claims, self.key, typ)

    def rotate(self) -> None:
        self.key = sig_key()
        self.published.append(self.key)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.issuer, "token_endpoint": TOKEN_URL})
        if path == "/jwks.json":
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.published]})
        if path == "/oidc/token":
            return self.token(request)
        refused = self.check_resource(request)
        if refused is not None:
            return refused
        return await self.route(request, path)

    async def route(self, request: httpx.Request, path: str) -> httpx.Response:
        if path.startswith("/api/exchange/systems/"):
            system = self.systems.get(path.removeprefix("/api/exchange/systems/"))
            return httpx.Response(200, json=system.registration()) if system else problem(404, "Not Found", "No.")
        if path == "/api/exchange/consents" and request.method == "POST":
            self.consent_bodies.append(json.loads(request.content))
            answer = {"id": CONSENT_ID, "status": "PENDING", "review_url": f"{GW}/exchange/consents/{CONSENT_ID}"}
            return httpx.Response(201, json={**answer, "expires_at": "2026-11-01T10:15:00+00:00"})
        if path.startswith("/api/exchange/consents/"):
            consent = self.consents.get(path.rsplit("/", 1)[1])
            return httpx.Response(200, json=consent) if consent else problem(404, "Not Found", "No such consent.")
        if path == "/api/exchange/data-requests":
            return self.refusal or await self.data_request(json.loads(request.content))
        return problem(404, "Not Found", path)

    # --- OAuth ------------------------------------------------------------------------------------

    def proof(self, request: httpx.Request, method: str, url: str) -> dict[str, Any]:
        token = request.headers["DPoP"]
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert header["typ"] == "dpop+jwt"
        assert header["alg"] == "ES256"
        assert "d" not in header["jwk"]
        claims: dict[str, Any] = json.loads(
            jws.deserialize_compact(token, ECKey.import_key(header["jwk"]), algorithms=["ES256"]).payload
        )
        assert claims["htm"] == method
        assert claims["htu"] == url
        assert abs(claims["iat"] - now()) < 5
        claims["jkt"] = ECKey.import_key(header["jwk"]).thumbprint()
        return claims

    def token(self, request: httpx.Request) -> httpx.Response:
        proof = self.proof(request, "POST", TOKEN_URL)
        self.token_proofs.append(proof)
        form = dict(parse_qsl(request.content.decode()))
        assertion = form["client_assertion"]
        named = json.loads(jws.extract_compact(assertion.encode()).payload)["iss"]
        client = next(s for s in self.systems.values() if s.client_id == named)
        claims = jwt.decode(assertion, client.client, algorithms=["ES256"]).claims
        self.assertions.append(claims)
        assert form["grant_type"] == "client_credentials"
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        if proof.get("nonce") != self.nonce:
            error = {"error": "use_dpop_nonce", "error_description": "a nonce is required"}
            return httpx.Response(400, json=error, headers={"DPoP-Nonce": self.nonce})
        access = f"at-{len(self.tokens) + 1}"
        self.tokens[access] = proof["jkt"]
        body = {"access_token": access, "token_type": "DPoP", "expires_in": self.expires_in}
        return httpx.Response(200, json=body, headers={"DPoP-Nonce": self.nonce})

    def check_resource(self, request: httpx.Request) -> httpx.Response | None:
        scheme, _, access = request.headers.get("Authorization", "").partition(" ")
        if scheme != "DPoP" or access not in self.tokens:
            return problem(401, "Unauthorized", "No live token.", **{"WWW-Authenticate": 'DPoP error="invalid_token"'})
        proof = self.proof(request, request.method, f"{GW}{request.url.path}")
        self.resource_calls.append((request, proof))
        assert proof["jkt"] == self.tokens[access]
        assert proof["ath"] == sha256(access)
        if proof.get("nonce") != self.nonce:
            challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": self.nonce}
            return problem(401, "Unauthorized", "A fresh nonce is required.", **challenge)
        return None

    # --- consents and data requests ---------------------------------------------------------------

    def artefact(self, **overrides: Any) -> str:
        moment = now()
        claims = {
            "iss": GW,
            "jti": CONSENT_ID,
            "iat": moment,
            "nbf": moment,
            "exp": moment + 3600,
            "consumer": HOUSING,
            "purpose": PURPOSE,
            "items": [{"id": ADDRESS, "version": 1, "provider": IMMD}, {"id": LICENCE, "version": 1, "provider": TD}],
            "mode": "once",
            "max_fetches": 1,
            "data_life": 0,
            **overrides,
        }
        return self.sign(claims, "consent+jwt")

    def approve(self, artefact: str | None = None) -> None:
        self.consents[CONSENT_ID] = {
            "id": CONSENT_ID,
            "status": "ACTIVE",
            "purpose": PURPOSE,
            "mode": "once",
            "items": [ADDRESS, LICENCE],
            "valid_until": "2026-11-01T11:00:00+00:00",
            "max_fetches": 1,
            "fetches": 0,
            "data_life": 0,
            "artefact": artefact or self.artefact(),
            "created_at": "2026-11-01T10:00:00+00:00",
            "updated_at": "2026-11-01T10:01:00+00:00",
        }

    def request_claims(self, provider: str, items: list[str], artefact: str, request_id: str) -> dict[str, Any]:
        moment = now()
        return {
            "iss": GW,
            "aud": provider,
            "jti": str(uuid.uuid4()),
            "iat": moment,
            "exp": moment + 60,
            "request_id": request_id,
            "consent": artefact,
            "sub": f"subject-for-{provider}",
            "items": items,
            "consumer": HOUSING,
            "consumer_key": self.systems[HOUSING].encryption.as_dict(private=False),
        }

    async def data_request(self, body: dict[str, Any]) -> httpx.Response:
        """As docs/exchange-protocol.md §4: one signed request per provider, their answers, a signed receipt."""
        artefact = self.consents[body["consent_id"]]["artefact"]
        consented = json.loads(jws.extract_compact(artefact.encode()).payload)["items"]
        wanted = body.get("items") or [i["id"] for i in consented]
        request_id = str(uuid.uuid4())
        results, recorded = [], []
        for provider in sorted({i["provider"] for i in consented if i["id"] in wanted}):
            items = [i["id"] for i in consented if i["provider"] == provider and i["id"] in wanted]
            claims = self.request_claims(provider, items, artefact, request_id)
            forwarded = self.sign(claims, "exchange-request+jwt")
            result = {"provider": provider, "items": items, **await self.providers[provider](forwarded, claims)}
            results.append(result)
            entry = {k: result[k] for k in ("provider", "items", "status")} | {"request_hash": request_hash(forwarded)}
            if result.get("response"):
                entry["response_hash"] = request_hash(result["response"])
            recorded.append(entry)
        receipt = {
            "iss": GW,
            "iat": now(),
            "jti": request_id,
            "consent_id": body["consent_id"],
            "consumer": HOUSING,
            "purpose": PURPOSE,
            "results": recorded,
        }
        answer = {"id": request_id, "consent_id": body["consent_id"], "created_at": "2026-11-01T10:02:00+00:00"}
        answer |= {"results": results, "receipt": self.sign(receipt, "exchange-receipt+jwt")}
        self.tamper(answer)
        return httpx.Response(200, json=answer)


# --- providers that follow (or break) the protocol, written with joserfc directly -----------------------


def response_to(
    provider: System,
    forwarded: str,
    claims: dict[str, Any],
    *,
    extra: tuple[str, ...] = (),
    signer: ECKey | None = None,
    hash_of: str | None = None,
    encrypt_to: ECKey | None = None,
    aud: str | None = None,
    sealed_request_id: str | None = None,
) -> str:
    released = [*claims["items"], *extra]
    content = {
        "request_id": sealed_request_id or claims["request_id"],
        "items": {i: {"value": VALUES[i], "source": provider.id, "as_of": "2026-01-01"} for i in released},
    }
    recipient = encrypt_to or ECKey.import_key(claims["consumer_key"])
    header = {"alg": "ECDH-ES", "enc": "A256GCM", "kid": recipient.kid}
    data = jwe.encrypt_compact(header, json.dumps(content), recipient, algorithms=["ECDH-ES", "A256GCM"])
    answer = {
        "iss": provider.id,
        "aud": aud or claims["consumer"],
        "iat": now(),
        "request_id": claims["request_id"],
        "request_hash": sha256(hash_of or forwarded),
        "status": "delivered",
        "items": released,
        "data": data,
    }
    return sign(answer, signer or provider.signing, "exchange-response+jwt")


def honest(provider: System, **kwargs: Any) -> Provider:
    async def answer(forwarded: str, claims: dict[str, Any]) -> dict[str, Any]:
        return {"status": "delivered", "response": response_to(provider, forwarded, claims, **kwargs)}

    return answer


def denying(provider: System) -> Provider:
    async def answer(forwarded: str, claims: dict[str, Any]) -> dict[str, Any]:
        denial = {
            "iss": provider.id,
            "aud": claims["consumer"],
            "iat": now(),
            "request_id": claims["request_id"],
            "request_hash": sha256(forwarded),
            "status": "denied",
            "items": [],
            "reason": "No record for this resident.",
        }
        return {"status": "denied", "response": sign(denial, provider.signing, "exchange-response+jwt")}

    return answer


async def timing_out(forwarded: str, claims: dict[str, Any]) -> dict[str, Any]:
    return {"status": "timeout", "detail": "The provider did not answer within 5 s."}


@dataclass
class World:
    gateway: FakeGateway
    http: httpx.AsyncClient
    housing: System
    immd: System
    td: System

    def consumer(self) -> ConsumerClient:
        return ConsumerClient(self.housing.credentials(), http=self.http)

    def provider(self, **kwargs: Any) -> ProviderHelper:
        return ProviderHelper(self.immd.credentials(), http=self.http, **kwargs)

    def forwarded(self, *, artefact: str | None = None, **overrides: Any) -> str:
        claims = self.gateway.request_claims(IMMD, [ADDRESS], artefact or self.gateway.artefact(), "request-1")
        return self.gateway.sign({**claims, **overrides}, "exchange-request+jwt")


@pytest.fixture
async def world() -> AsyncIterator[World]:
    housing = System(HOUSING, "housing-backend")
    immd, td = System(IMMD, "immd-backend"), System(TD, "td-backend")
    gateway = FakeGateway([housing, immd, td])
    gateway.approve()
    gateway.providers = {IMMD: honest(immd), TD: honest(td)}
    async with httpx.AsyncClient(transport=httpx.MockTransport(gateway.handle)) as http:
        yield World(gateway, http, housing, immd, td)


def body(token: str) -> bytes:
    return json.dumps({"request": token}).encode()


async def refusal(world: World, request_body: bytes) -> str:
    async with world.provider() as provider:
        with pytest.raises(RequestRefused) as refused:
            await provider.open(request_body)
    return refused.value.reason


# --- credentials ------------------------------------------------------------------------------------


def test_credentials_load_the_members_file_and_its_client_file(tmp_path: Path) -> None:
    system = System(IMMD, "immd-backend")
    client_file = tmp_path / "clients" / "immd-backend.json"
    client_file.parent.mkdir()
    client_file.write_text(
        json.dumps({"client_id": "immd-backend", "private_jwk": system.client.as_dict(private=True)})
    )
    members_file = tmp_path / "IMMD-residency.json"
    members_file.write_text(
        json.dumps(
            {
                "system_id": IMMD,
                "client_id": "immd-backend",
                "client_file": str(client_file),
                "gateway": GW,
                "signing_private_jwk": system.signing.as_dict(private=True),
                "encryption_private_jwk": system.encryption.as_dict(private=True),
            }
        )
    )
    loaded = SystemCredentials.load(members_file)
    assert loaded == system.credentials()
    assert loaded.client_key().kid == system.client.kid
    assert str(system.signing.as_dict(private=True)["d"]) not in repr(loaded)


def test_credentials_refuse_a_public_key_where_a_private_one_is_needed() -> None:
    system = System(IMMD, "immd-backend")
    with pytest.raises(ValueError, match="signing key"):
        SystemCredentials(
            IMMD, "immd-backend", GW, system.client.as_dict(private=True), system.signing.as_dict(private=False), {}
        )


# --- tokens and DPoP --------------------------------------------------------------------------------


async def test_the_token_comes_after_a_nonce_retry_and_every_call_carries_nonce_and_ath(world: World) -> None:
    async with GatewayClient(world.housing.credentials(), http=world.http) as gateway:
        keys = await gateway.system_keys(IMMD, "sig")
    assert [k.kid for k in keys.keys] == [world.immd.signing.kid]
    first, second = world.gateway.token_proofs
    assert "nonce" not in first
    assert second["nonce"] == "nonce-one"
    assert first["jkt"] == second["jkt"]
    one, other = world.gateway.assertions
    assert one["jti"] != other["jti"]  # the server spends each assertion
    assert one["aud"] == GW
    assert one["exp"] - one["iat"] <= 600
    request, proof = world.gateway.resource_calls[0]
    assert request.headers["Authorization"] == "DPoP at-1"
    assert proof["nonce"] == "nonce-one"
    assert proof["ath"] == sha256("at-1")
    assert proof["jkt"] == first["jkt"]


async def test_a_resource_asking_for_a_new_nonce_gets_a_retry_with_it(world: World) -> None:
    async with GatewayClient(world.housing.credentials(), http=world.http) as gateway:
        await gateway.json("GET", f"/api/exchange/systems/{IMMD}")
        world.gateway.nonce = "nonce-two"
        answer = await gateway.json("GET", f"/api/exchange/systems/{TD}")
    assert answer["id"] == TD
    nonces = [proof.get("nonce") for _, proof in world.gateway.resource_calls]
    assert nonces == ["nonce-one", "nonce-one", "nonce-two"]
    assert len(world.gateway.tokens) == 1  # the token stayed good


async def test_a_token_is_renewed_before_it_expires(world: World) -> None:
    world.gateway.expires_in = 20  # under the 30 s margin: every call needs a new token
    async with GatewayClient(world.housing.credentials(), http=world.http) as gateway:
        await gateway.json("GET", f"/api/exchange/systems/{IMMD}")
        await gateway.json("GET", f"/api/exchange/systems/{TD}")
    assert len(world.gateway.tokens) == 2


async def test_a_token_is_reused_while_it_lives(world: World) -> None:
    async with GatewayClient(world.housing.credentials(), http=world.http) as gateway:
        await gateway.json("GET", f"/api/exchange/systems/{IMMD}")
        await gateway.json("GET", f"/api/exchange/systems/{TD}")
    assert len(world.gateway.tokens) == 1


async def test_a_discovery_document_naming_another_issuer_is_refused(world: World) -> None:
    world.gateway.issuer = "https://elsewhere.example"
    async with GatewayClient(world.housing.credentials(), http=world.http) as gateway:
        with pytest.raises(GatewayProblem, match="another issuer"):
            await gateway.json("GET", f"/api/exchange/systems/{IMMD}")
    assert not world.gateway.assertions  # no assertion was sent anywhere


async def test_problem_details_become_a_gateway_problem(world: World) -> None:
    errors = [{"location": ["body", "items"], "message": "not consented"}]
    refusal_body = {"title": "Conflict", "status": 409, "detail": "The consent is EXPIRED.", "errors": errors}
    world.gateway.refusal = httpx.Response(409, json=refusal_body, headers=PROBLEM)
    async with world.consumer() as consumer:
        with pytest.raises(GatewayProblem) as refused:
            await consumer.fetch(CONSENT_ID)
    assert (refused.value.status, refused.value.title) == (409, "Conflict")
    assert refused.value.detail == "The consent is EXPIRED."
    assert refused.value.errors == errors


# --- the provider opens forwarded requests ------------------------------------------------------------


async def test_a_valid_forwarded_request_opens(world: World) -> None:
    token = world.forwarded()
    async with world.provider() as provider:
        request = await provider.open(body(token))
    assert request.request_id == "request-1"
    assert request.subject == f"subject-for-{IMMD}"
    assert request.items == [ADDRESS]
    assert (request.consumer, request.purpose) == (HOUSING, PURPOSE)
    assert request.consent.id == CONSENT_ID
    assert [(i.id, i.provider) for i in request.consent.items] == [(ADDRESS, IMMD), (LICENCE, TD)]
    assert request.consumer_key["kid"] == world.housing.encryption.kid
    assert request.request_jws == token


async def test_a_request_signed_by_another_key_is_refused(world: World) -> None:
    forger = sig_key(kid=world.gateway.key.kid)
    claims = world.gateway.request_claims(IMMD, [ADDRESS], world.gateway.artefact(), "request-1")
    reason = await refusal(world, body(sign(claims, forger, "exchange-request+jwt")))
    assert reason == "the request: the signature does not verify"


async def test_an_altered_request_is_refused(world: World) -> None:
    header, payload, signature = world.forwarded().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["items"] = [ADDRESS, LICENCE]
    altered = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert "signature does not verify" in await refusal(world, body(altered))


async def test_a_changed_byte_in_the_payload_is_refused(world: World) -> None:
    header, payload, signature = world.forwarded().split(".")
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    assert "the request: " in await refusal(world, body(f"{header}.{flipped}.{signature}"))


async def test_a_replayed_request_is_refused(world: World) -> None:
    token = world.forwarded()
    async with world.provider() as provider:
        await provider.open(body(token))
        with pytest.raises(RequestRefused, match="already received"):
            await provider.open(body(token))


async def test_a_refused_request_does_not_spend_its_jti(world: World) -> None:
    async with world.provider() as provider:
        with pytest.raises(RequestRefused, match="aud"):
            await provider.open(body(world.forwarded(jti="same-jti", aud=TD)))
        opened = await provider.open(body(world.forwarded(jti="same-jti")))
    assert opened.request_id == "request-1"


async def test_an_expired_request_is_refused(world: World) -> None:
    token = world.forwarded(iat=now() - 200, exp=now() - 140)
    assert await refusal(world, body(token)) == "the request has expired"


async def test_a_request_from_the_future_is_refused(world: World) -> None:
    token = world.forwarded(iat=now() + 600, exp=now() + 660)
    assert await refusal(world, body(token)) == "the request is issued in the future"


async def test_a_request_living_too_long_is_refused(world: World) -> None:
    assert await refusal(world, body(world.forwarded(exp=now() + 86400))) == "the request lives too long"


async def test_a_request_for_another_provider_is_refused(world: World) -> None:
    assert await refusal(world, body(world.forwarded(aud=TD))) == f"the aud claim is not {IMMD}"


async def test_a_request_from_another_issuer_is_refused(world: World) -> None:
    reason = await refusal(world, body(world.forwarded(iss="https://evil.example")))
    assert reason == "the request: the iss claim is not the gateway"


async def test_an_expired_artefact_is_refused(world: World) -> None:
    artefact = world.gateway.artefact(nbf=now() - 7200, exp=now() - 3600)
    assert await refusal(world, body(world.forwarded(artefact=artefact))) == "the consent artefact has expired"


async def test_an_artefact_not_yet_valid_is_refused(world: World) -> None:
    artefact = world.gateway.artefact(nbf=now() + 3600, exp=now() + 7200)
    assert await refusal(world, body(world.forwarded(artefact=artefact))) == "the consent artefact is not valid yet"


async def test_an_artefact_given_to_another_consumer_is_refused(world: World) -> None:
    artefact = world.gateway.artefact(consumer="HK/GOV/SWD/benefits")
    reason = await refusal(world, body(world.forwarded(artefact=artefact)))
    assert reason == "the consent artefact was given to another consumer"


async def test_a_forged_artefact_is_refused(world: World) -> None:
    moment = now()
    claims = {"iss": GW, "jti": CONSENT_ID, "nbf": moment, "exp": moment + 60, "consumer": HOUSING, "items": []}
    forged = sign(claims, sig_key(kid=world.gateway.key.kid), "consent+jwt")
    reason = await refusal(world, body(world.forwarded(artefact=forged)))
    assert reason == "the consent artefact: the signature does not verify"


async def test_an_item_another_provider_holds_is_refused(world: World) -> None:
    reason = await refusal(world, body(world.forwarded(items=[ADDRESS, LICENCE])))
    assert reason == f"{LICENCE} is held by another provider under this consent"


async def test_an_item_outside_the_artefact_is_refused(world: World) -> None:
    reason = await refusal(world, body(world.forwarded(items=[INCOME])))
    assert reason == f"{INCOME} is not in the consent"


async def test_a_private_or_signing_consumer_key_is_refused(world: World) -> None:
    for key in (world.housing.encryption.as_dict(private=True), world.housing.signing.as_dict(private=False)):
        reason = await refusal(world, body(world.forwarded(consumer_key=key)))
        assert reason == "the consumer_key must be a public P-256 key with use enc and a kid"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES384"])
async def test_other_algorithms_are_refused(world: World, alg: str) -> None:
    payload = world.forwarded().split(".")[1]
    protected = {"alg": alg, "typ": "exchange-request+jwt", "kid": world.gateway.key.kid}
    if alg == "HS256":  # algorithm confusion: the gateway's public key as an HMAC secret
        secret = OctKey.import_key(json.dumps(world.gateway.key.as_dict(private=False)).encode())
        token = jws.serialize_compact(protected, base64.urlsafe_b64decode(payload + "=="), secret, ["HS256"])
    else:
        token = f"{b64(json.dumps(protected).encode())}.{payload}."
    assert await refusal(world, body(token)) == "the request: the signature's alg must be ES256"


async def test_a_request_of_the_wrong_typ_is_refused(world: World) -> None:
    claims = world.gateway.request_claims(IMMD, [ADDRESS], world.gateway.artefact(), "request-1")
    for typ in ("JWT", "consent+jwt"):
        reason = await refusal(world, body(world.gateway.sign(claims, typ)))
        assert reason == "the request: the typ must be exchange-request+jwt"


async def test_an_artefact_of_the_wrong_typ_is_refused(world: World) -> None:
    moment = now()
    claims = world.gateway.request_claims(IMMD, [ADDRESS], "x", "r")  # an exchange request passed off as artefact
    artefact = world.gateway.sign({**claims, "nbf": moment}, "exchange-request+jwt")
    reason = await refusal(world, body(world.forwarded(artefact=artefact)))
    assert reason == "the consent artefact: the typ must be consent+jwt"


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"", "the body is not JSON"),
        (b"\xff\xfe not utf-8", "the body is not JSON"),
        (b"<html>", "the body is not JSON"),
        (b"[1, 2]", 'the body must be {"request": "<JWS>"}'),
        (b'{"request": 42}', 'the body must be {"request": "<JWS>"}'),
        (b'{"request": "a.b"}', "the request: not a compact JWS"),
        (b'{"request": "a.b.c"}', "the request: the JWS header is unreadable"),
        (b'{"request": "W10.e30.AA"}', "the request: the JWS header is not a JSON object"),
        (b'{"request": "' + b"A" * 300_000 + b'"}', "the body is too large"),
    ],
)
async def test_garbage_is_refused(world: World, garbage: bytes, reason: str) -> None:
    assert await refusal(world, garbage) == reason


async def test_the_gateway_keys_are_refetched_once_after_a_rotation(world: World) -> None:
    async with world.provider() as provider:
        await provider.open(body(world.forwarded()))
        world.gateway.rotate()
        opened = await provider.open(body(world.forwarded()))
        assert opened.request_id == "request-1"
        assert world.gateway.jwks_fetches == 2
        # An unknown kid again so soon does not make the provider fetch again (random kids cannot hammer it).
        stranger = sig_key()
        claims = world.gateway.request_claims(IMMD, [ADDRESS], world.gateway.artefact(), "request-1")
        with pytest.raises(RequestRefused, match="kid is not among"):
            await provider.open(body(sign(claims, stranger, "exchange-request+jwt")))
    assert world.gateway.jwks_fetches == 2


# --- the provider answers ---------------------------------------------------------------------------


async def opened(world: World) -> tuple[ProviderHelper, ForwardedRequest]:
    provider = world.provider()
    return provider, await provider.open(body(world.forwarded()))


async def test_respond_refuses_items_not_asked(world: World) -> None:
    provider, request = await opened(world)
    with pytest.raises(ValueError, match=LICENCE):
        provider.respond(request, {ADDRESS: ReleasedValue({}, "2026-01-01"), LICENCE: ReleasedValue({}, "2026-01-01")})
    with pytest.raises(ValueError, match="deny"):
        provider.respond(request, {})
    await provider.aclose()


async def test_respond_signs_and_encrypts_to_the_consumer_only(world: World) -> None:
    provider, request = await opened(world)
    answer = provider.respond(request, {ADDRESS: ReleasedValue(VALUES[ADDRESS], "2024-05-02")})
    await provider.aclose()
    response = jws.deserialize_compact(answer["response"], world.immd.signing, algorithms=["ES256"])
    assert response.protected == {"alg": "ES256", "typ": "exchange-response+jwt", "kid": world.immd.signing.kid}
    claims = json.loads(response.payload)
    assert claims["request_hash"] == sha256(request.request_jws)
    assert (claims["iss"], claims["aud"], claims["status"], claims["items"]) == (IMMD, HOUSING, "delivered", [ADDRESS])
    content = json.loads(jwe.decrypt_compact(claims["data"], world.housing.encryption).plaintext or b"")
    assert content == {
        "request_id": "request-1",
        "items": {ADDRESS: {"value": VALUES[ADDRESS], "source": IMMD, "as_of": "2024-05-02"}},
    }
    with pytest.raises(JoseError):  # the gateway (or anyone else) cannot open it
        jwe.decrypt_compact(claims["data"], enc_key())


async def test_deny_says_why_and_releases_nothing(world: World) -> None:
    provider, request = await opened(world)
    answer = provider.deny(request, "No record for this resident.")
    await provider.aclose()
    claims = json.loads(jws.deserialize_compact(answer["response"], world.immd.signing, ["ES256"]).payload)
    assert (claims["status"], claims["items"], claims["reason"]) == ("denied", [], "No record for this resident.")
    assert "data" not in claims


# --- the consumer -----------------------------------------------------------------------------------


async def test_request_consent_sends_the_protocol_body(world: World) -> None:
    async with world.consumer() as consumer:
        asked = await consumer.request_consent(
            purpose=PURPOSE,
            items=[ADDRESS],
            optional=[LICENCE],
            data_life=86400,
            redirect_uri="https://housing.example/done",
            state="s-1",
        )
    assert asked.id == CONSENT_ID
    assert asked.review_url == f"{GW}/exchange/consents/{CONSENT_ID}"
    assert asked.expires_at.year == 2026
    sent = world.gateway.consent_bodies[0]
    assert sent["items"] == [{"id": ADDRESS}, {"id": LICENCE, "optional": True}]
    assert (sent["mode"], sent["valid_for"], sent["max_fetches"], sent["data_life"]) == ("once", 3600, 1, 86400)


async def test_a_consent_comes_with_its_verified_artefact(world: World) -> None:
    async with world.consumer() as consumer:
        consent = await consumer.consent(CONSENT_ID)
    assert consent.status == "ACTIVE"
    assert consent.items == [ADDRESS, LICENCE]
    assert consent.artefact is not None
    assert consent.artefact.consumer == HOUSING
    assert consent.artefact.item_ids(TD) == [LICENCE]


@pytest.mark.parametrize(
    ("artefact", "reason"),
    [
        ({"consumer": "HK/GOV/SWD/benefits"}, "the consent: the artefact was given to another consumer"),
        ({"jti": "another-consent"}, "the consent: the artefact is of another consent"),
        ({"iss": "https://evil.example"}, "the consent: the iss claim is not the gateway"),
    ],
)
async def test_a_wrong_artefact_is_refused(world: World, artefact: dict[str, Any], reason: str) -> None:
    world.gateway.approve(world.gateway.artefact(**artefact))
    async with world.consumer() as consumer:
        with pytest.raises(ResponseRefused) as refused:
            await consumer.consent(CONSENT_ID)
    assert refused.value.reason == reason


async def test_fetch_decrypts_every_delivered_response(world: World) -> None:
    async with world.consumer() as consumer:
        result = await consumer.fetch(CONSENT_ID)
    assert {i: v.value for i, v in result.values.items()} == {ADDRESS: VALUES[ADDRESS], LICENCE: VALUES[LICENCE]}
    assert result.values[ADDRESS].provider == IMMD
    assert result.values[LICENCE].as_of == "2026-01-01"
    assert [(o.provider, o.status) for o in result.outcomes] == [(IMMD, "delivered"), (TD, "delivered")]
    assert result.receipt["jti"] == result.request_id
    assert result.receipt["consumer"] == HOUSING
    assert world.gateway.paths.count(f"/api/exchange/systems/{IMMD}") == 1


async def test_the_sdk_provider_and_consumer_understand_each_other(world: World) -> None:
    helper = world.provider()

    async def through_the_sdk(forwarded: str, claims: dict[str, Any]) -> dict[str, Any]:
        request = await helper.open(body(forwarded))
        return {
            "status": "delivered",
            **helper.respond(request, {ADDRESS: ReleasedValue(VALUES[ADDRESS], "2024-05-02")}),
        }

    world.gateway.providers[IMMD] = through_the_sdk
    async with world.consumer() as consumer:
        result = await consumer.fetch(CONSENT_ID, items=[ADDRESS])
    await helper.aclose()
    assert [(o.provider, o.status, o.items) for o in result.outcomes] == [(IMMD, "delivered", [ADDRESS])]
    assert result.values[ADDRESS].value == VALUES[ADDRESS]
    assert result.values[ADDRESS].source == IMMD


async def fetch_with(world: World, provider: Provider) -> tuple[dict[str, Any], dict[str, str | None]]:
    """Fetch with Immigration answering as told (Transport stays honest): values and each outcome's detail."""
    world.gateway.providers[IMMD] = provider
    async with world.consumer() as consumer:
        result = await consumer.fetch(CONSENT_ID)
    outcomes = {o.provider: o.status for o in result.outcomes}
    assert outcomes[TD] == "delivered"  # one provider failing never fails the others
    assert LICENCE in result.values
    return {i: v.value for i, v in result.values.items()}, {o.provider: o.detail for o in result.outcomes} | {
        "status": outcomes[IMMD]
    }


async def test_a_response_releasing_more_than_asked_is_an_error(world: World) -> None:
    values, outcome = await fetch_with(world, honest(world.immd, extra=(INCOME,)))
    assert outcome["status"] == "error"
    assert outcome[IMMD] == f"the provider released items not asked of it: {INCOME}"
    assert ADDRESS not in values
    assert INCOME not in values


async def test_a_response_signed_by_the_wrong_key_is_an_error(world: World) -> None:
    values, outcome = await fetch_with(world, honest(world.immd, signer=sig_key(kid=world.immd.signing.kid)))
    assert outcome["status"] == "error"
    assert outcome[IMMD] == "the provider's response: the signature does not verify"
    assert ADDRESS not in values


async def test_a_response_signed_by_another_systems_key_is_an_error(world: World) -> None:
    values, outcome = await fetch_with(world, honest(world.immd, signer=world.td.signing))
    assert outcome["status"] == "error"
    assert outcome[IMMD] == "the provider's response: the signature's kid is not among the signer's keys"
    assert ADDRESS not in values


async def test_a_response_to_another_request_is_an_error(world: World) -> None:
    values, outcome = await fetch_with(world, honest(world.immd, hash_of="another request"))
    assert outcome["status"] == "error"
    assert outcome[IMMD] == "the response answers another request (request_hash)"
    assert ADDRESS not in values


async def test_a_response_for_another_consumer_is_an_error(world: World) -> None:
    values, outcome = await fetch_with(world, honest(world.immd, aud="HK/GOV/SWD/benefits"))
    assert outcome["status"] == "error"
    assert outcome[IMMD] == f"the aud claim is not {HOUSING}"
    assert ADDRESS not in values


async def test_data_sealed_for_another_request_is_an_error(world: World) -> None:
    values, outcome = await fetch_with(world, honest(world.immd, sealed_request_id="an-older-request"))
    assert outcome["status"] == "error"
    assert str(outcome[IMMD]).startswith("the request_id claim is not ")
    assert ADDRESS not in values


async def test_data_encrypted_to_another_key_is_an_error(world: World) -> None:
    values, outcome = await fetch_with(world, honest(world.immd, encrypt_to=enc_key()))
    assert outcome["status"] == "error"
    assert outcome[IMMD] == "the data is encrypted to another key"
    assert ADDRESS not in values


async def test_a_response_swapped_after_the_receipt_is_an_error(world: World) -> None:
    other = System(IMMD, "immd-backend", signing=world.immd.signing)

    def swap(answer: dict[str, Any]) -> None:
        claims = world.gateway.request_claims(IMMD, [ADDRESS], "artefact", answer["id"])
        answer["results"][0]["response"] = response_to(other, "another forwarded request", claims)

    world.gateway.tamper = swap
    values, outcome = await fetch_with(world, honest(world.immd))
    assert outcome["status"] == "error"
    assert outcome[IMMD] == "the response is not the one the receipt records"
    assert ADDRESS not in values


async def test_a_denial_and_a_timeout_pass_through(world: World) -> None:
    world.gateway.providers = {IMMD: denying(world.immd), TD: timing_out}
    async with world.consumer() as consumer:
        result = await consumer.fetch(CONSENT_ID)
    assert result.values == {}
    details = {o.provider: (o.status, o.detail) for o in result.outcomes}
    assert details == {
        IMMD: ("denied", "No record for this resident."),
        TD: ("timeout", "The provider did not answer within 5 s."),
    }


async def test_a_forged_receipt_is_refused(world: World) -> None:
    def forge(answer: dict[str, Any]) -> None:
        payload = answer["receipt"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        answer["receipt"] = sign(claims, sig_key(), "exchange-receipt+jwt")

    world.gateway.tamper = forge
    async with world.consumer() as consumer:
        with pytest.raises(ResponseRefused) as refused:
            await consumer.fetch(CONSENT_ID)
    assert refused.value.reason == "the receipt: the signature's kid is not among the signer's keys"


async def test_a_receipt_of_another_request_is_refused(world: World) -> None:
    def other_id(answer: dict[str, Any]) -> None:
        answer["id"] = str(uuid.uuid4())

    world.gateway.tamper = other_id
    async with world.consumer() as consumer:
        with pytest.raises(ResponseRefused, match="the receipt: the jti claim"):
            await consumer.fetch(CONSENT_ID)


async def test_a_result_that_differs_from_the_receipt_is_an_error(world: World) -> None:
    def relabel(answer: dict[str, Any]) -> None:
        answer["results"][0]["status"] = "denied"

    world.gateway.tamper = relabel
    values, outcome = await fetch_with(world, honest(world.immd))
    assert outcome["status"] == "error"
    assert outcome[IMMD] == "the result differs from the receipt"
    assert ADDRESS not in values


# --- webhooks ---------------------------------------------------------------------------------------


def event(world: World, key: ECKey | None = None, typ: str = "exchange-event+jwt", **overrides: Any) -> str:
    claims = {
        "iss": GW,
        "aud": HOUSING,
        "jti": "event-1",
        "iat": 1790000000,
        "event": "consent.status",
        "consent_id": CONSENT_ID,
        "status": "REVOKED",
        **overrides,
    }
    return sign(claims, key or world.gateway.key, typ)


async def test_a_valid_webhook_is_read(world: World) -> None:
    async with world.consumer() as consumer:
        received = await consumer.verify_webhook(event(world).encode() + b"\r\n")
    assert (received.id, received.consent_id, received.status) == ("event-1", CONSENT_ID, "REVOKED")
    assert received.issued_at.timestamp() == 1790000000


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda w: event(w, aud=IMMD), f"the webhook: the aud claim is not {HOUSING}"),
        (lambda w: event(w, sig_key(kid=w.gateway.key.kid)), "the webhook: the signature does not verify"),
        (lambda w: event(w, typ="exchange-receipt+jwt"), "the webhook: the typ must be exchange-event+jwt"),
        (lambda w: event(w, iss="https://evil.example"), "the webhook: the iss claim is not the gateway"),
        (lambda w: "not a jws", "the webhook: not a compact JWS"),
    ],
)
async def test_an_invalid_webhook_is_refused(world: World, make: Callable[[World], str], reason: str) -> None:
    async with world.consumer() as consumer:
        with pytest.raises(ResponseRefused) as refused:
            await consumer.verify_webhook(make(world))
    assert refused.value.reason == reason
