"""The gateway's registry: members, systems, the versioned data catalogue and purposes — through the
service, the operator API and the CLI, with every refusal an operator can run into."""

from __future__ import annotations

import copy
import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from joserfc.jwk import ECKey, OKPKey
from sqlalchemy import select

from bauhinia.core.audit import AuditEvent
from bauhinia.exchange.demo import register_demo_members
from bauhinia.exchange.schemas import MemberRegistration
from bauhinia.exchange.service import ExchangeError
from bauhinia.oidc.demo_clients import register_demo_clients
from bauhinia.settings import Settings
from tests.integration.test_cli import env_for, invoke
from tests.oidc_support import ISSUER, JSON, DPoPKey, client_auth, post_token, register_client

Headers = dict[str, str]
MEMBER = {"id": "HK/GOV/IMMD", "name": {"en": "Immigration Department", "zh-Hant": "入境事務處"}}
CONSUMER_MEMBER = {"id": "HK/GOV/HD", "name": {"en": "Housing Department"}}
ADDRESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"building": {"type": "string"}},
    "required": ["building"],
}


def jwks(use: str, **params: Any) -> dict[str, Any]:
    key = ECKey.generate_key("P-256", {"use": use}, auto_kid=True)
    return {"keys": [key.as_dict(private=False, **params)]}


def system(system_id: str, client_id: str, role: str = "provider", **overrides: Any) -> dict[str, Any]:
    endpoint = {"data_endpoint": "https://immd.example.hk/exchange"}
    if role == "consumer":
        endpoint = {"webhook_url": "https://hd.example.hk/webhook"}
    return {
        "id": system_id,
        "roles": [role],
        "signing_jwks": jwks("sig"),
        "encryption_jwks": jwks("enc"),
        "client_id": client_id,
        **endpoint,
        **overrides,
    }


def item(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "immd.residential-address",
        "title": {"en": "Residential address", "zh-Hant": "住址", "zh-Hans": "住址"},
        "value_schema": ADDRESS_SCHEMA,
        "provider_system_id": "HK/GOV/IMMD/residency",
        "sensitivity": "restricted",
        "legal_basis": "Registration of Persons Ordinance (Cap. 177), with the resident's consent.",
        "purpose_limitation": "Only for the application consented to.",
        **overrides,
    }


PURPOSE = {
    "code": "housing.public-rental-application",
    "description": {"en": "To fill in your public rental housing application."},
    "consumer_system_ids": ["HK/GOV/HD/applications"],
}


async def backend(app: FastAPI, client_id: str, scopes: list[str], grant: str = "client_credentials") -> Any:
    grants = {"grant_types": [grant], "items": [], "post_logout_redirect_uris": []}
    if grant == "client_credentials":
        grants["redirect_uris"] = []
    return await register_client(app, client_id, scopes=scopes, **grants)


async def bearer(app: FastAPI, http: httpx.AsyncClient, client_id: str, scopes: list[str]) -> Headers:
    registered = await backend(app, client_id, scopes)
    token = await post_token(http, {"grant_type": "client_credentials", **client_auth(registered)})
    assert token.status_code == 200, token.text
    return {**JSON, "Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture
async def operator(app: FastAPI, client: httpx.AsyncClient) -> Headers:
    return await bearer(app, client, "ops", ["bauhinia.operator"])


async def registry(app: FastAPI, http: httpx.AsyncClient, headers: Headers) -> None:
    """Immigration (a provider) and Housing (a consumer), each with one system."""
    await backend(app, "immd-backend", ["immd.records"])
    await backend(app, "housing-backend", ["housing.records"])
    for body in (MEMBER, CONSUMER_MEMBER):
        assert (await http.post("/api/exchange/members", json=body, headers=headers)).status_code == 201
    for body in (
        system("HK/GOV/IMMD/residency", "immd-backend"),
        system("HK/GOV/HD/applications", "housing-backend", role="consumer"),
    ):
        created = await http.post("/api/exchange/systems", json=body, headers=headers)
        assert created.status_code == 201, created.text


async def audit_types(app: FastAPI) -> list[str]:
    async with app.state.sessionmaker() as db:
        return list(await db.scalars(select(AuditEvent.event_type).order_by(AuditEvent.seq)))


def assert_problem(response: httpx.Response, status: int, location: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if location is not None:
        assert location in [e["location"][-1] for e in response.json()["errors"]], response.json()


# --- the operator API -------------------------------------------------------------------------------


async def test_operators_register_and_anyone_with_a_token_reads(
    app: FastAPI, client: httpx.AsyncClient, operator: Headers
) -> None:
    await registry(app, client, operator)
    published = await client.post("/api/exchange/catalogue/items", json=item(), headers=operator)
    assert published.status_code == 201, published.text
    assert published.json()["version"] == 1
    purpose = await client.post("/api/exchange/purposes", json=PURPOSE, headers=operator)
    assert purpose.status_code == 201, purpose.text

    reader = await bearer(app, client, "any-backend", ["any.records"])
    members = (await client.get("/api/exchange/members", headers=reader)).json()
    assert [m["id"] for m in members] == ["HK/GOV/HD", "HK/GOV/IMMD"]
    member = (await client.get("/api/exchange/members/HK/GOV/IMMD", headers=reader)).json()
    assert member["member_class"] == "GOV"
    assert member["name"]["zh-Hant"] == "入境事務處"
    shown = (await client.get("/api/exchange/systems/HK/GOV/IMMD/residency", headers=reader)).json()
    assert shown["member_id"] == "HK/GOV/IMMD"
    assert shown["signing_jwks"]["keys"][0]["use"] == "sig"
    assert "d" not in shown["encryption_jwks"]["keys"][0]
    of_member = await client.get("/api/exchange/systems", params={"member_id": "HK/GOV/HD"}, headers=reader)
    assert [s["id"] for s in of_member.json()] == ["HK/GOV/HD/applications"]
    catalogue = (await client.get("/api/exchange/catalogue/items", headers=reader)).json()
    assert [(i["id"], i["version"]) for i in catalogue] == [("immd.residential-address", 1)]
    got = await client.get(f"/api/exchange/purposes/{PURPOSE['code']}", headers=reader)
    assert got.json()["consumer_system_ids"] == ["HK/GOV/HD/applications"]
    assert len((await client.get("/api/exchange/purposes", headers=reader)).json()) == 1
    assert await audit_types(app) == [
        "exchange.member_registered",
        "exchange.member_registered",
        "exchange.system_registered",
        "exchange.system_registered",
        "exchange.item_published",
        "exchange.purpose_registered",
    ]


async def test_changes_need_the_operator_scope_and_reads_need_a_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    reader = await bearer(app, client, "any-backend", ["any.records"])
    refused = await client.post("/api/exchange/members", json=MEMBER, headers=reader)
    assert_problem(refused, 403)
    assert "bauhinia.operator" in refused.json()["detail"]
    for path in ("/api/exchange/members", "/api/exchange/catalogue/items", "/api/exchange/purposes"):
        anonymous = await client.get(path, headers=JSON)
        assert_problem(anonymous, 401)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = await client.get("/api/exchange/members", headers={**JSON, "Authorization": "Bearer not-a-token"})
    assert_problem(forged, 401)
    anonymous_post = await client.post("/api/exchange/members", json=MEMBER, headers=JSON)
    assert_problem(anonymous_post, 401)
    assert await audit_types(app) == []


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({**MEMBER, "id": "HK/GOV"}, "id"),
        ({**MEMBER, "id": "HK/GOV/IM MD"}, "id"),
        ({**MEMBER, "id": "HK/GOV/" + "X" * 33}, "id"),
        ({**MEMBER, "name": {"zh-Hant": "入境事務處"}}, "en"),
    ],
)
async def test_malformed_members_are_refused_field_by_field(
    client: httpx.AsyncClient, operator: Headers, body: dict[str, Any], location: str
) -> None:
    assert_problem(await client.post("/api/exchange/members", json=body, headers=operator), 422, location)


async def test_duplicates_are_conflicts(app: FastAPI, client: httpx.AsyncClient, operator: Headers) -> None:
    await registry(app, client, operator)
    assert_problem(await client.post("/api/exchange/members", json=MEMBER, headers=operator), 409)
    again = system("HK/GOV/IMMD/residency", "immd-backend")
    assert_problem(await client.post("/api/exchange/systems", json=again, headers=operator), 409)
    second = system("HK/GOV/IMMD/other", "immd-backend")  # one client speaks for one system
    assert_problem(await client.post("/api/exchange/systems", json=second, headers=operator), 409)
    assert (await client.post("/api/exchange/purposes", json=PURPOSE, headers=operator)).status_code == 201
    assert_problem(await client.post("/api/exchange/purposes", json=PURPOSE, headers=operator), 409)


def _private_key_set() -> dict[str, Any]:
    key = ECKey.generate_key("P-256", {"use": "sig"}, auto_kid=True)
    return {"keys": [key.as_dict(private=True)]}


def _ed25519_set() -> dict[str, Any]:
    return {"keys": [OKPKey.generate_key("Ed25519", {"use": "sig"}, auto_kid=True).as_dict(private=False)]}


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"id": "HK/GOV/IMMD"}, "id"),
        ({"signing_jwks": _private_key_set()}, "signing_jwks"),
        ({"signing_jwks": _ed25519_set()}, "signing_jwks"),
        ({"signing_jwks": {"keys": []}}, "signing_jwks"),
        ({"encryption_jwks": jwks("sig")}, "encryption_jwks"),
        ({"signing_jwks": {"keys": [{"kty": "EC", "crv": "P-256"}]}}, "signing_jwks"),
        ({"data_endpoint": "http://immd.example.hk/exchange"}, "body"),
        ({"data_endpoint": None}, "body"),
        ({"webhook_url": "https://immd.example.hk/hook"}, "body"),
        ({"roles": []}, "roles"),
        ({"client_id": "No Such"}, "client_id"),
    ],
)
async def test_malformed_systems_are_refused(
    app: FastAPI, client: httpx.AsyncClient, operator: Headers, overrides: dict[str, Any], location: str
) -> None:
    await client.post("/api/exchange/members", json=MEMBER, headers=operator)
    body = {**system("HK/GOV/IMMD/residency", "immd-backend"), **overrides}
    assert_problem(await client.post("/api/exchange/systems", json=body, headers=operator), 422, location)


async def test_loopback_http_endpoints_only_when_allowed(
    app: FastAPI, client: httpx.AsyncClient, operator: Headers
) -> None:
    await backend(app, "immd-backend", ["immd.records"])
    await client.post("/api/exchange/members", json=MEMBER, headers=operator)
    loopback = {"data_endpoint": "http://127.0.0.1:9000/exchange"}
    body = system("HK/GOV/IMMD/residency", "immd-backend", **loopback)
    assert_problem(await client.post("/api/exchange/systems", json=body, headers=operator), 422)
    allowed = await client.post("/api/exchange/systems", json={**body, "allow_loopback_http": True}, headers=operator)
    assert allowed.status_code == 201, allowed.text


async def test_systems_need_a_registered_member_and_a_client_credentials_client(
    app: FastAPI, client: httpx.AsyncClient, operator: Headers
) -> None:
    await backend(app, "immd-backend", ["immd.records"])
    await backend(app, "immd-portal", ["openid"], grant="authorization_code")
    no_member = system("HK/GOV/IMMD/residency", "immd-backend")
    assert_problem(await client.post("/api/exchange/systems", json=no_member, headers=operator), 422, "id")
    await client.post("/api/exchange/members", json=MEMBER, headers=operator)
    unknown = system("HK/GOV/IMMD/residency", "no-such-client")
    assert_problem(await client.post("/api/exchange/systems", json=unknown, headers=operator), 422, "client_id")
    wrong_grant = system("HK/GOV/IMMD/residency", "immd-portal")
    assert_problem(await client.post("/api/exchange/systems", json=wrong_grant, headers=operator), 422, "client_id")


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"value_schema": {"type": "no-such-type"}}, "value_schema"),
        ({"value_schema": {"properties": {"x": {"minLength": -1}}}}, "value_schema"),
        ({"value_schema": {"$schema": "https://example.com/my-own-draft"}}, "value_schema"),
        ({"value_schema": {"$schema": {"not": "a string"}}}, "value_schema"),
        ({"value_schema": {"type": "string", "pattern": "("}}, "value_schema"),
        ({"value_schema": _nested(40)}, "value_schema"),
        ({"id": "Immd.address"}, "id"),
        ({"id": "immd"}, "id"),
        ({"sensitivity": "secret"}, "sensitivity"),
        ({"legal_basis": ""}, "legal_basis"),
        ({"legal_basis": "a\x00b"}, "legal_basis"),  # PostgreSQL text cannot hold a NUL
        ({"purpose_limitation": "bell\x07"}, "purpose_limitation"),
        ({"title": {"en": "Address\x00"}}, "en"),
        ({"provider_system_id": "HK/GOV/IMMD/nothing"}, "provider_system_id"),
        ({"provider_system_id": "HK/GOV/HD/applications"}, "provider_system_id"),  # a consumer only
    ],
)
async def test_malformed_items_are_refused(
    app: FastAPI, client: httpx.AsyncClient, operator: Headers, overrides: dict[str, Any], location: str
) -> None:
    await registry(app, client, operator)
    response = await client.post("/api/exchange/catalogue/items", json=item(**overrides), headers=operator)
    assert_problem(response, 422, location)


async def test_purposes_name_only_active_consumers(app: FastAPI, client: httpx.AsyncClient, operator: Headers) -> None:
    await registry(app, client, operator)
    for consumers in (["HK/GOV/HD/nothing"], ["HK/GOV/IMMD/residency"], ["not a system"]):
        body = {**PURPOSE, "consumer_system_ids": consumers}
        response = await client.post("/api/exchange/purposes", json=body, headers=operator)
        assert_problem(response, 422, "consumer_system_ids")


async def test_publishing_again_adds_a_version_and_keeps_the_old_one_readable(
    app: FastAPI, client: httpx.AsyncClient, operator: Headers
) -> None:
    await registry(app, client, operator)
    items = "/api/exchange/catalogue/items"
    draft7 = {**ADDRESS_SCHEMA, "$schema": "http://json-schema.org/draft-07/schema#"}
    assert (await client.post(items, json=item(value_schema=draft7), headers=operator)).json()["version"] == 1
    assert_problem(await client.post(items, json=item(value_schema=draft7), headers=operator), 409)  # unchanged
    wider = copy.deepcopy(draft7)
    wider["properties"]["district"] = {"type": "string"}
    second = await client.post(items, json=item(value_schema=wider), headers=operator)
    assert second.json()["version"] == 2
    assert [i["version"] for i in (await client.get(items, headers=operator)).json()] == [2]
    everything = (await client.get(items, params={"include_superseded": "true"}, headers=operator)).json()
    assert [(i["version"], i["superseded"]) for i in everything] == [(1, True), (2, False)]
    current = await client.get(f"{items}/immd.residential-address", headers=operator)
    assert "district" in current.json()["value_schema"]["properties"]
    first = await client.get(f"{items}/immd.residential-address", params={"version": 1}, headers=operator)
    assert "district" not in first.json()["value_schema"]["properties"]
    assert_problem(await client.get(f"{items}/immd.residential-address?version=3", headers=operator), 404)
    assert_problem(await client.get(f"{items}/immd.residential-address?version=0", headers=operator), 422)
    # an item stays with its provider
    await backend(app, "immd-two", ["immd.records"])
    await client.post("/api/exchange/systems", json=system("HK/GOV/IMMD/two", "immd-two"), headers=operator)
    moved = item(provider_system_id="HK/GOV/IMMD/two", legal_basis="Another basis.")
    assert_problem(await client.post(items, json=moved, headers=operator), 422, "provider_system_id")
    published = [t for t in await audit_types(app) if t == "exchange.item_published"]
    assert len(published) == 2


async def test_disabling_a_member_disables_its_systems(
    app: FastAPI, client: httpx.AsyncClient, operator: Headers
) -> None:
    await registry(app, client, operator)
    disabled = await client.post("/api/exchange/members/HK/GOV/IMMD/disable", headers=operator)
    assert disabled.json()["disabled"] is True
    shown = await client.get("/api/exchange/systems/HK/GOV/IMMD/residency", headers=operator)
    assert shown.json()["disabled"] is True
    refused = await client.post("/api/exchange/catalogue/items", json=item(), headers=operator)
    assert_problem(refused, 422, "provider_system_id")
    again = await client.post("/api/exchange/members/HK/GOV/IMMD/disable", headers=operator)
    assert again.status_code == 200
    system_off = await client.post("/api/exchange/systems/HK/GOV/HD/applications/disable", headers=operator)
    assert system_off.json()["disabled"] is True
    types = await audit_types(app)
    assert types.count("exchange.member_disabled") == 1
    assert types.count("exchange.system_disabled") == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/exchange/members/HK/GOV/NONE",
        "/api/exchange/members/HK%00/GOV/X",
        "/api/exchange/systems/HK/GOV/NONE/x",
        "/api/exchange/catalogue/items/none.nothing",
        "/api/exchange/catalogue/items/%00",
        "/api/exchange/purposes/none.nothing",
    ],
)
async def test_unknown_entries_are_404_problems(client: httpx.AsyncClient, operator: Headers, path: str) -> None:
    assert_problem(await client.get(path, headers=operator), 404)


async def test_the_service_refuses_without_http(app: FastAPI) -> None:
    member = MemberRegistration.model_validate(MEMBER)
    async with app.state.sessionmaker() as db:
        await app.state.exchange.register_member(db, member, actor="test")
        with pytest.raises(ExchangeError) as refused:
            await app.state.exchange.register_member(db, member, actor="test")
    assert refused.value.status == 409


# --- the CLI ------------------------------------------------------------------------------------------


async def test_the_cli_registers_and_lists(app: FastAPI, settings: Settings, tmp_path: Path) -> None:
    env = {**env_for(settings), "COLUMNS": "200"}  # wide enough that rich shows ids whole
    await backend(app, "immd-backend", ["immd.records"])
    added = await invoke(
        ["exchange", "members", "add", "--id", "HK/GOV/IMMD", "--name", "Immigration", "--name-zh-hant", "入境事務處"],
        env,
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["member_class"] == "GOV"
    assert (await invoke(["exchange", "members", "add", "--id", "HK/GOV/IMMD", "--name", "x"], env)).exit_code == 1
    assert (await invoke(["exchange", "members", "add", "--id", "bad", "--name", "x"], env)).exit_code == 1
    assert "HK/GOV/IMMD" in (await invoke(["exchange", "members", "list"], env)).stdout

    definition = system("HK/GOV/IMMD/residency", "immd-backend")
    (tmp_path / "sig.json").write_text(json.dumps(definition.pop("signing_jwks")))
    (tmp_path / "system.json").write_text(json.dumps(definition))
    add_system = ["exchange", "systems", "add", "--file", str(tmp_path / "system.json")]
    system_added = await invoke([*add_system, "--signing-jwks-file", str(tmp_path / "sig.json")], env)
    assert system_added.exit_code == 0, system_added.output
    assert "immd-backend" in (await invoke(["exchange", "systems", "list"], env)).stdout

    (tmp_path / "item.json").write_text(json.dumps(item()))
    published = await invoke(["exchange", "items", "publish", "--file", str(tmp_path / "item.json")], env)
    assert json.loads(published.stdout)["version"] == 1
    (tmp_path / "bad.json").write_text(json.dumps(item(value_schema={"type": 5})))
    bad = await invoke(["exchange", "items", "publish", "--file", str(tmp_path / "bad.json")], env)
    assert bad.exit_code == 1
    assert "JSON Schema" in bad.output
    assert "immd.residential-address" in (await invoke(["exchange", "items", "list", "--all-versions"], env)).stdout

    (tmp_path / "purpose.json").write_text(json.dumps({**PURPOSE, "consumer_system_ids": ["HK/GOV/IMMD/residency"]}))
    refused = await invoke(["exchange", "purposes", "add", "--file", str(tmp_path / "purpose.json")], env)
    assert refused.exit_code == 1  # a provider, not a consumer
    assert "not a data consumer" in refused.output
    assert "housing" not in (await invoke(["exchange", "purposes", "list"], env)).stdout
    assert (await invoke(["exchange", "purposes", "add", "--file", str(tmp_path / "none.json")], env)).exit_code == 1
    assert (await audit_types(app)).count("exchange.member_registered") == 1


# --- the demo ----------------------------------------------------------------------------------------


async def test_the_demo_registers_four_departments_once(app: FastAPI, tmp_path: Path) -> None:
    async with app.state.sessionmaker() as db:
        await register_demo_clients(db, app.state.oidc, tmp_path)
        added = await register_demo_members(db, app.state.exchange, tmp_path)
        again = await register_demo_members(db, app.state.exchange, tmp_path)
        items = await app.state.exchange.items(db)
        purpose = await app.state.exchange.purpose(db, "housing.public-rental-application")
    assert len(added) == 4
    assert again == []
    assert {i.id for i in items} == {"immd.residential-address", "ird.assessable-income", "td.driving-licence"}
    assert purpose.consumer_system_ids == ["HK/GOV/HD/applications"]
    keys = tmp_path / "members" / "IMMD-residency.json"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    written = json.loads(keys.read_text())
    assert written["client_id"] == "immd-backend"
    assert written["signing_private_jwk"]["d"]
    assert written["encryption_private_jwk"]["use"] == "enc"


async def test_a_proof_without_the_current_nonce_is_answered_with_one(app: FastAPI, client: httpx.AsyncClient) -> None:
    """RFC 9449 §9: a resource server asking for a nonce sends it in a DPoP-Nonce header with the challenge."""
    registered = await backend(app, "reader", ["reader.records"])
    key = DPoPKey.new()
    token = await post_token(client, {"grant_type": "client_credentials", **client_auth(registered)}, key)
    access_token = token.json()["access_token"]
    url = f"{ISSUER}/api/exchange/members"
    key.nonce = None  # a proof without the server's nonce
    stale = {"Authorization": f"DPoP {access_token}", "DPoP": key.proof("GET", url, access_token=access_token)}
    refused = await client.get("/api/exchange/members", headers={**JSON, **stale})
    assert refused.status_code == 401
    assert 'error="use_dpop_nonce"' in refused.headers["WWW-Authenticate"]
    nonce = refused.headers["DPoP-Nonce"]
    fresh = key.proof("GET", url, access_token=access_token, nonce=nonce)
    answered = await client.get("/api/exchange/members", headers={**JSON, **stale, "DPoP": fresh})
    assert answered.status_code == 200, answered.text
