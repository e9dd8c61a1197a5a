"""Fuzzing the OpenID provider: no input, however malformed, produces a server error.

The JSON endpoints are fuzzed from their OpenAPI operations: schemathesis generates the cases, and they
are sent through the same in-process client as every other test, on the test's event loop, so the
database engine is the test's own. The pages the OpenAPI document leaves out (authorize, logout,
interactions) and what every endpoint parses before anything else (the Authorization and DPoP headers,
client assertions, request objects) get hypothesis strategies of their own, some signed with the keys
the provider trusts so that the checks after the signature are reached too.

Besides "never a 5xx", each answer must be the right kind of refusal: an OAuth error code from the
registered ones, a problem document for the operator API, a page for people, and never a redirect
to an address the client did not register.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
import schemathesis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from fastapi import FastAPI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from joserfc.jwk import ECKey

from bauhinia.oidc.authorization import KNOWN_PARAMETERS
from bauhinia.oidc.schemas import ClientMetadata
from tests.helpers import CSRF_PATTERN, TestResident, make_resident, sign_in
from tests.oidc_support import (
    ASSERTION_TYPE,
    ISSUER,
    PAR_URL,
    REDIRECT_URI,
    TOKEN_URL,
    USERINFO_URL,
    TestClient,
    client_auth,
    code_flow,
    code_form,
    pkce,
    post_token,
    register_client,
)

EXAMPLES = 100
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_BODY = 64 * 1024  # the edge refuses larger bodies (settings.max_form_bytes) before any endpoint runs
SIGNED_OUT_URI = "https://rp.example.hk/signed-out"
JSON_ACCEPT = {"accept": "application/json"}

# RFC 6749 §4.1.2.1 and §5.2, RFC 9126, RFC 9101, RFC 9449, RFC 8707, OIDC Core §3.1.2.6, and the
# OpenID Connect Unmet Authentication Requirements 1.0 code.
OAUTH_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "invalid_request_object",
    "invalid_request_uri",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "unsupported_response_type",
    "access_denied",
    "login_required",
    "consent_required",
    "interaction_required",
    "unmet_authentication_requirements",
}
# RFC 6750 §3.1 and RFC 9449 §7.1.
RESOURCE_ERRORS = {"invalid_request", "invalid_token", "insufficient_scope", "invalid_dpop_proof", "use_dpop_nonce"}


# --- what every answer must be ------------------------------------------------------------------------


def assert_no_server_error(response: httpx.Response) -> None:
    if currently_in_test_context():
        event(f"HTTP {response.status_code}")  # see pytest --hypothesis-show-statistics
    assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text[:300]}"


def assert_edge_refusal(response: httpx.Response) -> bool:
    """A body over the limit is refused by the edge with a problem document, before any endpoint."""
    if response.status_code != 413:
        return False
    assert len(response.request.content) > MAX_BODY
    assert response.headers["content-type"] == "application/problem+json"
    return True


def assert_oauth_answer(response: httpx.Response, success: set[int]) -> None:
    assert_no_server_error(response)
    if response.status_code in success or assert_edge_refusal(response):
        return
    assert 400 <= response.status_code < 500, response.status_code
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    assert response.json()["error"] in OAUTH_ERRORS, response.text
    assert response.headers["cache-control"] == "no-store"
    if response.status_code == 401:
        assert response.json()["error"] == "invalid_client"


def assert_resource_answer(response: httpx.Response) -> None:
    assert_no_server_error(response)
    if response.status_code == 200 or assert_edge_refusal(response):
        return
    assert response.status_code in (400, 401, 403), response.status_code
    assert response.json()["error"] in RESOURCE_ERRORS, response.text
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith(("Bearer ", "DPoP "))


def assert_problem_answer(response: httpx.Response, success: set[int]) -> None:
    assert_no_server_error(response)
    if response.status_code in success or assert_edge_refusal(response):
        return
    assert 400 <= response.status_code < 500, response.status_code
    assert response.headers["content-type"] == "application/problem+json", response.text[:300]
    assert response.json()["status"] == response.status_code


def registered_redirect(location: str, registered: list[str]) -> bool:
    """The location is a registered URI, or one with a query added after it (never another authority)."""
    return any(location == uri or location.startswith((f"{uri}?", f"{uri}&")) for uri in registered)


def assert_page_answer(response: httpx.Response, redirects: Callable[[str], bool]) -> None:
    """A page for people: a redirect only to where ``redirects`` allows, else an HTML page."""
    assert_no_server_error(response)
    if response.status_code in (302, 303, 307):
        location = response.headers["location"]
        assert redirects(location), location
        return
    if assert_edge_refusal(response):
        return
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]


def authorization_redirects(location: str) -> bool:
    """From the authorization endpoint: onward within the provider, or back to the client with ``iss``."""
    if location.startswith(("/oidc/interaction/", "/signin?", f"{ISSUER}/oidc/interaction/")):
        return True  # (the absolute form is Starlette's redirect of a path with a trailing slash)
    if not registered_redirect(location, [REDIRECT_URI]):
        return False
    query = dict(pair.split("=", 1) for pair in urlsplit(location).query.split("&") if "=" in pair)
    return query.get("iss") == quote(ISSUER, safe="")


# --- strategies -------------------------------------------------------------------------------------

NASTY = [
    "",
    "\x00",
    "a\x00b",
    "x" * 9000,
    "\r\n\t\x0b\x0c\x1b[31m",
    "<script>alert(1)</script>\"'><img src=x>{{7*7}}",
    "𠀀𝕏🙂\u202e\ufeff%00%ff%",
    "' OR 1=1 --",
    "../../../../etc/passwd",
    "null",
    "[]",
    "{}",
    "-1",
    "1e309",
    "https://evil.example/",
    "//evil.example",
    REDIRECT_URI + "/",
    "urn:ietf:params:oauth:request_uri:",
]
texts = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=60),
    st.sampled_from(NASTY),
    st.text(max_size=60),
    st.text(max_size=3000),
)
names = st.one_of(
    st.sampled_from([*KNOWN_PARAMETERS, "request", "request_uri", "client_assertion"]), st.text(max_size=12)
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def or_anything(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, so the checks after this one run too; sometimes any JSON at all."""
    return st.one_of(plausible, plausible, plausible, json_values)


now_ish = st.integers(min_value=-400, max_value=4000).map(lambda offset: int(time.time()) + offset)
jwk_like = st.fixed_dictionaries(
    {},
    optional={
        "kty": or_anything(st.sampled_from(["EC", "OKP", "RSA", "oct"])),
        "crv": or_anything(st.sampled_from(["P-256", "P-384", "Ed25519", "X25519", "secp256k1"])),
        "x": or_anything(st.binary(max_size=40).map(b64)),
        "y": or_anything(st.binary(max_size=40).map(b64)),
        "n": or_anything(st.binary(max_size=300).map(b64)),
        "e": or_anything(st.sampled_from(["AQAB", "Aw", ""])),
        "d": or_anything(st.binary(max_size=40).map(b64)),
        "k": or_anything(st.binary(max_size=40).map(b64)),
        "kid": json_values,
    },
)
jose_headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": or_anything(st.sampled_from(["ES256", "EdDSA", "Ed25519", "PS256", "RS256", "HS256", "none", ""])),
        "typ": or_anything(st.sampled_from(["dpop+jwt", "JWT", "at+jwt", "oauth-authz-req+jwt"])),
        "kid": json_values,
        "jwk": or_anything(jwk_like),
        "crit": json_values,
        "b64": json_values,
        "zip": json_values,
    },
)
HEADER_MEMBERS = ["typ", "kid", "crit", "b64", "zip", "cty", "jku", "x5u", "x5c"]
# Mostly no change to the header (its odd members stop a JWS before its claims are read).
header_changes = st.one_of(
    st.just({}), st.just({}), st.just({}), st.dictionaries(st.sampled_from(HEADER_MEMBERS), json_values, max_size=2)
)
CLAIM_NAMES = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "htm", "htu", "nonce", "ath", "client_id"]
CLAIM_NAMES += ["redirect_uri", "scope", "code_challenge", "code_challenge_method", "claims", "prompt", "max_age"]
# Changes to a valid set of claims: none, or one or two claims set to anything, or one left out. Starting
# from a valid object, each check after the signature is reached by some examples and fails alone.
claim_changes = st.fixed_dictionaries(
    {
        "set": st.one_of(st.just({}), st.dictionaries(st.sampled_from(CLAIM_NAMES), json_values, max_size=2)),
        "drop": st.lists(st.sampled_from(CLAIM_NAMES), max_size=1),
    }
)


def changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    claims = {**base, **changes["set"]}
    for name in changes["drop"]:
        claims.pop(name, None)
    return claims


claim_sets = st.fixed_dictionaries(
    {},
    optional={
        "iss": or_anything(st.sampled_from(["rp-one", ISSUER])),
        "sub": or_anything(st.sampled_from(["rp-one"])),
        "aud": or_anything(st.sampled_from([ISSUER, TOKEN_URL, [ISSUER], [[ISSUER]], [{"a": 1}]])),
        "exp": or_anything(now_ish),
        "iat": or_anything(now_ish),
        "nbf": or_anything(now_ish),
        "jti": or_anything(st.text(min_size=8, max_size=40)),
        "htm": or_anything(st.sampled_from(["POST", "GET"])),
        "htu": or_anything(st.sampled_from([TOKEN_URL, USERINFO_URL, PAR_URL, "https://evil.example/x", "::"])),
        "ath": json_values,
        "nonce": json_values,
        "client_id": or_anything(st.sampled_from(["rp-one"])),
        "response_type": or_anything(st.just("code")),
        "redirect_uri": or_anything(st.sampled_from([REDIRECT_URI, "https://evil.example/"])),
        "scope": or_anything(st.sampled_from(["openid", "openid profile", "openid bauhinia.operator"])),
        "code_challenge": or_anything(st.just("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")),
        "code_challenge_method": or_anything(st.sampled_from(["S256", "plain"])),
        "claims": json_values,
        "prompt": or_anything(st.sampled_from(["none", "login consent", "select_account"])),
        "max_age": json_values,
        "acr_values": json_values,
    },
)


@st.composite
def unsigned_jws(draw: st.DrawFn) -> str:
    """Anything shaped like a compact JWS (or not quite), with a random signature."""
    header = draw(st.one_of(jose_headers, json_values))
    payload = draw(st.one_of(claim_sets, json_values))
    parts = [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(draw(st.binary(max_size=80)))]
    shape = draw(st.sampled_from(["jws", "two parts", "four parts", "raw"]))
    if shape == "two parts":
        return ".".join(parts[:2])
    if shape == "four parts":
        return ".".join([*parts, "AA"])
    if shape == "raw":
        return draw(texts)
    return ".".join(parts)


def signed(key: ECKey, header: dict[str, Any], claims: Any) -> str:
    """A compact JWS with a valid ES256 signature over any header members and any claims, which joserfc
    would refuse to produce: the receiver's checks of both, not only of the signature, are what is fuzzed."""
    signing_input = f"{b64(json.dumps({**header, 'alg': 'ES256'}).encode())}.{b64(json.dumps(claims).encode())}"
    private = key.private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    r, s = utils.decode_dss_signature(private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def form_body(pairs: list[tuple[str, str]]) -> bytes:
    return urlencode(pairs).encode()


FORM = {"content-type": "application/x-www-form-urlencoded", **JSON_ACCEPT}


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
async def rp(app: FastAPI) -> TestClient:
    return await register_client(app)


@pytest.fixture
async def resident(app: FastAPI) -> TestResident:
    return await make_resident(app)


@pytest.fixture
async def operator_token(app: FastAPI, client: httpx.AsyncClient) -> str:
    operator = await register_client(
        app,
        "operator",
        grant_types=["client_credentials"],
        scopes=["bauhinia.operator"],
        items=[],
        redirect_uris=[],
        post_logout_redirect_uris=[],
    )
    form = {"grant_type": "client_credentials", "scope": "bauhinia.operator", **client_auth(operator)}
    response = await client.post("/oidc/token", data=form, headers=JSON_ACCEPT)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# --- the OpenAPI operations, fuzzed by schemathesis ----------------------------------------------------

_schemas: dict[str, Any] = {}


def generated_case(app: FastAPI, data: Any, path: str, method: str) -> Any:
    """A case for the operation: conforming to the document (positive) or deliberately not (negative)."""
    if "schema" not in _schemas:
        _schemas["schema"] = schemathesis.openapi.from_dict(app.openapi())
    mode = data.draw(st.sampled_from(list(schemathesis.GenerationMode)), label="mode")
    return data.draw(_schemas["schema"][path][method].as_strategy(mode), label="case")


def as_form_pairs(body: Any) -> list[tuple[str, str]]:
    """A generated form body as the pairs a client would send: lists repeat a field, anything else is text."""
    if not isinstance(body, dict):
        return [("body", json.dumps(body))]
    pairs: list[tuple[str, str]] = []
    for name, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, item if isinstance(item, str) else json.dumps(item)))
    return pairs


async def send_case(http: httpx.AsyncClient, case: Any, extra_headers: dict[str, str]) -> httpx.Response:
    headers = {**JSON_ACCEPT, **(case.headers or {}), **extra_headers}
    content: bytes | None = None
    body = case.body
    if isinstance(body, bytes):  # a negative case may be raw bytes, whatever its declared type
        content = body
        headers["content-type"] = case.media_type or "application/octet-stream"
    elif case.media_type == "application/x-www-form-urlencoded":
        content = form_body(as_form_pairs(body))
        headers["content-type"] = case.media_type
    elif case.media_type is not None:
        content = json.dumps(body).encode()
        headers["content-type"] = case.media_type
    return await http.request(case.method, case.formatted_path, params=case.query, headers=headers, content=content)


OAUTH_OPERATIONS = [
    ("/oidc/token", "POST", {200}),
    ("/oidc/par", "POST", {201}),
    ("/oidc/introspect", "POST", {200}),
    ("/oidc/revoke", "POST", {200}),
]
OPERATOR_OPERATIONS = [
    ("/api/operator/clients", "GET", {200}),
    ("/api/operator/clients", "POST", {201}),
    ("/api/operator/clients/{client_id}", "GET", {200}),
    ("/api/operator/clients/{client_id}/disable", "POST", {200}),
]


@pytest.mark.parametrize(("path", "method", "success"), OAUTH_OPERATIONS, ids=[p for p, _, _ in OAUTH_OPERATIONS])
@FUZZ
@given(data=st.data(), authenticate=st.booleans())
async def test_oauth_endpoints_answer_every_generated_request_with_an_oauth_error(
    app: FastAPI,
    client: httpx.AsyncClient,
    rp: TestClient,
    path: str,
    method: str,
    success: set[int],
    data: Any,
    authenticate: bool,
) -> None:
    """Half the cases from a genuinely authenticated client, so that more than client authentication runs."""
    case = generated_case(app, data, path, method)
    if authenticate and isinstance(case.body, dict):
        case.body = {**case.body, **client_auth(rp)}
    assert_oauth_answer(await send_case(client, case, {}), success)


@pytest.mark.parametrize(
    ("path", "method", "success"), OPERATOR_OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATOR_OPERATIONS]
)
@FUZZ
@given(data=st.data(), authenticated=st.booleans())
async def test_the_operator_api_answers_every_generated_request_with_a_problem(
    app: FastAPI,
    client: httpx.AsyncClient,
    operator_token: str,
    path: str,
    method: str,
    success: set[int],
    data: Any,
    authenticated: bool,
) -> None:
    case = generated_case(app, data, path, method)
    auth = {"authorization": f"Bearer {operator_token}"} if authenticated else {}
    assert_problem_answer(await send_case(client, case, auth), success)


metadata_changes = st.fixed_dictionaries(
    {
        "set": st.dictionaries(
            st.sampled_from(sorted(ClientMetadata.model_fields)), st.one_of(json_values, texts), max_size=2
        ),
        "drop": st.lists(st.sampled_from(sorted(ClientMetadata.model_fields)), max_size=1),
    }
)


@FUZZ
@given(changes=metadata_changes)
async def test_the_operator_api_validates_any_client_metadata(
    client: httpx.AsyncClient, rp: TestClient, operator_token: str, changes: dict[str, Any]
) -> None:
    """Changes to valid metadata, so that each validation is reached: a problem document, or a client
    registered exactly as it can then be read back and disabled."""
    valid = {
        "client_id": f"fuzz-{secrets.token_hex(6)}",
        "client_name": {"en": "Fuzzed service"},
        "redirect_uris": ["https://fuzz.example.hk/callback"],
        "jwks": {"keys": [rp.key.as_dict(private=False)]},
    }
    auth = {**JSON_ACCEPT, "authorization": f"Bearer {operator_token}"}
    response = await client.post("/api/operator/clients", json=changed(valid, changes), headers=auth)
    assert_problem_answer(response, {201})
    if response.status_code == 201:
        client_id = response.json()["client_id"]
        assert (await client.get(f"/api/operator/clients/{quote(client_id)}", headers=auth)).status_code == 200
        disabled = await client.post(f"/api/operator/clients/{quote(client_id)}/disable", headers=auth)
        assert disabled.json()["disabled"] is True


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/.well-known/openid-configuration", "GET"),
        ("/.well-known/oauth-authorization-server", "GET"),
        ("/jwks.json", "GET"),
        ("/oidc/userinfo", "GET"),
        ("/oidc/userinfo", "POST"),
    ],
)
@settings(FUZZ, max_examples=EXAMPLES // 4)
@given(data=st.data(), query=st.lists(st.tuples(names, texts), max_size=4))
async def test_metadata_and_userinfo_answer_every_generated_request(
    app: FastAPI, client: httpx.AsyncClient, path: str, method: str, data: Any, query: list[tuple[str, str]]
) -> None:
    case = generated_case(app, data, path, method)
    response = await client.request(method, f"{case.formatted_path}?{urlencode(query)}", headers=JSON_ACCEPT)
    if path == "/oidc/userinfo":
        assert_resource_answer(response)
        assert response.status_code == 401  # no token was sent
    else:
        assert response.status_code == 200
        assert response.json()


# --- forms the OpenAPI document cannot describe: authenticated clients, JOSE objects -----------------------

token_fields = st.fixed_dictionaries(
    {"grant_type": or_anything(st.sampled_from(["authorization_code", "refresh_token", "client_credentials"]))},
    optional=dict.fromkeys(("code", "redirect_uri", "code_verifier", "refresh_token", "scope", "resource"), texts),
).map(lambda fields: {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()})


@pytest.fixture
async def refresh_token(client: httpx.AsyncClient, rp: TestClient, resident: TestResident) -> str:
    code, verifier = await code_flow(client, rp, resident)
    response = await post_token(client, code_form(code, verifier, rp))
    assert response.status_code == 200, response.text
    token: str = response.json()["refresh_token"]
    return token


@FUZZ
@given(
    fields=token_fields,
    authenticate=st.booleans(),
    real_refresh_token=st.booleans(),
    extra=st.lists(st.tuples(names, texts), max_size=3),
)
async def test_the_token_endpoint_with_an_authenticated_client_and_arbitrary_grants(
    client: httpx.AsyncClient,
    rp: TestClient,
    refresh_token: str,
    fields: dict[str, str],
    authenticate: bool,
    real_refresh_token: bool,
    extra: list[tuple[str, str]],
) -> None:
    """Arbitrary grants from the genuine client, some with a real refresh token (rotated, then reused)."""
    if real_refresh_token:
        fields = {**fields, "grant_type": "refresh_token", "refresh_token": refresh_token}
    auth = client_auth(rp) if authenticate else {"client_id": rp.client_id}
    pairs = [*fields.items(), *auth.items(), *extra]
    response = await client.post("/oidc/token", content=form_body(pairs), headers=FORM)
    assert_oauth_answer(response, {200})


@FUZZ
@given(
    raw=unsigned_jws(),
    header=header_changes,
    changes=claim_changes,
    use_signed=st.booleans(),
    path=st.sampled_from(["/oidc/token", "/oidc/introspect", "/oidc/revoke", "/oidc/par"]),
)
async def test_client_assertions_of_any_shape_are_refused_cleanly(
    client: httpx.AsyncClient,
    rp: TestClient,
    raw: str,
    header: dict[str, Any],
    changes: dict[str, Any],
    use_signed: bool,
    path: str,
) -> None:
    """Changes to a valid assertion signed with the client's registered key (so every check after the
    signature runs), or anything unsigned."""
    now = int(time.time())
    valid = {"iss": rp.client_id, "sub": rp.client_id, "aud": ISSUER, "exp": now + 60, "jti": secrets.token_hex(8)}
    claims = changed(valid, changes)
    assertion = signed(rp.key, header, claims) if use_signed else raw
    form = {
        "grant_type": "client_credentials",
        "token": "x",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    response = await client.post(path, content=form_body(list(form.items())), headers=FORM)
    assert_oauth_answer(response, {200, 201})
    if response.status_code == 200:
        assert use_signed  # only a genuinely signed assertion ever authenticates
        assert claims["iss"] == claims["sub"] == rp.client_id


def dpop_claims(method: str, url: str, nonce: str, access_token: str | None) -> dict[str, Any]:
    claims = {"jti": secrets.token_hex(8), "htm": method, "htu": url, "iat": int(time.time()), "nonce": nonce}
    if access_token is not None:
        claims["ath"] = b64(hashlib.sha256(access_token.encode()).digest())
    return claims


@FUZZ
@given(
    raw=unsigned_jws(),
    header=header_changes,
    changes=claim_changes,
    use_signed=st.booleans(),
    where=st.sampled_from(["token", "userinfo GET", "userinfo POST", "par"]),
    scheme=st.sampled_from(["DPoP", "Bearer", "dpop"]),
)
async def test_dpop_proofs_of_any_shape_are_refused_cleanly(
    app: FastAPI,
    client: httpx.AsyncClient,
    rp: TestClient,
    raw: str,
    header: dict[str, Any],
    changes: dict[str, Any],
    use_signed: bool,
    where: str,
    scheme: str,
) -> None:
    """Changes to a valid proof, signed by the key in its own header as a real proof is, or anything unsigned."""
    key = ECKey.generate_key("P-256")
    nonce = app.state.oidc.nonces.current()
    access_token = secrets.token_urlsafe(20)
    method, url = {"token": ("POST", TOKEN_URL), "par": ("POST", PAR_URL)}.get(where, (where[9:], USERINFO_URL))
    claims = changed(dpop_claims(method, url, nonce, access_token if url == USERINFO_URL else None), changes)
    proof_header = {"typ": "dpop+jwt", **header, "jwk": key.as_dict(private=False)}
    proof = signed(key, proof_header, claims) if use_signed else raw
    dpop = [(b"dpop", proof.encode()), (b"accept", b"application/json")]
    if where == "token":
        form = {"grant_type": "refresh_token", "refresh_token": "x", **client_auth(rp)}
        response = await client.post("/oidc/token", data=form, headers=dpop)
        assert_oauth_answer(response, set())
    elif where == "par":
        _, challenge = pkce()
        form = {"response_type": "code", "scope": "openid", "code_challenge": challenge, **client_auth(rp)}
        form.update(code_challenge_method="S256", redirect_uri=REDIRECT_URI)
        response = await client.post("/oidc/par", data=form, headers=dpop)
        assert_oauth_answer(response, {201})
    else:
        headers = [*dpop, (b"authorization", f"{scheme} {access_token}".encode())]
        response = await client.request(method, "/oidc/userinfo", headers=headers)
        assert_resource_answer(response)
        assert response.status_code == 401  # the access token is made up


@FUZZ
@given(
    value=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.tuples(st.sampled_from(["Bearer ", "DPoP ", "Basic ", "bearer  ", "MAC "]), unsigned_jws()).map(
            lambda pair: (pair[0] + pair[1]).encode()
        ),
        st.tuples(st.text(max_size=30), st.text(max_size=30)).map(
            lambda pair: b"Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode())
        ),
    ),
    where=st.sampled_from(
        [
            "GET /oidc/userinfo",
            "POST /oidc/userinfo",
            "/oidc/token",
            "/oidc/introspect",
            "/oidc/revoke",
            "/api/operator/clients",
        ]
    ),
)
async def test_any_authorization_header_is_refused_cleanly(
    client: httpx.AsyncClient, rp: TestClient, value: bytes, where: str
) -> None:
    headers = [(b"authorization", value), (b"accept", b"application/json")]
    if where.endswith("/oidc/userinfo"):
        response = await client.request(where.split()[0], "/oidc/userinfo", headers=headers)
        assert_resource_answer(response)
        assert response.status_code in (400, 401)
    elif where == "/api/operator/clients":
        assert_problem_answer(await client.get(where, headers=headers), set())
    else:
        form = {"grant_type": "client_credentials", "token": "x"}
        response = await client.post(where, data=form, headers=headers)
        assert_oauth_answer(response, set())


# --- the authorization endpoint and request objects ------------------------------------------------------


def valid_request(rp: TestClient) -> dict[str, str]:
    _, challenge = pkce()
    return {
        "client_id": rp.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": "s",
        "nonce": "n",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


authorization_changes = st.fixed_dictionaries(
    {
        "set": st.dictionaries(names, texts, max_size=4),
        "drop": st.lists(st.sampled_from(KNOWN_PARAMETERS), max_size=3),
        "repeat": st.lists(st.tuples(names, texts), max_size=2),
    }
)


def mutated(rp: TestClient, changes: dict[str, Any]) -> list[tuple[str, str]]:
    params = {**valid_request(rp), **changes["set"]}
    for name in changes["drop"]:
        params.pop(name, None)
    return [*params.items(), *changes["repeat"]]


@pytest.fixture
async def signed_in(client: httpx.AsyncClient, resident: TestResident) -> httpx.AsyncClient:
    await sign_in(client, resident)
    assert (await client.get("/account")).status_code == 200
    return client


@FUZZ
@given(changes=authorization_changes, method=st.sampled_from(["GET", "POST"]))
async def test_the_authorization_endpoint_never_fails_nor_redirects_elsewhere(
    client: httpx.AsyncClient, rp: TestClient, changes: dict[str, Any], method: str
) -> None:
    pairs = mutated(rp, changes)
    if method == "GET":
        response = await client.get(f"/oidc/authorize?{urlencode(pairs)}")
    else:
        body = form_body(pairs)
        headers = {"content-type": "application/x-www-form-urlencoded"}
        response = await client.post("/oidc/authorize", content=body, headers=headers)
    assert_page_answer(response, authorization_redirects)


@FUZZ
@given(changes=authorization_changes)
async def test_silent_authorization_for_a_signed_in_resident_never_fails(
    signed_in: httpx.AsyncClient, rp: TestClient, changes: dict[str, Any]
) -> None:
    """prompt=none runs every check of the interaction at once, with the resident's session."""
    changes = {**changes, "set": {"prompt": "none", **changes["set"]}}
    response = await signed_in.get(f"/oidc/authorize?{urlencode(mutated(rp, changes))}")
    assert_page_answer(response, authorization_redirects)


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=2000), texts.map(str.encode)),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json", "text/plain", ""]
    ),
)
async def test_the_authorization_endpoint_takes_any_body(
    client: httpx.AsyncClient, body: bytes, content_type: str
) -> None:
    response = await client.post("/oidc/authorize", content=body, headers={"content-type": content_type})
    assert_page_answer(response, authorization_redirects)


@FUZZ
@given(header=header_changes, changes=claim_changes, at_par=st.booleans())
async def test_request_objects_of_any_content_are_refused_cleanly(
    client: httpx.AsyncClient, rp: TestClient, header: dict[str, Any], changes: dict[str, Any], at_par: bool
) -> None:
    """Changes to a valid request object signed with the client's registered key, so that the checks
    of the claims inside all run."""
    now = int(time.time())
    valid = {**valid_request(rp), "iss": rp.client_id, "aud": ISSUER, "exp": now + 300}
    request_object = signed(rp.key, {"typ": "oauth-authz-req+jwt", **header}, changed(valid, changes))
    if at_par:
        form = {"request": request_object, **client_auth(rp)}
        assert_oauth_answer(await client.post("/oidc/par", data=form, headers=JSON_ACCEPT), {201})
    else:
        query = urlencode({"client_id": rp.client_id, "request": request_object})
        assert_page_answer(await client.get(f"/oidc/authorize?{query}"), authorization_redirects)


# --- interactions and logout ------------------------------------------------------------------------


@pytest.fixture
async def pending(signed_in: httpx.AsyncClient, rp: TestClient) -> str:
    """A genuine interaction in progress (its consent page), for the fuzz to act on besides made-up ones."""
    start = await signed_in.get(f"/oidc/authorize?{urlencode(valid_request(rp))}")
    location: str = start.headers["location"]
    assert location.startswith("/oidc/interaction/")
    return location.removeprefix("/oidc/interaction/")


@FUZZ
@given(
    interaction=st.one_of(st.none(), st.text(max_size=200), st.sampled_from(NASTY)),
    decision=st.one_of(st.sampled_from(["approve", "decline"]), texts),
    items=st.lists(st.one_of(st.sampled_from(["name", "email", "birthdate"]), texts), max_size=3),
    remember=st.one_of(st.just("yes"), texts),
)
async def test_interactions_of_any_id_and_any_consent_never_fail(
    signed_in: httpx.AsyncClient,
    pending: str,
    interaction: str | None,
    decision: str,
    items: list[str],
    remember: str,
) -> None:
    """Made-up interactions, and the genuine one (answered by the first example that approves or declines it)."""
    path = f"/oidc/interaction/{quote(pending if interaction is None else interaction[:500], safe='')}"
    assert_page_answer(await signed_in.get(path), authorization_redirects)
    token = CSRF_PATTERN.search((await signed_in.get("/account")).text)
    assert token
    form = [("csrf_token", token.group(1)), ("decision", decision), ("remember", remember)]
    form += [("item", item) for item in items]
    headers = {"content-type": FORM["content-type"]}
    assert_page_answer(
        await signed_in.post(f"{path}/consent", content=form_body(form), headers=headers), authorization_redirects
    )


def logout_redirects(location: str) -> bool:
    return registered_redirect(location, [SIGNED_OUT_URI]) or location.startswith("/signin")


@FUZZ
@given(
    params=st.fixed_dictionaries(
        {},
        optional={
            "id_token_hint": st.one_of(unsigned_jws(), texts),
            "client_id": st.one_of(st.just("rp-one"), texts),
            "post_logout_redirect_uri": st.one_of(st.sampled_from([SIGNED_OUT_URI, REDIRECT_URI]), texts),
            "state": texts,
            "ui_locales": texts,
        },
    ),
    extra=st.lists(st.tuples(names, texts), max_size=2),
    method=st.sampled_from(["GET", "POST"]),
)
async def test_logout_never_fails_nor_redirects_elsewhere(
    signed_in: httpx.AsyncClient,
    rp: TestClient,
    params: dict[str, str],
    extra: list[tuple[str, str]],
    method: str,
) -> None:
    pairs = [*params.items(), *extra]
    if method == "GET":
        response = await signed_in.get(f"/oidc/logout?{urlencode(pairs)}")
    else:
        headers = {"content-type": "application/x-www-form-urlencoded"}
        response = await signed_in.post("/oidc/logout", content=form_body(pairs), headers=headers)
    assert_page_answer(response, logout_redirects)


@FUZZ
@given(back=st.one_of(texts, st.sampled_from([SIGNED_OUT_URI, f"{SIGNED_OUT_URI}?state="]).map(lambda s: s + "x")))
async def test_the_logout_confirmation_never_fails_nor_redirects_elsewhere(
    client: httpx.AsyncClient, rp: TestClient, back: str
) -> None:
    token = CSRF_PATTERN.search((await client.get("/signin")).text)
    assert token
    body = form_body([("csrf_token", token.group(1)), ("back", back)])
    response = await client.post("/oidc/logout/confirm", content=body, headers={"content-type": FORM["content-type"]})
    assert_page_answer(response, logout_redirects)


# --- NUL characters: PostgreSQL text cannot hold them, so none may reach a query -------------------------

NUL = "\x00"


async def test_a_nul_in_any_identifier_is_refused_before_the_database(
    app: FastAPI, client: httpx.AsyncClient, rp: TestClient, resident: TestResident, operator_token: str
) -> None:
    """Each place where a caller's string becomes a lookup key, with a NUL in it (found by the fuzz above
    on PostgreSQL, where the query itself fails). SQLite accepts NUL, so this runs deterministically on both."""
    basic = "Basic " + base64.b64encode(f"{NUL}rp:secret".encode()).decode()
    response = await client.post(
        "/oidc/introspect", data={"token": "x"}, headers={**JSON_ACCEPT, "authorization": basic}
    )
    assert_oauth_answer(response, set())
    assert response.status_code == 401

    for params in (
        {"client_id": f"{NUL}rp"},
        {"client_id": rp.client_id, "request_uri": f"urn:ietf:params:oauth:request_uri:{NUL}"},
    ):
        response = await client.get(f"/oidc/authorize?{urlencode(params)}")
        assert response.status_code == 400
        assert "location" not in response.headers
    logout = await client.get(
        f"/oidc/logout?{urlencode({'client_id': NUL, 'post_logout_redirect_uri': SIGNED_OUT_URI})}"
    )
    assert logout.status_code == 400
    assert (await client.get("/oidc/interaction/%00")).status_code == 400

    operator = {**JSON_ACCEPT, "authorization": f"Bearer {operator_token}"}
    assert_problem_answer(await client.get("/api/operator/clients/%00", headers=operator), set())
    assert_problem_answer(await client.post("/api/operator/clients/a%00b/disable", headers=operator), set())

    now = int(time.time())
    jti = NUL * 10
    assertion = signed(
        rp.key, {}, {"iss": rp.client_id, "sub": rp.client_id, "aud": ISSUER, "exp": now + 60, "jti": jti}
    )
    form = {"token": "x", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    response = await client.post("/oidc/introspect", data=form, headers=JSON_ACCEPT)
    assert_oauth_answer(response, set())
    assert response.json()["error"] == "invalid_client"

    key = ECKey.generate_key("P-256")
    claims = dpop_claims("POST", TOKEN_URL, app.state.oidc.nonces.current(), None)
    proof = signed(key, {"typ": "dpop+jwt", "jwk": key.as_dict(private=False)}, {**claims, "jti": jti})
    form = {"grant_type": "refresh_token", "refresh_token": "x", **client_auth(rp)}
    response = await client.post("/oidc/token", data=form, headers={**JSON_ACCEPT, "dpop": proof})
    assert_oauth_answer(response, set())
    assert response.json()["error"] == "invalid_dpop_proof"

    await sign_in(client, resident)
    token = CSRF_PATTERN.search((await client.get("/account")).text)
    assert token
    withdrawn = await client.post("/account/services/%00/withdraw", data={"csrf_token": token.group(1)})
    assert withdrawn.status_code == 303
    assert withdrawn.headers["location"] == "/account/services?notice=unchanged"
