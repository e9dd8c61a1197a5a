"""The OpenID provider's flows end to end through the ASGI app: discovery, code + PKCE, PAR, DPoP,
refresh rotation, client credentials, introspection, revocation, pairwise subjects, consent, acr."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select

from bauhinia.core.outbox import OutboxMessage
from bauhinia.oidc.claims import pairwise_subject
from tests.conftest import PUBLIC_URL
from tests.helpers import csrf_from, make_resident, sign_in
from tests.oidc_support import (
    JSON,
    PAR_URL,
    REDIRECT_URI,
    DPoPKey,
    client_auth,
    code_flow,
    code_form,
    get_userinfo,
    pkce,
    post_token,
    query_of,
    register_client,
    verify_resident,
)


async def jwks(http: httpx.AsyncClient) -> KeySet:
    response = await http.get("/jwks.json", headers=JSON)
    assert response.status_code == 200
    return KeySet.import_key_set(response.json())


async def verified_claims(http: httpx.AsyncClient, token: str, typ: str) -> dict[str, Any]:
    decoded = jwt.decode(token, await jwks(http), algorithms=["ES256", "EdDSA"])
    assert decoded.header["typ"] == typ
    return dict(decoded.claims)


async def test_discovery_names_every_endpoint_and_capability(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/openid-configuration", headers=JSON)
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == PUBLIC_URL
    for name in ("authorization", "token", "userinfo", "introspection", "revocation", "end_session"):
        assert document[f"{name}_endpoint"].startswith(PUBLIC_URL + "/oidc/")
    assert document["pushed_authorization_request_endpoint"] == f"{PUBLIC_URL}/oidc/par"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "none" not in document["id_token_signing_alg_values_supported"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert set(document["acr_values_supported"]) == {"basic", "verified"}
    assert "ES256" in document["dpop_signing_alg_values_supported"]
    assert response.headers["cache-control"].startswith("public")


async def test_jwks_publishes_public_keys_only(client: httpx.AsyncClient) -> None:
    body = (await client.get("/jwks.json", headers=JSON)).json()
    kinds = {key["kty"] for key in body["keys"]}
    assert kinds == {"EC", "OKP"}
    assert all("d" not in key for key in body["keys"])


async def test_code_flow_issues_verifiable_tokens_with_only_the_approved_items(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    rp = await register_client(app)
    resident = await make_resident(app)
    code, verifier = await code_flow(client, rp, resident, items=["email"], scope="openid profile email")
    response = await post_token(client, code_form(code, verifier, rp))
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
    id_token = await verified_claims(client, tokens["id_token"], "JWT")
    assert id_token["iss"] == PUBLIC_URL
    assert id_token["aud"] == rp.client_id
    assert id_token["nonce"] == "nonce-456"
    assert id_token["acr"] == "basic"
    assert "mfa" in id_token["amr"]
    assert id_token["sub"] != resident.id  # pairwise by default
    access = await verified_claims(client, tokens["access_token"], "at+jwt")
    assert access["client_id"] == rp.client_id
    assert access["sub"] == id_token["sub"]
    assert "cnf" not in access
    info = await get_userinfo(client, tokens["access_token"], None)
    assert info.status_code == 200, info.text
    assert info.json() == {"sub": id_token["sub"], "email": resident.email, "email_verified": False}


async def test_authorization_response_carries_iss_and_state(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app)
    await sign_in(client, await make_resident(app))
    _, challenge = pkce()
    from tests.oidc_support import authorize_query

    start = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge)}")
    consent_page = await client.get(start.headers["location"])
    assert "Share your details with Test service" in consent_page.text
    assert "To test the provider." in consent_page.text


async def test_pairwise_subjects_differ_between_sectors_and_stay_stable(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await register_client(app, "rp-first", sector_identifier="first.gov.hk")
    second = await register_client(app, "rp-second", sector_identifier="second.gov.hk")
    public = await register_client(app, "rp-public", subject_type="public")
    resident = await make_resident(app)
    await sign_in(client, resident)
    subjects = []
    for rp in (first, second, first, public):
        code, verifier = await code_flow(client, rp, resident, items=[], signed_in=True)
        tokens = (await post_token(client, code_form(code, verifier, rp))).json()
        subjects.append((await verified_claims(client, tokens["id_token"], "JWT"))["sub"])
    assert subjects[0] != subjects[1]
    assert subjects[0] == subjects[2]
    assert subjects[3] == resident.id
    key = app.state.keyring.derive(__import__("bauhinia.core.keys", fromlist=["Purpose"]).Purpose.PAIRWISE_SUBJECT)
    assert subjects[0] == pairwise_subject(key, "first.gov.hk", resident.id)


async def test_fapi_flow_with_par_dpop_userinfo_and_refresh_rotation(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app, "rp-fapi", fapi=True)
    resident = await make_resident(app)
    await sign_in(client, resident)
    dpop = DPoPKey.new()
    verifier, challenge = pkce()
    pushed_form = {
        "client_id": rp.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **client_auth(rp, aud=PUBLIC_URL),
    }
    pushed = await client.post("/oidc/par", data=pushed_form, headers={**JSON, "DPoP": dpop.proof("POST", PAR_URL)})
    if pushed.status_code == 400 and pushed.json()["error"] == "use_dpop_nonce":
        dpop.nonce = pushed.headers["DPoP-Nonce"]
        pushed_form.update(client_auth(rp))
        pushed = await client.post("/oidc/par", data=pushed_form, headers={**JSON, "DPoP": dpop.proof("POST", PAR_URL)})
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    start = await client.get(f"/oidc/authorize?client_id={rp.client_id}&request_uri={request_uri}")
    assert start.status_code == 303
    from tests.oidc_support import approve

    callback = query_of(await approve(client, start.headers["location"], ["name", "birthdate"]))
    assert callback["state"] == "s1"
    assert callback["iss"] == PUBLIC_URL
    response = await post_token(client, code_form(callback["code"], verifier, rp), dpop)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "DPoP"
    access = await verified_claims(client, tokens["access_token"], "at+jwt")
    assert access["cnf"] == {"jkt": dpop.jkt}
    info = await get_userinfo(client, tokens["access_token"], dpop)
    assert info.status_code == 200, info.text
    assert info.json()["family_name"] == "TESTER"
    assert "birthdate" in info.json()
    assert "email" not in info.json()
    refreshed = await post_token(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **client_auth(rp)}, dpop
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
    other_key = DPoPKey.new()
    stolen = await post_token(
        client,
        {"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"], **client_auth(rp)},
        other_key,
    )
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"


async def test_client_credentials_with_basic_secret_introspect_and_revoke(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    backend = await register_client(
        app,
        "dept-backend",
        grant_types=["client_credentials"],
        scopes=["dept.read", "dept.write"],
        items=[],
        redirect_uris=[],
        post_logout_redirect_uris=[],
        token_endpoint_auth_method="client_secret_basic",
        jwks=None,
    )
    assert backend.secret is not None
    basic = httpx.BasicAuth(backend.client_id, backend.secret)
    response = await client.post(
        "/oidc/token", data={"grant_type": "client_credentials", "scope": "dept.read"}, auth=basic, headers=JSON
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    claims = await verified_claims(client, token, "at+jwt")
    assert claims["sub"] == "dept-backend"
    assert claims["scope"] == "dept.read"
    assert jwt.decode(token, await jwks(client), algorithms=["ES256"]).header["alg"] == "ES256"
    active = await client.post("/oidc/introspect", data={"token": token}, auth=basic, headers=JSON)
    assert active.json()["active"] is True
    assert active.json()["scope"] == "dept.read"
    revoked = await client.post("/oidc/revoke", data={"token": token}, auth=basic, headers=JSON)
    assert revoked.status_code == 200
    after = await client.post("/oidc/introspect", data={"token": token}, auth=basic, headers=JSON)
    assert after.json() == {"active": False}
    too_much = await client.post(
        "/oidc/token", data={"grant_type": "client_credentials", "scope": "openid"}, auth=basic, headers=JSON
    )
    assert too_much.json()["error"] == "invalid_scope"


async def test_remembered_consent_is_skipped_until_withdrawn(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app)
    resident = await make_resident(app)
    await sign_in(client, resident)
    from tests.oidc_support import approve, authorize_query

    _, challenge = pkce()
    start = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge)}")
    first = query_of(await approve(client, start.headers["location"], ["name"], remember=True))
    assert "code" in first
    # Remembered: the next request goes straight back with a code.
    _, challenge = pkce()
    again = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge)}")
    straight = await client.get(again.headers["location"])
    assert straight.status_code == 303
    assert "code=" in straight.headers["location"]
    # prompt=consent asks again.
    _, challenge = pkce()
    asked = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge, prompt='consent')}")
    assert (await client.get(asked.headers["location"])).status_code == 200
    listing = await client.get("/account/services")
    assert "Test service" in listing.text
    assert "Your name in English and Chinese" in listing.text
    from tests.helpers import csrf_from

    token = await csrf_from(client, "/account/services")
    withdrawn = await client.post(f"/account/services/{rp.client_id}/withdraw", data={"csrf_token": token})
    assert withdrawn.headers["location"] == "/account/services?notice=withdrawn"
    _, challenge = pkce()
    after = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge)}")
    assert (await client.get(after.headers["location"])).status_code == 200  # asks again


async def test_withdrawal_revokes_the_services_tokens(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app)
    resident = await make_resident(app)
    await sign_in(client, resident)
    from tests.helpers import csrf_from
    from tests.oidc_support import approve, authorize_query

    verifier, challenge = pkce()
    start = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge)}")
    code = query_of(await approve(client, start.headers["location"], ["email"], remember=True))["code"]
    tokens = (await post_token(client, code_form(code, verifier, rp))).json()
    token = await csrf_from(client, "/account/services")
    await client.post(f"/account/services/{rp.client_id}/withdraw", data={"csrf_token": token})
    info = await get_userinfo(client, tokens["access_token"], None)
    assert info.status_code == 401
    refreshed = await post_token(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **client_auth(rp)}
    )
    assert refreshed.json()["error"] == "invalid_grant"


async def test_prompt_none_without_a_session_returns_login_required(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app)
    from tests.oidc_support import authorize_query

    _, challenge = pkce()
    response = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge, prompt='none')}")
    query = query_of(response.headers["location"])
    assert query["error"] == "login_required"
    assert query["state"] == "state-123"
    assert query["iss"] == PUBLIC_URL


async def test_prompt_none_needing_consent_returns_consent_required(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app)
    await sign_in(client, await make_resident(app))
    from tests.oidc_support import authorize_query

    _, challenge = pkce()
    response = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge, prompt='none')}")
    assert query_of(response.headers["location"])["error"] == "consent_required"


async def test_prompt_login_and_max_age_send_a_signed_in_resident_to_sign_in_again(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    rp = await register_client(app)
    resident = await make_resident(app)
    await sign_in(client, resident)
    from tests.oidc_support import authorize_query

    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        _, challenge = pkce()
        start = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge, **extra)}")
        step = await client.get(start.headers["location"])
        assert step.status_code == 303, extra
        assert step.headers["location"].startswith("/signin?"), extra
        assert "reauth=1" in step.headers["location"]
        # Signing in again satisfies the request: back at the interaction, the consent page shows.
        # (A recovery code as the second factor: the TOTP code of this time step is already spent.)
        await sign_in(client, resident, code=resident.recovery_codes.pop())
        assert (await client.get(start.headers["location"])).status_code == 200, extra


@pytest.mark.parametrize("max_age", ["\u00b2", "\u0661\u0662", "-1", "1.5", "1" * 10])
async def test_a_max_age_that_is_not_an_ascii_number_is_invalid_request(
    app: FastAPI, client: httpx.AsyncClient, max_age: str
) -> None:
    """str.isdigit() accepts a superscript two, which int() then refuses: that was a 500."""
    rp = await register_client(app)
    from tests.oidc_support import authorize_query

    _, challenge = pkce()
    response = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge, max_age=max_age)}")
    assert response.status_code == 303
    answer = query_of(response.headers["location"])
    assert (answer["error"], answer["error_description"]) == (
        "invalid_request",
        "max_age must be a non-negative integer",
    )


async def test_verified_service_steps_up_or_refuses(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app, "rp-verified", required_acr="verified")
    basic_resident = await make_resident(app)
    await sign_in(client, basic_resident)
    from tests.oidc_support import authorize_query

    _, challenge = pkce()
    start = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge)}")
    page = await client.get(start.headers["location"])
    assert page.status_code == 403
    assert "needs a verified identity" in page.text
    assert "error=unmet_authentication_requirements" in page.text


async def test_verified_resident_gets_acr_verified(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app, "rp-verified", required_acr="verified")
    resident = await make_resident(app)
    await verify_resident(app, resident)
    code, verifier = await code_flow(client, rp, resident, items=[])
    tokens = (await post_token(client, code_form(code, verifier, rp))).json()
    assert (await verified_claims(client, tokens["id_token"], "JWT"))["acr"] == "verified"


async def test_signed_request_object_is_used(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app)
    await sign_in(client, await make_resident(app))
    _, challenge = pkce()
    import time

    now = int(time.time())
    request_object = jwt.encode(
        {"alg": "ES256", "kid": rp.key.kid},
        {
            "iss": rp.client_id,
            "aud": PUBLIC_URL,
            "client_id": rp.client_id,
            "exp": now + 60,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": "from-jar",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        rp.key,
    )
    start = await client.get(f"/oidc/authorize?client_id={rp.client_id}&request={request_object}&state=outer")
    finished = await client.get(start.headers["location"])
    assert query_of(finished.headers["location"])["state"] == "from-jar"


async def test_rp_initiated_logout_ends_the_session_and_redirects_to_a_registered_uri(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    rp = await register_client(app)
    resident = await make_resident(app)
    code, verifier = await code_flow(client, rp, resident, items=[])
    tokens = (await post_token(client, code_form(code, verifier, rp))).json()
    response = await client.get(
        "/oidc/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://rp.example.hk/signed-out",
            "state": "bye",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://rp.example.hk/signed-out?state=bye"
    assert (await client.get("/account")).status_code == 303
    refreshed = await post_token(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **client_auth(rp)}
    )
    assert refreshed.json()["error"] == "invalid_grant"  # the session's grants end with it


async def test_key_rotation_publishes_both_and_signs_with_the_new_key(app: FastAPI, client: httpx.AsyncClient) -> None:
    from datetime import timedelta

    before = {k["kid"] for k in (await client.get("/jwks.json")).json()["keys"]}
    async with app.state.sessionmaker() as db:
        added = await app.state.oidc.keys.rotate(db, timedelta(0))
    after = {k["kid"] for k in (await client.get("/jwks.json")).json()["keys"]}
    assert before < after
    assert set(added) <= after
    rp = await register_client(app)
    code, verifier = await code_flow(client, rp, await make_resident(app), items=[])
    tokens = (await post_token(client, code_form(code, verifier, rp))).json()
    header = json.loads(__import__("base64").urlsafe_b64decode(tokens["access_token"].split(".")[0] + "=="))
    assert header["kid"] in added


async def test_operator_api_registers_lists_and_disables_clients(app: FastAPI, client: httpx.AsyncClient) -> None:
    operator = await register_client(
        app,
        "ops",
        grant_types=["client_credentials"],
        scopes=["bauhinia.operator"],
        items=[],
        redirect_uris=[],
        post_logout_redirect_uris=[],
    )
    token = (await post_token(client, {"grant_type": "client_credentials", **client_auth(operator)})).json()
    headers = {**JSON, "Authorization": f"Bearer {token['access_token']}"}
    new_client = {
        "client_id": "new-service",
        "client_name": {"en": "New service"},
        "redirect_uris": ["https://new.example.hk/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    created = await client.post("/api/operator/clients", json=new_client, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["client_secret"]
    duplicate = await client.post("/api/operator/clients", json=new_client, headers=headers)
    assert duplicate.status_code == 409
    invalid = await client.post(
        "/api/operator/clients",
        json={**new_client, "client_id": "x2", "redirect_uris": ["http://evil.example/"]},
        headers=headers,
    )
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    listed = await client.get("/api/operator/clients", headers=headers)
    assert {c["client_id"] for c in listed.json()} == {"ops", "new-service"}
    disabled = await client.post("/api/operator/clients/new-service/disable", headers=headers)
    assert disabled.json()["disabled"] is True
    anonymous = await client.get("/api/operator/clients", headers=JSON)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A department's server on loopback: serves a JWK set and records back-channel logout posts."""

    jwks: ClassVar[dict[str, Any]] = {}
    received: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        body = json.dumps(self.jwks).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.received.append(self.rfile.read(length).decode())
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def department_server() -> Iterator[str]:
    _Recorder.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_client_keys_fetched_from_jwks_uri(
    app: FastAPI, client: httpx.AsyncClient, department_server: str
) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    _Recorder.jwks = {"keys": [key.as_dict(private=False)]}
    backend = await register_client(
        app,
        "dept-remote-keys",
        grant_types=["client_credentials"],
        scopes=["dept.read"],
        items=[],
        redirect_uris=[],
        post_logout_redirect_uris=[],
        jwks=None,
        jwks_uri=f"{department_server}/jwks",
        allow_loopback_http=True,
    )
    backend.key = key
    accepted = await post_token(client, {"grant_type": "client_credentials", **client_auth(backend)})
    assert accepted.status_code == 200, accepted.text
    backend.key = ECKey.generate_key("P-256", auto_kid=True)  # a key the department never published
    refused = await post_token(client, {"grant_type": "client_credentials", **client_auth(backend)})
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


@pytest.mark.usefixtures("running_app")  # the outbox's worker delivers the tokens
async def test_sign_out_sends_back_channel_logout_tokens(
    app: FastAPI, client: httpx.AsyncClient, department_server: str
) -> None:
    rp = await register_client(app, backchannel_logout_uri=f"{department_server}/backchannel", allow_loopback_http=True)
    resident = await make_resident(app)
    code, verifier = await code_flow(client, rp, resident, items=[])
    tokens = (await post_token(client, code_form(code, verifier, rp))).json()
    id_token = await verified_claims(client, tokens["id_token"], "JWT")
    token = await csrf_from(client, "/account")
    assert (await client.post("/signout", data={"csrf_token": token})).status_code == 303
    for _ in range(100):  # delivered from the outbox, after the commit
        if _Recorder.received:
            break
        await asyncio.sleep(0.05)
    assert len(_Recorder.received) == 1
    logout_token = parse_qs(_Recorder.received[0])["logout_token"][0]
    claims = await verified_claims(client, logout_token, "logout+jwt")
    assert claims["sid"] == id_token["sid"]
    assert claims["sub"] == id_token["sub"]
    assert claims["aud"] == rp.client_id
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    assert "nonce" not in claims
    for _ in range(100):  # sent from the outbox, retried no longer than the token lives; recorded once answered
        async with app.state.sessionmaker() as db:
            message = (await db.scalars(select(OutboxMessage))).one()
        if message.delivered_at is not None:
            break
        await asyncio.sleep(0.05)
    assert message.kind == "oidc.backchannel_logout"
    assert message.content_type == "application/x-www-form-urlencoded"
    assert message.delivered_at is not None
    assert message.expires_at - message.created_at == timedelta(minutes=2)
    assert claims["exp"] - claims["iat"] == 120


async def test_public_client_uses_pkce_without_a_secret(app: FastAPI, client: httpx.AsyncClient) -> None:
    public = await register_client(app, "rp-public-app", token_endpoint_auth_method="none", jwks=None)
    code, verifier = await code_flow(client, public, await make_resident(app), items=[])
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": public.client_id,
    }
    response = await post_token(client, form)
    assert response.status_code == 200, response.text
    introspection = await client.post(
        "/oidc/introspect", data={"token": "x", "client_id": public.client_id}, headers=JSON
    )
    assert introspection.status_code == 401  # public clients may not introspect


async def test_eddsa_id_token_and_claims_requested_for_the_id_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    rp = await register_client(app, "rp-eddsa", id_token_signed_response_alg="EdDSA")
    claims_request = json.dumps({"id_token": {"email": None, "birthdate": {"essential": True}}})
    code, verifier = await code_flow(
        client, rp, await make_resident(app), items=["email"], scope="openid", claims=claims_request
    )
    tokens = (await post_token(client, code_form(code, verifier, rp))).json()
    decoded = jwt.decode(tokens["id_token"], await jwks(client), algorithms=["EdDSA"])
    assert decoded.header["alg"] == "EdDSA"
    digest = hashlib.sha512(tokens["access_token"].encode()).digest()[:32]
    assert decoded.claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert "email" in decoded.claims  # approved and asked for in the ID token
    assert "birthdate" not in decoded.claims  # asked for, not approved


async def test_ui_locales_choose_the_language_unless_the_resident_chose_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    rp = await register_client(app, department={"en": "Test Department", "zh-Hant": "測試部門"})
    await sign_in(client, await make_resident(app))
    from tests.oidc_support import authorize_query

    _, challenge = pkce()
    start = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge, ui_locales='zh-HK en')}")
    assert "bauhinia_lang=zh-Hant" in start.headers["set-cookie"]
    page = await client.get(start.headers["location"])
    assert "與測試服務分享你的資料" in page.text
    assert "此服務由測試部門提供。" in page.text
    client.cookies.set("bauhinia_lang", "en")
    _, challenge = pkce()
    chosen = await client.get(f"/oidc/authorize?{authorize_query(rp, challenge, ui_locales='zh-Hans')}")
    assert "set-cookie" not in chosen.headers


async def test_userinfo_without_credentials_gets_a_bare_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/oidc/userinfo", headers=JSON)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="bauhinia"')
    assert "DPoP algs=" in challenge
    assert "error=" not in challenge  # RFC 6750 §3.1: no error code when no credentials were sent
