"""Attacks on the OpenID provider, each refused with its registered error code.

Code replay, PKCE downgrade, redirect_uri manipulation, ``alg: none`` and algorithm confusion,
client assertion replay, DPoP proof replay and mismatch, refresh token reuse, mix-up (RFC 9207),
open redirects on logout, ``acr`` downgrade, PAR misuse, FAPI shortcuts and disabled clients.
Every attack is first shown to be refused, then (where it makes the test meaningful) the honest
request next to it is shown to succeed, so a test cannot pass because everything fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from sqlalchemy import update

from bauhinia.oidc import dpop as dpop_rules
from bauhinia.oidc.models import AuthorizationRequest
from tests.helpers import CSRF_PATTERN, TestResident, make_resident, sign_in
from tests.integration.support import make_staff
from tests.oidc_support import (
    ASSERTION_TYPE,
    ISSUER,
    JSON,
    PAR_URL,
    REDIRECT_URI,
    TOKEN_URL,
    USERINFO_URL,
    DPoPKey,
    TestClient,
    approve,
    assertion,
    authorize_query,
    client_auth,
    code_flow,
    code_form,
    get_userinfo,
    pkce,
    post_token,
    query_of,
    register_client,
)

SIGNED_OUT_URI = "https://rp.example.hk/signed-out"
OTHER_REDIRECT = "https://other.example.hk/callback"
OTHER_SIGNED_OUT = "https://other.example.hk/signed-out"
INTROSPECT_URL = f"{ISSUER}/oidc/introspect"


# --- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
async def rp(app: FastAPI) -> TestClient:
    return await register_client(app)


@pytest.fixture
async def other_rp(app: FastAPI) -> TestClient:
    return await register_client(
        app, "rp-two", redirect_uris=[OTHER_REDIRECT], post_logout_redirect_uris=[OTHER_SIGNED_OUT]
    )


@pytest.fixture
async def dpop_rp(app: FastAPI) -> TestClient:
    return await register_client(app, "rp-dpop", dpop_bound_access_tokens=True)


@pytest.fixture
async def resident(app: FastAPI) -> TestResident:
    return await make_resident(app)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_jws(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A JWS built by hand: unsigned (``alg: none``) or HMAC-SHA256 with ``secret`` (joserfc refuses both)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def public_key_secrets(public_jwk: dict[str, Any]) -> list[bytes]:
    """What a confused verifier might use as the HMAC key: the public JWK's raw JSON (as published,
    compact, sorted) and the public key's PEM."""
    pem = ECKey.import_key(public_jwk).as_pem(private=False)
    return [
        json.dumps(public_jwk).encode(),
        json.dumps(public_jwk, separators=(",", ":")).encode(),
        json.dumps(public_jwk, sort_keys=True, separators=(",", ":")).encode(),
        pem,
    ]


def forgeries(header: dict[str, Any], claims: dict[str, Any], public_jwk: dict[str, Any]) -> list[str]:
    """``alg: none`` (in its spellings) and HS256 keyed with the public key, same header and claims otherwise."""
    unsigned = [hand_made_jws({**header, "alg": alg}, claims, None) for alg in ("none", "None", "NONE")]
    confused = [hand_made_jws({**header, "alg": "HS256"}, claims, s) for s in public_key_secrets(public_jwk)]
    return unsigned + confused


def test_the_forgeries_are_what_a_confused_verifier_accepts() -> None:
    """The tool check: an HMAC verifier keyed with the public JWK's JSON accepts the forgeries (so their
    refusal below is the provider's doing), and the unsigned ones carry no signature at all."""
    key = ECKey.generate_key("P-256")
    public = key.as_dict(private=False)
    made = forgeries({"typ": "JWT"}, {"sub": "x"}, public)
    for forged in made[:3]:
        assert unverified_header(forged)["alg"].lower() == "none"
        assert forged.endswith(".")
    json_secrets = public_key_secrets(public)[:3]
    for forged, secret in zip(made[3:6], json_secrets, strict=True):
        assert jwt.decode(forged, OctKey.import_key(secret), algorithms=["HS256"]).claims == {"sub": "x"}


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def unverified_header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return header


def assert_oauth_error(response: httpx.Response, error: str, status: int = 400) -> None:
    """RFC 6749 §5.2: the status, a JSON body with the registered code, never cached."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    assert response.headers["cache-control"] == "no-store"


def assert_resource_error(response: httpx.Response, error: str, scheme: str = "Bearer", status: int = 401) -> None:
    """RFC 6750 §3 / RFC 9449 §7.1: the status and a WWW-Authenticate challenge naming the error."""
    assert response.status_code == status, response.text[:500]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'{scheme} error="{error}"'), challenge
    assert response.json()["error"] == error
    assert "sub" not in response.json()


def links_of(page: str) -> list[str]:
    """Every address a page could send the browser to (links, forms, refreshes)."""
    found = re.findall(r'(?:href|action|src|formaction)="([^"]*)"', page)
    found += re.findall(r'http-equiv="refresh"[^>]*content="[^"]*url=([^"]*)"', page, re.I)
    return [html.unescape(link) for link in found]


def assert_error_page(response: httpx.Response, error: str) -> None:
    """An error shown to the person: never a redirect, so nothing reaches an unverified address."""
    assert response.status_code == 400, response.headers.get("location")
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert f'<code lang="en">{error}</code>' in response.text
    assert not [link for link in links_of(response.text) if urlsplit(link).netloc not in ("", "bauhinia.test")]


def assert_error_redirect(response: httpx.Response, error: str, state: str | None = "state-123") -> dict[str, str]:
    """An error sent back to the registered redirect URI with ``state`` and RFC 9207's ``iss``; never a code."""
    assert response.status_code == 303, response.text[:500]
    location = response.headers["location"]
    assert location.startswith(f"{REDIRECT_URI}?"), location
    query = query_of(location)
    assert query["error"] == error, query
    assert query["iss"] == ISSUER
    assert query.get("state") == state
    assert "code" not in query
    return query


async def tokens(
    http: httpx.AsyncClient,
    rp: TestClient,
    resident: TestResident | None,
    dpop: DPoPKey | None = None,
    *,
    signed_in: bool = False,
    **params: str,
) -> dict[str, Any]:
    """A complete, honest code flow (``params``: extra authorization request parameters): the token response."""
    code, verifier = await code_flow(http, rp, resident, signed_in=signed_in, **cast(dict[str, Any], params))
    response = await post_token(http, code_form(code, verifier, rp), dpop)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def introspect(http: httpx.AsyncClient, rp: TestClient, token: str) -> dict[str, Any]:
    response = await http.post("/oidc/introspect", data={"token": token, **client_auth(rp)}, headers=JSON)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(
    http: httpx.AsyncClient, rp: TestClient, refresh_token: str, dpop: DPoPKey | None = None
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **client_auth(rp)}
    return await post_token(http, form, dpop)


async def authorize(http: httpx.AsyncClient, rp: TestClient, **params: str) -> httpx.Response:
    """GET the authorization endpoint with an otherwise valid request; ``params`` override (``""`` removes)."""
    _, challenge = pkce()
    return await http.get(f"/oidc/authorize?{authorize_query(rp, challenge, **params)}")


def parse_qs_single(query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(query).items()}


def token_form(**fields: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI, **fields}


# --- code replay (RFC 6749 §4.1.2, §10.5) ------------------------------------------------------------


async def test_a_replayed_code_is_refused_and_revokes_what_it_first_gave(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    code, verifier = await code_flow(client, rp, resident)
    first = await post_token(client, code_form(code, verifier, rp))
    assert first.status_code == 200
    issued = first.json()
    assert (await introspect(client, rp, issued["access_token"]))["active"] is True

    replay = await post_token(client, code_form(code, verifier, rp))
    assert_oauth_error(replay, "invalid_grant")

    assert (await introspect(client, rp, issued["access_token"]))["active"] is False
    assert (await introspect(client, rp, issued["refresh_token"]))["active"] is False
    assert_resource_error(await get_userinfo(client, issued["access_token"], None), "invalid_token")
    assert_oauth_error(await refresh(client, rp, issued["refresh_token"]), "invalid_grant")


async def test_an_unknown_or_forged_code_is_refused(client: httpx.AsyncClient, rp: TestClient) -> None:
    verifier, _ = pkce()
    for code in (secrets.token_urlsafe(32), "x" * 5000, "' OR 1=1 --"):
        assert_oauth_error(await post_token(client, code_form(code, verifier, rp)), "invalid_grant")
    assert_oauth_error(await post_token(client, code_form("", verifier, rp)), "invalid_request")


# --- PKCE (RFC 7636, OAuth 2.0 Security BCP §2.1.1) -----------------------------------------------------


async def test_the_plain_pkce_method_is_refused(client: httpx.AsyncClient, rp: TestClient) -> None:
    verifier, _ = pkce()
    response = await authorize(client, rp, code_challenge=verifier[:43], code_challenge_method="plain")
    assert_error_redirect(response, "invalid_request")


async def test_a_request_without_a_code_challenge_is_refused(client: httpx.AsyncClient, rp: TestClient) -> None:
    assert_error_redirect(await authorize(client, rp, code_challenge="", code_challenge_method=""), "invalid_request")
    assert_error_redirect(await authorize(client, rp, code_challenge=""), "invalid_request")


async def test_a_challenge_without_its_method_is_refused(client: httpx.AsyncClient, rp: TestClient) -> None:
    """RFC 7636 §4.3: a missing method means ``plain`` — a silent downgrade, so refused."""
    _, challenge = pkce()
    response = await authorize(client, rp, code_challenge=challenge, code_challenge_method="")
    assert_error_redirect(response, "invalid_request")


async def test_pkce_is_required_of_pushed_requests_too(client: httpx.AsyncClient, rp: TestClient) -> None:
    form = {
        "client_id": rp.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        **client_auth(rp),
    }
    assert_oauth_error(await client.post("/oidc/par", data=form, headers=JSON), "invalid_request")
    plain = {**form, **client_auth(rp), "code_challenge": "a" * 43, "code_challenge_method": "plain"}
    assert_oauth_error(await client.post("/oidc/par", data=plain, headers=JSON), "invalid_request")


async def test_a_missing_code_verifier_is_an_invalid_request(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    code, verifier = await code_flow(client, rp, resident)
    form = code_form(code, verifier, rp)
    del form["code_verifier"]
    assert_oauth_error(await post_token(client, form), "invalid_request")
    empty = {**form, **client_auth(rp), "code_verifier": ""}
    assert_oauth_error(await post_token(client, empty), "invalid_request")


async def test_a_wrong_code_verifier_is_refused_and_spends_the_code(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    code, verifier = await code_flow(client, rp, resident)
    wrong, _ = pkce()
    assert_oauth_error(await post_token(client, code_form(code, wrong, rp)), "invalid_grant")
    assert_oauth_error(await post_token(client, code_form(code, verifier, rp)), "invalid_grant")


async def test_the_challenge_itself_is_not_a_verifier(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    """A client that saw only the authorization request (with the challenge) cannot redeem the code."""
    code, verifier = await code_flow(client, rp, resident)
    challenge = b64(hashlib.sha256(verifier.encode()).digest())
    assert_oauth_error(await post_token(client, code_form(code, challenge, rp)), "invalid_grant")


# --- redirect_uri manipulation (RFC 6749 §3.1.2.4, §4.1.2.1; Security BCP §4.1) -------------------------

MANIPULATED_REDIRECTS = {
    "different path": "https://rp.example.hk/callback/../evil",
    "longer path": "https://rp.example.hk/callback/more",
    "prefix": "https://rp.example.hk/callbackx",
    "extra query": "https://rp.example.hk/callback?next=https://evil.example/",
    "trailing slash": "https://rp.example.hk/callback/",
    "host case": "https://RP.example.hk/callback",
    "scheme case": "HTTPS://rp.example.hk/callback",
    "explicit port": "https://rp.example.hk:443/callback",
    "other port": "https://rp.example.hk:8443/callback",
    "plain http": "http://rp.example.hk/callback",
    "userinfo in authority": "https://rp.example.hk@evil.example/callback",
    "userinfo after host": "https://evil.example\\@rp.example.hk/callback",
    "fragment": "https://rp.example.hk/callback#https://evil.example/",
    "percent-encoded path": "https://rp.example.hk/%63allback",
    "subdomain": "https://rp.example.hk.evil.example/callback",
    "unregistered": "https://evil.example/callback",
    "scheme-relative": "//evil.example/callback",
    "javascript": "javascript:alert(document.domain)//https://rp.example.hk/callback",
    "nul byte": "https://rp.example.hk/callback\x00.evil.example",
    "another client's": OTHER_REDIRECT,
    "missing": "",
}


@pytest.mark.parametrize("uri", MANIPULATED_REDIRECTS.values(), ids=MANIPULATED_REDIRECTS.keys())
async def test_a_manipulated_redirect_uri_gets_an_error_page(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient, uri: str
) -> None:
    """Exact string comparison only (Security BCP §4.1.3); ``other_rp`` makes "another client's" a registered URI."""
    assert_error_page(await authorize(client, rp, redirect_uri=uri), "invalid_request")
    _, challenge = pkce()
    form = parse_qs_single(authorize_query(rp, challenge, redirect_uri=uri))
    assert_error_page(await client.post("/oidc/authorize", data=form), "invalid_request")


async def test_a_bad_redirect_uri_wins_over_every_other_error(client: httpx.AsyncClient, rp: TestClient) -> None:
    """Even when the request is wrong in other ways, nothing is sent to an unregistered address."""
    response = await authorize(
        client, rp, redirect_uri="https://evil.example/cb", response_type="token", code_challenge_method="plain"
    )
    assert_error_page(response, "invalid_request")


async def test_a_repeated_redirect_uri_is_refused_without_a_redirect(client: httpx.AsyncClient, rp: TestClient) -> None:
    """RFC 6749 §3.1: parameters must not repeat; which copy wins is exactly what an attacker plays with."""
    _, challenge = pkce()
    rest = authorize_query(rp, challenge, redirect_uri="")
    for first, second in [("https://evil.example/cb", REDIRECT_URI), (REDIRECT_URI, "https://evil.example/cb")]:
        query = urlencode([("redirect_uri", first), ("redirect_uri", second)])
        assert_error_page(await client.get(f"/oidc/authorize?{query}&{rest}"), "invalid_request")
    twice = urlencode([("state", "a"), ("state", "b")])
    assert_error_page(
        await client.get(f"/oidc/authorize?{authorize_query(rp, challenge, state='')}&{twice}"), "invalid_request"
    )
    assert (await client.get(f"/oidc/authorize?{authorize_query(rp, challenge)}")).status_code == 303


async def test_a_pushed_request_with_a_manipulated_redirect_uri_is_refused(
    client: httpx.AsyncClient, rp: TestClient
) -> None:
    _, challenge = pkce()
    for uri in ("https://rp.example.hk/callback/", "https://rp.example.hk@evil.example/callback", OTHER_REDIRECT):
        form = {**parse_qs_single(authorize_query(rp, challenge, redirect_uri=uri)), **client_auth(rp)}
        assert_oauth_error(await client.post("/oidc/par", data=form, headers=JSON), "invalid_request")


async def test_the_token_request_must_repeat_the_exact_redirect_uri(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    code, verifier = await code_flow(client, rp, resident)
    for uri in ("https://rp.example.hk/callback/", "https://evil.example/callback"):
        response = await post_token(client, {**code_form(code, verifier, rp), "redirect_uri": uri})
        assert_oauth_error(response, "invalid_grant")
    # The code was spent by the first mismatch.
    assert_oauth_error(await post_token(client, code_form(code, verifier, rp)), "invalid_grant")


async def test_the_token_request_without_the_redirect_uri_is_refused(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    code, verifier = await code_flow(client, rp, resident)
    form = code_form(code, verifier, rp)
    del form["redirect_uri"]
    assert_oauth_error(await post_token(client, form), "invalid_grant")


# --- alg: none and algorithm confusion (RFC 8725 §2.1, §3.1) ---------------------------------------------


def assertion_claims(rp: TestClient, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": rp.client_id,
        "sub": rp.client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    return {**claims, **changes}


async def test_an_unsigned_or_hmac_client_assertion_is_refused(client: httpx.AsyncClient, rp: TestClient) -> None:
    public = rp.key.as_dict(private=False)
    for forged in forgeries({"kid": rp.key.kid, "typ": "JWT"}, assertion_claims(rp), public):
        form = {"token": "anything", "client_assertion_type": ASSERTION_TYPE, "client_assertion": forged}
        assert_oauth_error(await client.post("/oidc/introspect", data=form, headers=JSON), "invalid_client", 401)
        token_request = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
        response = await post_token(client, {**token_request, "client_assertion": forged})
        assert_oauth_error(response, "invalid_client", 401)
    honest = {"token": "anything", **client_auth(rp)}
    assert (await client.post("/oidc/introspect", data=honest, headers=JSON)).status_code == 200


def request_object_claims(rp: TestClient, challenge: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": rp.client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 300,
        "client_id": rp.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return {**claims, **changes}


async def test_an_unsigned_or_hmac_request_object_is_refused(client: httpx.AsyncClient, rp: TestClient) -> None:
    _, challenge = pkce()
    claims = request_object_claims(rp, challenge)
    for forged in forgeries({"kid": rp.key.kid, "typ": "oauth-authz-req+jwt"}, claims, rp.key.as_dict(private=False)):
        query = urlencode({"client_id": rp.client_id, "request": forged})
        assert_error_page(await client.get(f"/oidc/authorize?{query}"), "invalid_request_object")
        pushed = await client.post("/oidc/par", data={"request": forged, **client_auth(rp)}, headers=JSON)
        assert_oauth_error(pushed, "invalid_request_object")
    signed = jwt.encode({"alg": "ES256", "kid": rp.key.kid}, claims, rp.key, algorithms=["ES256"])
    honest = await client.get(f"/oidc/authorize?{urlencode({'client_id': rp.client_id, 'request': signed})}")
    assert honest.status_code == 303
    assert honest.headers["location"].startswith("/oidc/interaction/")


async def test_a_request_object_signed_by_a_key_not_registered_for_the_client_is_refused(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient
) -> None:
    _, challenge = pkce()
    claims = request_object_claims(rp, challenge)
    for key in (ECKey.generate_key("P-256"), other_rp.key):
        forged = jwt.encode({"alg": "ES256", "kid": rp.key.kid}, claims, key, algorithms=["ES256"])
        query = urlencode({"client_id": rp.client_id, "request": forged})
        assert_error_page(await client.get(f"/oidc/authorize?{query}"), "invalid_request_object")


def dpop_proof_claims(method: str, url: str, nonce: str | None) -> dict[str, Any]:
    claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
    return {**claims, "nonce": nonce} if nonce else claims


async def current_nonce(http: httpx.AsyncClient, rp: TestClient) -> str:
    """A server nonce, as a client learns it: from a first DPoP request that lacked one."""
    key = DPoPKey.new()
    response = await http.post(
        "/oidc/token",
        data={"grant_type": "client_credentials", **client_auth(rp)},
        headers={**JSON, "DPoP": key.proof("POST", TOKEN_URL)},
    )
    assert_oauth_error(response, "use_dpop_nonce")
    return response.headers["DPoP-Nonce"]


async def test_an_unsigned_or_hmac_dpop_proof_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    key = DPoPKey.new()
    issued = await tokens(client, dpop_rp, resident, key)
    nonce = await current_nonce(client, dpop_rp)
    public = key.key.as_dict(private=False)
    header = {"typ": "dpop+jwt", "jwk": public}
    for forged in forgeries(header, dpop_proof_claims("POST", TOKEN_URL, nonce), public):
        form = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"], **client_auth(dpop_rp)}
        response = await client.post("/oidc/token", data=form, headers={**JSON, "DPoP": forged})
        assert_oauth_error(response, "invalid_dpop_proof")
    access = issued["access_token"]
    for forged in forgeries(header, {**dpop_proof_claims("GET", USERINFO_URL, nonce), "ath": ath(access)}, public):
        response = await client.get(
            "/oidc/userinfo", headers={**JSON, "Authorization": f"DPoP {access}", "DPoP": forged}
        )
        assert_resource_error(response, "invalid_dpop_proof", "DPoP")
    assert (await get_userinfo(client, access, key)).status_code == 200


def ath(access_token: str) -> str:
    return b64(hashlib.sha256(access_token.encode()).digest())


async def published_key(http: httpx.AsyncClient, kid: str) -> dict[str, Any]:
    keys = (await http.get("/jwks.json", headers=JSON)).json()["keys"]
    matching: list[dict[str, Any]] = [k for k in keys if k["kid"] == kid]
    assert matching, kid
    return matching[0]


async def test_an_access_token_forged_with_our_public_key_as_hmac_secret_is_refused(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    real = (await tokens(client, rp, resident))["access_token"]
    header = unverified_header(real)
    public = await published_key(client, header["kid"])
    claims = {**unverified_claims(real), "scope": "openid profile email phone address", "exp": int(time.time()) + 3600}
    for forged in forgeries(header, claims, public):
        assert_resource_error(await get_userinfo(client, forged, None), "invalid_token")
        assert (await introspect(client, rp, forged))["active"] is False
        operator = await client.get("/api/operator/clients", headers={**JSON, "Authorization": f"Bearer {forged}"})
        assert operator.status_code == 401
        assert operator.headers["content-type"] == "application/problem+json"
    assert (await get_userinfo(client, real, None)).status_code == 200


async def test_an_id_token_hint_that_is_unsigned_or_hmac_is_refused_at_logout(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    id_token = (await tokens(client, rp, resident))["id_token"]
    header = unverified_header(id_token)
    public = await published_key(client, header["kid"])
    for forged in forgeries(header, unverified_claims(id_token), public):
        query = urlencode({"id_token_hint": forged, "post_logout_redirect_uri": SIGNED_OUT_URI})
        assert_error_page(await client.get(f"/oidc/logout?{query}"), "invalid_request")
    # A hint signed by someone else's key (here the client's own) is no better.
    claims = unverified_claims(id_token)
    foreign = jwt.encode({"alg": "ES256", "kid": header["kid"]}, claims, rp.key, algorithms=["ES256"])
    query = urlencode({"id_token_hint": foreign, "post_logout_redirect_uri": SIGNED_OUT_URI})
    assert_error_page(await client.get(f"/oidc/logout?{query}"), "invalid_request")
    # The session survived every forged hint; the genuine one ends it and goes back to the client.
    assert (await client.get("/account")).status_code == 200
    query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": SIGNED_OUT_URI})
    genuine = await client.get(f"/oidc/logout?{query}")
    assert genuine.status_code == 303
    assert genuine.headers["location"] == SIGNED_OUT_URI
    assert (await client.get("/account")).status_code == 303


# --- client assertions (RFC 7523 §3, OIDC Core §9) -----------------------------------------------------


async def introspect_with(http: httpx.AsyncClient, client_assertion: str) -> httpx.Response:
    form = {"token": "anything", "client_assertion_type": ASSERTION_TYPE, "client_assertion": client_assertion}
    return await http.post("/oidc/introspect", data=form, headers=JSON)


async def test_a_replayed_client_assertion_is_refused(client: httpx.AsyncClient, rp: TestClient) -> None:
    once = assertion(rp)
    assert (await introspect_with(client, once)).status_code == 200
    assert_oauth_error(await introspect_with(client, once), "invalid_client", 401)
    # Same jti, freshly signed: the jti is what is spent, not the bytes.
    jti = unverified_claims(once)["jti"]
    assert_oauth_error(await introspect_with(client, assertion(rp, jti=jti)), "invalid_client", 401)


@pytest.mark.parametrize(
    "aud",
    ["https://evil.example", f"{ISSUER}/", "https://bauhinia.test.evil.example", ["https://evil.example"], 42, []],
    ids=["other issuer", "trailing slash", "suffix", "list without us", "number", "empty list"],
)
async def test_a_client_assertion_for_another_audience_is_refused(
    client: httpx.AsyncClient, rp: TestClient, aud: Any
) -> None:
    forged = jwt.encode(
        {"alg": "ES256", "kid": rp.key.kid}, assertion_claims(rp, aud=aud), rp.key, algorithms=["ES256"]
    )
    assert_oauth_error(await introspect_with(client, forged), "invalid_client", 401)


async def test_a_client_assertion_naming_the_endpoint_or_the_issuer_is_accepted(
    client: httpx.AsyncClient, rp: TestClient
) -> None:
    """The control for the audience test: both audiences OIDC Core §9 allows are accepted."""
    for aud in (ISSUER, INTROSPECT_URL, [ISSUER, "https://evil.example"]):
        assert (await introspect_with(client, assertion(rp, aud=aud))).status_code == 200


@pytest.mark.parametrize(
    ("lifetime", "iat_offset"),
    [(-120, -180), (3600, 0), (601 + 30, 0), (10**9, 0)],
    ids=["expired", "an hour", "just over ten minutes", "forever"],
)
async def test_an_expired_or_long_lived_client_assertion_is_refused(
    client: httpx.AsyncClient, rp: TestClient, lifetime: int, iat_offset: int
) -> None:
    now = int(time.time())
    claims = assertion_claims(rp, iat=now + iat_offset, exp=now + lifetime)
    forged = jwt.encode({"alg": "ES256", "kid": rp.key.kid}, claims, rp.key, algorithms=["ES256"])
    assert_oauth_error(await introspect_with(client, forged), "invalid_client", 401)


async def test_a_client_assertion_without_exp_or_jti_is_refused(client: httpx.AsyncClient, rp: TestClient) -> None:
    for missing in ("exp", "jti"):
        claims = {k: v for k, v in assertion_claims(rp).items() if k != missing}
        forged = jwt.encode({"alg": "ES256", "kid": rp.key.kid}, claims, rp.key, algorithms=["ES256"])
        assert_oauth_error(await introspect_with(client, forged), "invalid_client", 401)


async def test_a_client_assertion_signed_by_a_key_not_registered_for_the_client_is_refused(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient
) -> None:
    stranger = ECKey.generate_key("P-256", auto_kid=True)
    for key, kid in ((stranger, rp.key.kid), (stranger, stranger.kid), (other_rp.key, other_rp.key.kid)):
        forged = jwt.encode({"alg": "ES256", "kid": kid}, assertion_claims(rp), key, algorithms=["ES256"])
        assert_oauth_error(await introspect_with(client, forged), "invalid_client", 401)
    # A key carried in the assertion's own header is not a registered key either.
    public = stranger.as_dict(private=False)
    embedded = jwt.encode({"alg": "ES256", "jwk": public}, assertion_claims(rp), stranger, algorithms=["ES256"])
    assert_oauth_error(await introspect_with(client, embedded), "invalid_client", 401)


async def test_a_client_assertion_whose_iss_is_not_its_sub_is_refused(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient
) -> None:
    for changes in ({"iss": other_rp.client_id}, {"sub": other_rp.client_id}, {"iss": "attacker"}):
        claims = assertion_claims(rp, **changes)
        forged = jwt.encode({"alg": "ES256", "kid": rp.key.kid}, claims, rp.key, algorithms=["ES256"])
        assert_oauth_error(await introspect_with(client, forged), "invalid_client", 401)


async def test_a_client_assertion_for_another_client_id_in_the_form_is_refused(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient
) -> None:
    form = {"token": "anything", "client_id": other_rp.client_id, **client_auth(rp)}
    assert_oauth_error(await client.post("/oidc/introspect", data=form, headers=JSON), "invalid_client", 401)


# --- DPoP (RFC 9449) --------------------------------------------------------------------------------


async def dpop_tokens(
    http: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> tuple[DPoPKey, dict[str, Any]]:
    key = DPoPKey.new()
    issued = await tokens(http, rp, resident, key)
    assert issued["token_type"] == "DPoP"
    return key, issued


def refresh_form(rp: TestClient, refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, **client_auth(rp)}


async def token_with_proof(http: httpx.AsyncClient, form: dict[str, str], proof: str) -> httpx.Response:
    return await http.post("/oidc/token", data=form, headers={**JSON, "DPoP": proof})


async def userinfo_with_proof(http: httpx.AsyncClient, access: str, proof: str, scheme: str = "DPoP") -> httpx.Response:
    return await http.get("/oidc/userinfo", headers={**JSON, "Authorization": f"{scheme} {access}", "DPoP": proof})


async def test_a_replayed_dpop_proof_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    access = issued["access_token"]
    proof = key.proof("GET", USERINFO_URL, access_token=access)
    assert (await userinfo_with_proof(client, access, proof)).status_code == 200
    assert_resource_error(await userinfo_with_proof(client, access, proof), "invalid_dpop_proof", "DPoP")

    at_token = key.proof("POST", TOKEN_URL)
    first = await token_with_proof(client, refresh_form(dpop_rp, issued["refresh_token"]), at_token)
    assert first.status_code == 200, first.text
    again = await token_with_proof(client, refresh_form(dpop_rp, first.json()["refresh_token"]), at_token)
    assert_oauth_error(again, "invalid_dpop_proof")
    # The same jti in a freshly signed proof is a replay too.
    jti = unverified_claims(at_token)["jti"]
    resigned = key.proof("POST", TOKEN_URL, jti=jti)
    assert_oauth_error(
        await token_with_proof(client, refresh_form(dpop_rp, first.json()["refresh_token"]), resigned),
        "invalid_dpop_proof",
    )


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", USERINFO_URL),
        ("POST", "https://evil.example/oidc/token"),
        ("POST", "http://bauhinia.test/oidc/token"),
        ("POST", f"{TOKEN_URL}/extra"),
        ("POST", "https://bauhinia.test:8443/oidc/token"),
        ("GET", TOKEN_URL),
        ("post", TOKEN_URL),
        ("PUT", TOKEN_URL),
    ],
    ids=["other endpoint", "other host", "http", "longer path", "other port", "GET", "lower-case", "PUT"],
)
async def test_a_dpop_proof_for_another_request_is_refused_at_the_token_endpoint(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident, method: str, url: str
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    form = refresh_form(dpop_rp, issued["refresh_token"])
    assert_oauth_error(await token_with_proof(client, form, key.proof(method, url)), "invalid_dpop_proof")
    assert (await token_with_proof(client, form, key.proof("POST", TOKEN_URL))).status_code == 200


@pytest.mark.parametrize(
    ("method", "url"),
    [("GET", TOKEN_URL), ("POST", USERINFO_URL), ("GET", "https://evil.example/oidc/userinfo")],
    ids=["other endpoint", "POST for GET", "other host"],
)
async def test_a_dpop_proof_for_another_request_is_refused_at_userinfo(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident, method: str, url: str
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    access = issued["access_token"]
    response = await userinfo_with_proof(client, access, key.proof(method, url, access_token=access))
    assert_resource_error(response, "invalid_dpop_proof", "DPoP")


async def test_a_dpop_proof_without_a_fresh_server_nonce_is_asked_for_one(
    app: FastAPI,
    client: httpx.AsyncClient,
    dpop_rp: TestClient,
    resident: TestResident,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    service = app.state.oidc
    then = time.time() - 3 * dpop_rules.NONCE_WINDOW
    with monkeypatch.context() as past:
        past.setattr(time, "time", lambda: then)
        stale = service.nonces.current()
    assert not service.nonces.valid(stale)
    forged = dpop_rules.NonceSource(b"not the platform's key").current()
    form = refresh_form(dpop_rp, issued["refresh_token"])
    for nonce in (None, stale, forged, "x" * 100):
        key.nonce = None
        response = await token_with_proof(client, form, key.proof("POST", TOKEN_URL, nonce=nonce))
        assert_oauth_error(response, "use_dpop_nonce")
        assert service.nonces.valid(response.headers["DPoP-Nonce"])
        access = issued["access_token"]
        at_userinfo = await userinfo_with_proof(
            client, access, key.proof("GET", USERINFO_URL, access_token=access, nonce=nonce)
        )
        assert_resource_error(at_userinfo, "use_dpop_nonce", "DPoP")
        assert service.nonces.valid(at_userinfo.headers["DPoP-Nonce"])


@pytest.mark.parametrize("offset", [-dpop_rules.PROOF_MAX_AGE - 60, dpop_rules.PROOF_MAX_SKEW + 60, -(10**9)])
async def test_a_dpop_proof_with_an_old_or_future_iat_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident, offset: int
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    proof = key.proof("POST", TOKEN_URL, iat=int(time.time()) + offset)
    form = refresh_form(dpop_rp, issued["refresh_token"])
    assert_oauth_error(await token_with_proof(client, form, proof), "invalid_dpop_proof")


def proof_with_header(key: DPoPKey, header: dict[str, Any], **claims: Any) -> str:
    body = {**dpop_proof_claims("POST", TOKEN_URL, key.nonce), **claims}
    return jwt.encode(header, body, key.key, algorithms=["ES256"])


async def test_a_dpop_proof_carrying_a_private_key_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    header = {"alg": "ES256", "typ": "dpop+jwt", "jwk": key.key.as_dict(private=True)}
    form = refresh_form(dpop_rp, issued["refresh_token"])
    assert_oauth_error(await token_with_proof(client, form, proof_with_header(key, header)), "invalid_dpop_proof")


async def test_a_dpop_proof_with_a_symmetric_or_missing_key_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    form = refresh_form(dpop_rp, issued["refresh_token"])
    claims = dpop_proof_claims("POST", TOKEN_URL, key.nonce)
    symmetric = {"kty": "oct", "k": b64(b"a shared secret of thirty-two by")}
    hmac_proof = hand_made_jws(
        {"alg": "HS256", "typ": "dpop+jwt", "jwk": symmetric}, claims, b"a shared secret of thirty-two by"
    )
    assert_oauth_error(await token_with_proof(client, form, hmac_proof), "invalid_dpop_proof")
    no_key = proof_with_header(key, {"alg": "ES256", "typ": "dpop+jwt"})
    assert_oauth_error(await token_with_proof(client, form, no_key), "invalid_dpop_proof")
    other = ECKey.generate_key("P-256").as_dict(private=False)
    wrong_key = proof_with_header(key, {"alg": "ES256", "typ": "dpop+jwt", "jwk": other})
    assert_oauth_error(await token_with_proof(client, form, wrong_key), "invalid_dpop_proof")


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "DPOP+JWT", "", None])
async def test_a_dpop_proof_with_the_wrong_typ_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident, typ: str | None
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    header: dict[str, Any] = {"alg": "ES256", "jwk": key.key.as_dict(private=False)}
    if typ is not None:
        header["typ"] = typ
    form = refresh_form(dpop_rp, issued["refresh_token"])
    assert_oauth_error(await token_with_proof(client, form, proof_with_header(key, header)), "invalid_dpop_proof")


async def test_a_dpop_bound_access_token_presented_as_a_bearer_token_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    access = issued["access_token"]
    assert_resource_error(await get_userinfo(client, access, None), "invalid_token", "DPoP")
    # ...even with a valid proof alongside.
    with_proof = await userinfo_with_proof(
        client, access, key.proof("GET", USERINFO_URL, access_token=access), "Bearer"
    )
    assert_resource_error(with_proof, "invalid_token", "DPoP")
    assert (await get_userinfo(client, access, key)).status_code == 200


async def test_a_dpop_token_without_a_proof_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    _, issued = await dpop_tokens(client, dpop_rp, resident)
    response = await client.get("/oidc/userinfo", headers={**JSON, "Authorization": f"DPoP {issued['access_token']}"})
    assert_resource_error(response, "invalid_dpop_proof", "DPoP")


async def test_two_dpop_proofs_are_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    access = issued["access_token"]
    proofs = [key.proof("GET", USERINFO_URL, access_token=access) for _ in range(2)]
    headers = [("accept", "application/json"), ("authorization", f"DPoP {access}")]
    response = await client.get("/oidc/userinfo", headers=headers + [("dpop", p) for p in proofs])
    assert_resource_error(response, "invalid_dpop_proof", "DPoP")
    form = refresh_form(dpop_rp, issued["refresh_token"])
    token_proofs = [("dpop", key.proof("POST", TOKEN_URL)) for _ in range(2)]
    response = await client.post("/oidc/token", data=form, headers=[("accept", "application/json"), *token_proofs])
    assert_oauth_error(response, "invalid_dpop_proof")


async def test_a_dpop_proof_from_another_key_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    thief = DPoPKey.new()
    thief.nonce = key.nonce
    access = issued["access_token"]
    stolen = await userinfo_with_proof(client, access, thief.proof("GET", USERINFO_URL, access_token=access))
    assert_resource_error(stolen, "invalid_token", "DPoP")
    # A stolen refresh token is no better: it is bound to the key it was issued with.
    response = await token_with_proof(
        client, refresh_form(dpop_rp, issued["refresh_token"]), thief.proof("POST", TOKEN_URL)
    )
    assert_oauth_error(response, "invalid_grant")
    assert (await get_userinfo(client, access, key)).status_code == 200


async def test_a_dpop_proof_whose_ath_does_not_match_the_token_is_refused(
    client: httpx.AsyncClient, dpop_rp: TestClient, resident: TestResident
) -> None:
    key, issued = await dpop_tokens(client, dpop_rp, resident)
    access = issued["access_token"]
    for other in ("another token", access + "x", ""):
        response = await userinfo_with_proof(client, access, key.proof("GET", USERINFO_URL, access_token=other))
        assert_resource_error(response, "invalid_dpop_proof", "DPoP")
    without_ath = await userinfo_with_proof(client, access, key.proof("GET", USERINFO_URL))
    assert_resource_error(without_ath, "invalid_dpop_proof", "DPoP")


async def test_a_code_bound_by_dpop_jkt_needs_that_key(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    """RFC 9449 §10: the code is bound to the key named at the authorization endpoint."""
    bound = DPoPKey.new()
    code, verifier = await code_flow(client, rp, resident, dpop_jkt=bound.jkt)
    assert_oauth_error(await post_token(client, code_form(code, verifier, rp)), "invalid_grant")
    code, verifier = await code_flow(client, rp, resident, signed_in=True, dpop_jkt=bound.jkt)
    assert_oauth_error(await post_token(client, code_form(code, verifier, rp), DPoPKey.new()), "invalid_grant")
    code, verifier = await code_flow(client, rp, resident, signed_in=True, dpop_jkt=bound.jkt)
    assert (await post_token(client, code_form(code, verifier, rp), bound)).status_code == 200


# --- refresh token reuse (RFC 6749 §10.4, Security BCP §4.14.2) ----------------------------------------


async def test_a_reused_refresh_token_revokes_the_whole_grant(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    issued = await tokens(client, rp, resident)
    rotated = await refresh(client, rp, issued["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != issued["refresh_token"]
    assert (await introspect(client, rp, second["access_token"]))["active"] is True

    assert_oauth_error(await refresh(client, rp, issued["refresh_token"]), "invalid_grant")

    assert_oauth_error(await refresh(client, rp, second["refresh_token"]), "invalid_grant")
    for access in (issued["access_token"], second["access_token"]):
        assert (await introspect(client, rp, access))["active"] is False
        assert_resource_error(await get_userinfo(client, access, None), "invalid_token")
    assert (await introspect(client, rp, second["refresh_token"]))["active"] is False


async def test_a_refresh_token_is_good_only_for_its_client(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient, resident: TestResident
) -> None:
    issued = await tokens(client, rp, resident)
    assert_oauth_error(await refresh(client, other_rp, issued["refresh_token"]), "invalid_grant")
    assert (await introspect(client, other_rp, issued["refresh_token"]))["active"] is False
    assert (await introspect(client, other_rp, issued["access_token"]))["active"] is False
    assert (await refresh(client, rp, issued["refresh_token"])).status_code == 200


async def test_a_refresh_cannot_widen_the_scope(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    issued = await tokens(client, rp, resident)
    form = {**refresh_form(rp, issued["refresh_token"]), "scope": "openid profile email phone"}
    assert_oauth_error(await post_token(client, form), "invalid_scope")


# --- mix-up (RFC 9207) ------------------------------------------------------------------------------


async def test_authorization_responses_name_the_issuer(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    discovery = (await client.get("/.well-known/openid-configuration", headers=JSON)).json()
    assert discovery["authorization_response_iss_parameter_supported"] is True
    assert discovery["issuer"] == ISSUER

    silent = await authorize(client, rp, prompt="none")
    assert_error_redirect(silent, "login_required")
    assert_error_redirect(await authorize(client, rp, response_type="token"), "unsupported_response_type")

    await sign_in(client, resident)
    start = await authorize(client, rp)
    location = await approve(client, start.headers["location"], None)
    query = query_of(location)
    assert set(query) == {"code", "state", "iss"}
    assert query["iss"] == ISSUER
    assert query["state"] == "state-123"


async def test_a_code_issued_to_one_client_is_refused_to_another(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient, resident: TestResident
) -> None:
    code, verifier = await code_flow(client, rp, resident)
    stolen = {**code_form(code, verifier, other_rp), "redirect_uri": REDIRECT_URI}
    assert_oauth_error(await post_token(client, stolen), "invalid_grant")
    stolen_with_own_uri = {**code_form(code, verifier, other_rp), "redirect_uri": OTHER_REDIRECT}
    assert_oauth_error(await post_token(client, stolen_with_own_uri), "invalid_grant")


async def test_a_public_client_cannot_redeem_a_confidential_clients_code(
    app: FastAPI, client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    public = await register_client(
        app, "rp-public", token_endpoint_auth_method="none", jwks=None, redirect_uris=[REDIRECT_URI]
    )
    code, verifier = await code_flow(client, rp, resident)
    form = token_form(code=code, code_verifier=verifier, client_id=public.client_id)
    assert_oauth_error(await post_token(client, form), "invalid_grant")
    # ...nor pose as the confidential client by naming it without authenticating.
    form = token_form(code=code, code_verifier=verifier, client_id=rp.client_id)
    assert_oauth_error(await post_token(client, form), "invalid_client", 401)


# --- open redirects at logout (OIDC RP-Initiated Logout 1.0 §2, §3) ---------------------------------------


async def logout(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await http.get(f"/oidc/logout?{urlencode(params)}")


async def still_signed_in(http: httpx.AsyncClient) -> bool:
    return (await http.get("/account")).status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        f"{SIGNED_OUT_URI}/",
        f"{SIGNED_OUT_URI}?next=https://evil.example/",
        "https://rp.example.hk@evil.example/signed-out",
        f"{SIGNED_OUT_URI}#@evil.example",
        "https://RP.example.hk/signed-out",
        "//evil.example/",
        OTHER_SIGNED_OUT,
    ],
)
async def test_logout_refuses_a_post_logout_redirect_uri_not_registered_for_the_client(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient, resident: TestResident, target: str
) -> None:
    await sign_in(client, resident)
    assert_error_page(await logout(client, client_id=rp.client_id, post_logout_redirect_uri=target), "invalid_request")
    posted = await client.post("/oidc/logout", data={"client_id": rp.client_id, "post_logout_redirect_uri": target})
    assert_error_page(posted, "invalid_request")
    assert await still_signed_in(client)


async def test_logout_refuses_a_redirect_when_no_client_is_identified(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    await sign_in(client, resident)
    assert_error_page(await logout(client, post_logout_redirect_uri=SIGNED_OUT_URI), "invalid_request")
    unknown = await logout(client, client_id="no-such-client", post_logout_redirect_uri=SIGNED_OUT_URI)
    assert_error_page(unknown, "invalid_request")
    assert await still_signed_in(client)


async def test_logout_refuses_another_clients_uri_even_with_a_genuine_hint(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient, resident: TestResident
) -> None:
    id_token = (await tokens(client, rp, resident))["id_token"]
    response = await logout(client, id_token_hint=id_token, post_logout_redirect_uri=OTHER_SIGNED_OUT)
    assert_error_page(response, "invalid_request")
    # Naming the other client as well contradicts the hint's audience.
    response = await logout(
        client, id_token_hint=id_token, client_id=other_rp.client_id, post_logout_redirect_uri=OTHER_SIGNED_OUT
    )
    assert_error_page(response, "invalid_request")
    assert await still_signed_in(client)


async def test_logout_without_a_hint_asks_before_signing_out(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    """The control: a registered URI is accepted, but without an ID token hint the resident confirms first."""
    await sign_in(client, resident)
    page = await logout(client, client_id=rp.client_id, post_logout_redirect_uri=SIGNED_OUT_URI, state="s 1")
    assert page.status_code == 200
    assert f'name="back" value="{SIGNED_OUT_URI}?state=s%201"' in page.text
    assert await still_signed_in(client)


async def confirm_logout(http: httpx.AsyncClient, back: str) -> httpx.Response:
    page = await http.get("/signin")
    match = CSRF_PATTERN.search(page.text)
    assert match
    return await http.post("/oidc/logout/confirm", data={"csrf_token": match.group(1), "back": back})


@pytest.mark.parametrize(
    "back",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
        f"{SIGNED_OUT_URI}.evil.example/",
        f"{SIGNED_OUT_URI}@evil.example/",
        "https://rp.example.hk@evil.example/signed-out",
        f"https://evil.example/?state={SIGNED_OUT_URI}",
        f"https://evil.example/?x=1&state={SIGNED_OUT_URI}",
        f"https://evil.example/#{SIGNED_OUT_URI}?state=1",
        OTHER_SIGNED_OUT.replace("other", "evil"),
    ],
)
async def test_a_forged_back_address_on_the_logout_form_is_not_followed(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient, back: str
) -> None:
    response = await confirm_logout(client, back)
    assert response.status_code == 200
    assert "location" not in response.headers
    assert not [link for link in links_of(response.text) if "evil" in link]


async def test_a_back_address_may_only_add_a_state_to_a_registered_uri(app: FastAPI, client: httpx.AsyncClient) -> None:
    """A registered URI without a path ends at its host: ``&state=`` after it must not become userinfo
    (``https://bare.example.hk&state=@evil.example/`` is a URL whose host is evil.example)."""
    await register_client(
        app,
        "rp-bare",
        redirect_uris=["https://bare.example.hk/cb"],
        post_logout_redirect_uris=["https://bare.example.hk"],
    )
    for back in ("https://bare.example.hk&state=@evil.example/", "https://bare.example.hk?state=x/../@evil.example"):
        response = await confirm_logout(client, back)
        assert "location" not in response.headers, response.headers["location"]
    for honest in ("https://bare.example.hk", "https://bare.example.hk?state=s%201"):
        response = await confirm_logout(client, honest)
        assert response.status_code == 303
        assert response.headers["location"] == honest


async def test_the_logout_form_follows_only_the_back_address_it_was_given(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    await sign_in(client, resident)
    page = await logout(client, client_id=rp.client_id, post_logout_redirect_uri=SIGNED_OUT_URI, state="xyz")
    token = CSRF_PATTERN.search(page.text)
    assert token
    forged = await client.post(
        "/oidc/logout/confirm", data={"csrf_token": token.group(1), "back": "https://evil.example/?state=xyz"}
    )
    assert forged.status_code == 200
    assert "location" not in forged.headers
    assert not await still_signed_in(client)
    honest = await confirm_logout(client, f"{SIGNED_OUT_URI}?state=xyz")
    assert honest.headers["location"] == f"{SIGNED_OUT_URI}?state=xyz"


# --- acr downgrade (OIDC Core §3.1.2.1, §5.5.1.1) ----------------------------------------------------


async def verified_resident(app: FastAPI) -> TestResident:
    """A resident whose identity an officer checked at a counter, as the staff pages record it."""
    who = await make_resident(app)
    officer = await make_staff(app)
    async with app.state.sessionmaker() as db:
        staff = await app.state.identity.staff_member(db, officer.id)
        await app.state.identity.verify_identity(
            db, staff, who.id, id_number=who.id_number, channel="counter", document="hkid-card", location="Counter 1"
        )
        await db.commit()
    return who


async def assert_unmet(http: httpx.AsyncClient, start: httpx.Response) -> None:
    """The resident is told the service needs a verified identity; the way back carries an error, never a code."""
    assert start.status_code == 303
    interaction = start.headers["location"]
    assert interaction.startswith("/oidc/interaction/")
    page = await http.get(interaction)
    assert page.status_code == 403
    backs = [link for link in links_of(page.text) if link.startswith(REDIRECT_URI)]
    assert len(backs) == 1
    query = query_of(backs[0])
    assert query["error"] == "unmet_authentication_requirements"
    assert query["iss"] == ISSUER
    assert query["state"] == "state-123"
    assert "code" not in query
    # Posting the consent form anyway (with a valid CSRF token) sends the resident back to the checks.
    token = CSRF_PATTERN.search((await http.get("/account")).text)
    assert token
    forced = await http.post(
        f"{interaction}/consent", data={"csrf_token": token.group(1), "decision": "approve", "item": "name"}
    )
    assert forced.status_code == 303
    assert forced.headers["location"] == interaction
    assert (await http.get(interaction)).status_code == 403


async def test_a_client_requiring_verified_never_gets_a_basic_resident(
    app: FastAPI, client: httpx.AsyncClient, resident: TestResident
) -> None:
    strict = await register_client(app, "rp-strict", required_acr="verified")
    await sign_in(client, resident)
    await assert_unmet(client, await authorize(client, strict))
    # Asking for less does not lower the client's registered floor.
    await assert_unmet(client, await authorize(client, strict, acr_values="basic"))


@pytest.mark.parametrize(
    "request_params",
    [
        {"acr_values": "verified"},
        {"claims": json.dumps({"id_token": {"acr": {"essential": True, "value": "verified"}}})},
        {"claims": json.dumps({"id_token": {"acr": {"essential": True, "values": ["verified"]}}})},
        {"claims": json.dumps({"id_token": {"acr": {"essential": True, "values": ["urn:example:loa:4"]}}})},
    ],
    ids=["acr_values", "essential value", "essential values", "essential unknown"],
)
async def test_a_request_for_verified_is_never_answered_with_basic(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident, request_params: dict[str, str]
) -> None:
    await sign_in(client, resident)
    await assert_unmet(client, await authorize(client, rp, **request_params))


async def test_a_silent_request_for_verified_gets_an_error_not_a_code(
    app: FastAPI, client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    strict = await register_client(app, "rp-strict", required_acr="verified")
    await sign_in(client, resident)
    await code_flow(client, rp, resident, signed_in=True)  # a session that could otherwise answer silently
    # A basic resident: no sign-in can help (the identity must be checked at a counter first).
    unmet = "unmet_authentication_requirements"
    assert_error_redirect(await authorize(client, rp, prompt="none", acr_values="verified"), unmet)
    assert_error_redirect(await authorize(client, strict, prompt="none"), unmet)


async def test_a_verified_resident_gets_verified_in_the_id_token(
    app: FastAPI, client: httpx.AsyncClient, rp: TestClient
) -> None:
    who = await verified_resident(app)
    strict = await register_client(app, "rp-strict", required_acr="verified")
    issued = await tokens(client, strict, who)
    claims = unverified_claims(issued["id_token"])
    assert claims["acr"] == "verified"
    assert "mfa" in claims["amr"]
    assert (await introspect(client, strict, issued["access_token"]))["acr"] == "verified"
    issued = await tokens(client, rp, who, signed_in=True, acr_values="verified")
    assert unverified_claims(issued["id_token"])["acr"] == "verified"


# --- pushed authorization requests (RFC 9126) and the FAPI 2.0 profile --------------------------------------


async def push(
    http: httpx.AsyncClient, rp: TestClient, challenge: str, dpop: DPoPKey | None = None, **params: str
) -> httpx.Response:
    form = parse_qs_single(authorize_query(rp, challenge, **params))
    for _ in range(2):
        headers = dict(JSON)
        if dpop is not None:
            headers["DPoP"] = dpop.proof("POST", PAR_URL)
        response = await http.post("/oidc/par", data={**form, **client_auth(rp)}, headers=headers)
        if dpop is None or response.status_code != 400 or response.json()["error"] != "use_dpop_nonce":
            return response
        dpop.nonce = response.headers["DPoP-Nonce"]
    return response


async def pushed_uri(http: httpx.AsyncClient, rp: TestClient, dpop: DPoPKey | None = None) -> tuple[str, str]:
    verifier, challenge = pkce()
    response = await push(http, rp, challenge, dpop)
    assert response.status_code == 201, response.text
    request_uri: str = response.json()["request_uri"]
    return request_uri, verifier


async def authorize_pushed(http: httpx.AsyncClient, client_id: str, request_uri: str) -> httpx.Response:
    return await http.get(f"/oidc/authorize?{urlencode({'client_id': client_id, 'request_uri': request_uri})}")


async def test_a_pushed_request_is_good_once(client: httpx.AsyncClient, rp: TestClient) -> None:
    request_uri, _ = await pushed_uri(client, rp)
    first = await authorize_pushed(client, rp.client_id, request_uri)
    assert first.status_code == 303
    assert first.headers["location"].startswith("/oidc/interaction/")
    assert_error_page(await authorize_pushed(client, rp.client_id, request_uri), "invalid_request_uri")


async def test_a_pushed_request_is_good_only_for_its_client(
    client: httpx.AsyncClient, rp: TestClient, other_rp: TestClient
) -> None:
    request_uri, _ = await pushed_uri(client, rp)
    assert_error_page(await authorize_pushed(client, other_rp.client_id, request_uri), "invalid_request_uri")
    assert_error_page(await authorize_pushed(client, "", request_uri), "invalid_request")
    assert (await authorize_pushed(client, rp.client_id, request_uri)).status_code == 303


async def test_an_expired_or_unknown_request_uri_is_refused(
    app: FastAPI, client: httpx.AsyncClient, rp: TestClient
) -> None:
    request_uri, _ = await pushed_uri(client, rp)
    async with app.state.sessionmaker() as db:
        await db.execute(update(AuthorizationRequest).values(expires_at=AuthorizationRequest.created_at))
        await db.commit()
    assert_error_page(await authorize_pushed(client, rp.client_id, request_uri), "invalid_request_uri")
    for unknown in (
        "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(32),
        "https://evil.example/request.jwt",
        request_uri.removeprefix("urn:ietf:params:oauth:request_uri:"),
        "",
    ):
        assert_error_page(await authorize_pushed(client, rp.client_id, unknown), "invalid_request_uri")


async def test_a_request_uri_cannot_be_pushed_or_replaced_by_the_query(
    client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    _, challenge = pkce()
    nested = await push(client, rp, challenge, request_uri="urn:ietf:params:oauth:request_uri:x")
    assert_oauth_error(nested, "invalid_request")
    # Only the pushed parameters count: a redirect_uri added to the front-channel request is ignored.
    request_uri, _ = await pushed_uri(client, rp)
    await sign_in(client, resident)
    query = urlencode({"client_id": rp.client_id, "request_uri": request_uri, "redirect_uri": "https://evil.example/"})
    start = await client.get(f"/oidc/authorize?{query}")
    location = await approve(client, start.headers["location"], None)
    assert location.startswith(f"{REDIRECT_URI}?")


async def test_a_par_only_client_cannot_skip_par(app: FastAPI, client: httpx.AsyncClient) -> None:
    for overrides in ({"fapi": True}, {"require_pushed_authorization_requests": True}):
        strict = await register_client(app, f"rp-par-{len(overrides)}-{secrets.token_hex(2)}", **overrides)
        assert_error_redirect(await authorize(client, strict), "invalid_request")


async def test_a_fapi_client_needs_dpop_at_the_token_endpoint(
    app: FastAPI, client: httpx.AsyncClient, resident: TestResident
) -> None:
    fapi = await register_client(app, "rp-fapi", fapi=True)
    key = DPoPKey.new()
    request_uri, verifier = await pushed_uri(client, fapi, key)
    await sign_in(client, resident)
    start = await authorize_pushed(client, fapi.client_id, request_uri)
    code = query_of(await approve(client, start.headers["location"], None))["code"]
    form = code_form(code, verifier, fapi)
    assert_oauth_error(await post_token(client, form), "invalid_request")
    assert_oauth_error(await post_token(client, code_form(code, verifier, fapi), DPoPKey.new()), "invalid_grant")


async def test_a_fapi_client_with_its_dpop_key_gets_bound_tokens(
    app: FastAPI, client: httpx.AsyncClient, resident: TestResident
) -> None:
    """The control for the FAPI test above: the same flow with the key named at PAR succeeds."""
    fapi = await register_client(app, "rp-fapi", fapi=True)
    key = DPoPKey.new()
    request_uri, verifier = await pushed_uri(client, fapi, key)
    await sign_in(client, resident)
    start = await authorize_pushed(client, fapi.client_id, request_uri)
    code = query_of(await approve(client, start.headers["location"], None))["code"]
    assert_oauth_error(await post_token(client, code_form(code, verifier, fapi)), "invalid_request")
    response = await post_token(client, code_form(code, verifier, fapi), key)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    assert unverified_claims(response.json()["access_token"])["cnf"] == {"jkt": key.jkt}


# --- disabled clients and client secrets ------------------------------------------------------------------


async def test_a_disabled_client_is_refused_everywhere(
    app: FastAPI, client: httpx.AsyncClient, rp: TestClient, resident: TestResident
) -> None:
    issued = await tokens(client, rp, resident)
    request_uri, _ = await pushed_uri(client, rp)
    pending = await authorize(client, rp)
    interaction = pending.headers["location"]
    async with app.state.sessionmaker() as db:
        assert await app.state.oidc.clients.disable(db, rp.client_id)
        await db.commit()

    assert_error_page(await authorize(client, rp), "invalid_request")
    assert_error_page(await authorize_pushed(client, rp.client_id, request_uri), "invalid_request")
    page = await client.get(interaction)
    assert page.status_code == 400
    assert "location" not in page.headers
    _, challenge = pkce()
    assert_oauth_error(await push(client, rp, challenge), "invalid_client", 401)
    assert_oauth_error(await refresh(client, rp, issued["refresh_token"]), "invalid_client", 401)
    for path in ("/oidc/introspect", "/oidc/revoke"):
        response = await client.post(path, data={"token": issued["access_token"], **client_auth(rp)}, headers=JSON)
        assert_oauth_error(response, "invalid_client", 401)
    # What it was given before is no longer honoured either.
    assert_resource_error(await get_userinfo(client, issued["access_token"], None), "invalid_token")
    response = await logout(client, client_id=rp.client_id, post_logout_redirect_uri=SIGNED_OUT_URI)
    assert_error_page(response, "invalid_request")


@pytest.fixture
async def secret_rp(app: FastAPI) -> TestClient:
    registered = await register_client(app, "rp-secret", token_endpoint_auth_method="client_secret_basic", jwks=None)
    assert registered.secret
    return registered


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        basic("rp-secret", "wrong"),
        basic("rp-secret", ""),
        basic("rp-one", "whatever"),
        basic("no-such-client", "whatever"),
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    ],
    ids=["wrong", "empty", "another client", "unknown client", "not base64", "no colon", "not utf-8"],
)
async def test_a_wrong_client_secret_is_refused_with_a_basic_challenge(
    client: httpx.AsyncClient, secret_rp: TestClient, rp: TestClient, authorization: str
) -> None:
    for path in ("/oidc/introspect", "/oidc/token"):
        form = {"token": "x", "grant_type": "client_credentials"}
        response = await client.post(path, data=form, headers={**JSON, "Authorization": authorization})
        assert_oauth_error(response, "invalid_client", 401)
        assert response.headers["www-authenticate"].startswith("Basic ")


async def test_the_right_client_secret_is_accepted_only_one_way(
    client: httpx.AsyncClient, secret_rp: TestClient
) -> None:
    assert secret_rp.secret
    right = basic(secret_rp.client_id, secret_rp.secret)
    ok = await client.post("/oidc/introspect", data={"token": "x"}, headers={**JSON, "Authorization": right})
    assert ok.status_code == 200
    in_body = {"token": "x", "client_id": secret_rp.client_id, "client_secret": secret_rp.secret}
    assert_oauth_error(await client.post("/oidc/introspect", data=in_body, headers=JSON), "invalid_client", 401)
    both = {"token": "x", **client_auth(secret_rp)}
    response = await client.post("/oidc/introspect", data=both, headers={**JSON, "Authorization": right})
    assert_oauth_error(response, "invalid_request")
    as_public = {"token": "x", "client_id": secret_rp.client_id}
    assert_oauth_error(await client.post("/oidc/introspect", data=as_public, headers=JSON), "invalid_client", 401)
