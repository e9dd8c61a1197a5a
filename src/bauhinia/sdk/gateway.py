"""Calling the gateway as a registered system: an access token from the OpenID provider (client_credentials,
private_key_jwt, DPoP-bound, renewed before it expires), a fresh DPoP proof on every call, problem details
turned into ``GatewayProblem``, and the keys that verify what the gateway and other systems sign."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from joserfc.jwk import ECKey, KeySet

from bauhinia.sdk import jose
from bauhinia.sdk.credentials import SystemCredentials
from bauhinia.sdk.errors import GatewayProblem
from bauhinia.sdk.lifecycle import Closing

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60
RENEW_BEFORE = 30  # seconds before expiry a token is renewed, so none expires on the way
SYSTEM_KEYS_TTL = 300
GATEWAY_KEYS_TTL = 3600  # a withdrawn gateway key stops being trusted within the hour
REFETCH_INTERVAL = 10  # an unknown kid refetches keys at most this often: random kids cannot hammer the gateway
NONCE_HEADER = "DPoP-Nonce"
SYSTEM_ID = re.compile(r"^[A-Za-z0-9-]{1,32}(/[A-Za-z0-9-]{1,32}){3}$")


class GatewayClient(Closing):
    """One system's authenticated session with the gateway. Use as ``async with GatewayClient(...) as gw``."""

    def __init__(
        self, credentials: SystemCredentials, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        self.credentials = credentials
        self.gateway = credentials.gateway
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._client_key = credentials.client_key()
        # One DPoP key per client: the token is bound to it, and it never leaves this process.
        self._dpop_key = ECKey.generate_key("P-256")
        self._dpop_jwk = self._dpop_key.as_dict(private=False)
        self._nonce: str | None = None
        self._token: tuple[str, float] | None = None  # (access token, monotonic expiry)
        self._token_endpoint: str | None = None
        self._token_lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()
        self._gateway_keys: tuple[KeySet, float] | None = None
        self._gateway_keys_refreshed = -float("inf")
        self._system_keys: dict[str, tuple[dict[str, KeySet], float]] = {}

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- calls ------------------------------------------------------------------------------------

    async def request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        """One authenticated call to ``{gateway}{path}``, retried once when the nonce or the token went stale."""
        url = f"{self.gateway}{path}"
        response: httpx.Response | None = None
        for attempt in range(2):
            token = await self._access_token()
            headers = {
                "Accept": "application/json",
                "Authorization": f"DPoP {token}",
                "DPoP": self._proof(method, url, token),
            }
            response = await self._http.request(method, url, json=json, headers=headers)
            self._remember_nonce(response)
            if attempt or response.status_code != 401:
                break
            if not (_asks_for_nonce(response) and NONCE_HEADER in response.headers):
                self._token = None  # expired or revoked early: a new token (and its nonce) may do
        assert response is not None
        return response

    async def json(self, method: str, path: str, json: Any = None) -> Any:
        """The JSON answer of a successful call; ``GatewayProblem`` for any refusal."""
        response = await self.request(method, path, json)
        if not response.is_success:
            raise problem_of(response)
        try:
            return response.json()
        except ValueError as exc:
            raise GatewayProblem(response.status_code, "Invalid answer", "The gateway's answer is not JSON.") from exc

    # --- keys -------------------------------------------------------------------------------------

    async def gateway_keys(self, *, refresh: bool = False) -> KeySet:
        """The gateway's signing keys (``{gateway}/jwks.json``); ``refresh`` after an unknown kid (rotation)."""
        async with self._keys_lock:
            moment = time.monotonic()
            cached = self._gateway_keys
            due = refresh and moment - self._gateway_keys_refreshed >= REFETCH_INTERVAL
            if cached is None or moment >= cached[1] or due:
                if refresh:
                    self._gateway_keys_refreshed = moment
                response = await self._http.get(f"{self.gateway}/jwks.json", headers={"Accept": "application/json"})
                if response.status_code != 200:
                    raise problem_of(response)
                cached = self._gateway_keys = (jose.public_keys(_json_of(response), "sig"), moment + GATEWAY_KEYS_TTL)
            return cached[0]

    async def system_keys(self, system_id: str, use: str, *, refresh: bool = False) -> KeySet:
        """A registered system's public keys, ``use`` "sig" (signing_jwks) or "enc" (encryption_jwks)."""
        if use not in ("sig", "enc"):
            raise ValueError("use must be sig or enc")
        if not SYSTEM_ID.match(system_id):  # it goes into a URL path: nothing but a well-formed id
            raise ValueError("not a system id")
        cached = self._system_keys.get(system_id)
        if cached is None or time.monotonic() >= cached[1] or refresh:
            system = await self.json("GET", f"/api/exchange/systems/{quote(system_id, safe='/')}")
            if not isinstance(system, dict) or system.get("id") != system_id:
                raise GatewayProblem(502, "Invalid answer", "The gateway answered for another system.")
            keys = {
                "sig": jose.public_keys(system.get("signing_jwks"), "sig"),
                "enc": jose.public_keys(system.get("encryption_jwks"), "enc"),
            }
            cached = self._system_keys[system_id] = (keys, time.monotonic() + SYSTEM_KEYS_TTL)
        return cached[0][use]

    async def verify_from_gateway(self, token: object, typ: str) -> dict[str, Any]:
        """Claims of a JWS the gateway signed (any typ), iss checked; ``jose.Invalid`` otherwise."""
        try:
            claims = jose.verify(token, await self.gateway_keys(), typ)
        except jose.UnknownKey:
            claims = jose.verify(token, await self.gateway_keys(refresh=True), typ)
        if claims.get("iss") != self.gateway:
            raise jose.Invalid("the iss claim is not the gateway")
        return claims

    async def verify_from_system(self, system_id: str, token: object, typ: str) -> dict[str, Any]:
        """Claims of a JWS a registered system signed with one of its registered signing keys."""
        try:
            return jose.verify(token, await self.system_keys(system_id, "sig"), typ)
        except jose.UnknownKey:
            return jose.verify(token, await self.system_keys(system_id, "sig", refresh=True), typ)

    # --- the access token -------------------------------------------------------------------------

    async def _access_token(self) -> str:
        async with self._token_lock:  # concurrent calls share one token request
            if self._token is None or time.monotonic() >= self._token[1] - RENEW_BEFORE:
                self._token = await self._new_token()
            return self._token[0]

    async def _new_token(self) -> tuple[str, float]:
        endpoint = await self._token_url()
        response: httpx.Response | None = None
        for attempt in range(2):
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(),  # a new jti each time: the server spends every one
            }
            headers = {"Accept": "application/json", "DPoP": self._proof("POST", endpoint)}
            response = await self._http.post(endpoint, data=form, headers=headers)
            self._remember_nonce(response)
            retry = response.status_code == 400 and _oauth_error(response) == "use_dpop_nonce"
            if attempt or not (retry and NONCE_HEADER in response.headers):
                break
        assert response is not None
        if response.status_code != 200:
            raise problem_of(response)
        return self._issued(_json_of(response))

    def _issued(self, body: Any) -> tuple[str, float]:
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise GatewayProblem(502, "Invalid answer", "The token endpoint gave no access token.")
        if str(body.get("token_type", "")).lower() != "dpop":
            raise GatewayProblem(502, "Invalid answer", "The token endpoint gave a token not bound to the DPoP key.")
        lifetime = body.get("expires_in")
        lifetime = lifetime if isinstance(lifetime, int) and lifetime > 0 else 60
        return token, time.monotonic() + lifetime

    async def _token_url(self) -> str:
        if self._token_endpoint is None:
            response = await self._http.get(
                f"{self.gateway}/.well-known/openid-configuration", headers={"Accept": "application/json"}
            )
            if response.status_code != 200:
                raise problem_of(response)
            discovery = _json_of(response)
            if not isinstance(discovery, dict):
                raise GatewayProblem(502, "Invalid answer", "The discovery document is not a JSON object.")
            endpoint = discovery.get("token_endpoint")
            # Our assertions name the gateway as audience: sending them anywhere else would let that
            # place replay them at the gateway, so the issuer and the endpoint's origin must match.
            if discovery.get("issuer") != self.gateway or not _same_origin(endpoint, self.gateway):
                raise GatewayProblem(502, "Invalid answer", "The discovery document names another issuer or host.")
            assert isinstance(endpoint, str)
            self._token_endpoint = endpoint
        return self._token_endpoint

    def _assertion(self) -> str:
        """private_key_jwt (RFC 7523): signed by the client's registered key, for the gateway, used once."""
        moment = jose.now()
        claims = {
            "iss": self.credentials.client_id,
            "sub": self.credentials.client_id,
            "aud": self.gateway,
            "iat": moment,
            "exp": moment + ASSERTION_LIFETIME,
            "jti": secrets.token_urlsafe(24),
        }
        header = {"alg": jose.ES256, "typ": "JWT", "kid": self._client_key.kid}
        return jose.sign_with_header(header, claims, self._client_key)

    def _proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A DPoP proof (RFC 9449 §4.2) for one request: htu without query, the server's nonce, ath with a token."""
        parts = urlsplit(url)
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),
            "htm": method.upper(),
            "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "iat": jose.now(),
        }
        if self._nonce is not None:
            claims["nonce"] = self._nonce
        if access_token is not None:
            claims["ath"] = jose.sha256_b64url(access_token)
        header = {"alg": jose.ES256, "typ": jose.DPOP_TYP, "jwk": self._dpop_jwk}
        return jose.sign_with_header(header, claims, self._dpop_key)

    def _remember_nonce(self, response: httpx.Response) -> None:
        nonce = response.headers.get(NONCE_HEADER)
        if nonce and len(nonce) <= 256:
            self._nonce = nonce


def problem_of(response: httpx.Response) -> GatewayProblem:
    """RFC 9457 problem details (or an OAuth error) as a GatewayProblem; anything else by its status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return GatewayProblem(response.status_code, response.reason_phrase or "Error", response.text[:200])
    if "error" in body and "title" not in body:  # the token endpoint speaks OAuth (RFC 6749 §5.2)
        return GatewayProblem(response.status_code, str(body["error"]), str(body.get("error_description", "")))
    errors = body.get("errors")
    return GatewayProblem(
        int(body["status"]) if isinstance(body.get("status"), int) else response.status_code,
        str(body.get("title") or response.reason_phrase or "Error"),
        str(body.get("detail") or ""),
        [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
    )


def _json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise GatewayProblem(response.status_code, "Invalid answer", "The gateway's answer is not JSON.") from exc


def _oauth_error(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def _asks_for_nonce(response: httpx.Response) -> bool:
    challenge = response.headers.get("WWW-Authenticate", "")
    return challenge.lower().startswith("dpop") and 'error="use_dpop_nonce"' in challenge


def _same_origin(url: object, base: str) -> bool:
    if not isinstance(url, str):
        return False
    one, other = urlsplit(url), urlsplit(base)
    return (one.scheme, one.netloc) == (other.scheme, other.netloc)
