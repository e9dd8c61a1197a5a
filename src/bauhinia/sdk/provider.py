"""The provider's side of a data request (docs/exchange-protocol.md §4): open what the gateway forwards,
with every check the protocol lists, then release only the items asked, encrypted to the consumer's key."""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import httpx

from bauhinia.sdk import claims as read
from bauhinia.sdk import jose
from bauhinia.sdk.artefact import ConsentArtefact, artefact_of
from bauhinia.sdk.credentials import SystemCredentials
from bauhinia.sdk.errors import GatewayProblem, RequestRefused
from bauhinia.sdk.gateway import GatewayClient
from bauhinia.sdk.lifecycle import Closing

MAX_BODY = 256 * 1024
MAX_REQUEST_LIFETIME = 300  # the gateway gives 60 s; a longer one would sit in the replay cache for long


@dataclass(frozen=True)
class ForwardedRequest:
    request_id: str
    subject: str  # this provider's pairwise subject for the resident
    items: list[str]
    consumer: str
    purpose: str
    consent: ConsentArtefact
    consumer_key: dict[str, Any]  # the public JWK the released data is encrypted to
    request_jws: str


@dataclass(frozen=True)
class ReleasedValue:
    value: Any  # valid against the item's JSON Schema in the catalogue
    as_of: str | date  # when the value was last updated


class ReplayCache(Protocol):
    """Remembers request ids (jti) until they expire. Several processes of one provider share one."""

    async def first_use(self, jti: str, expires_at: int) -> bool: ...


class MemoryReplayCache:
    """A replay cache for one process, pruned by expiry."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._expiries: list[tuple[int, str]] = []

    async def first_use(self, jti: str, expires_at: int) -> bool:
        moment = jose.now()
        while self._expiries and self._expiries[0][0] < moment:
            self._seen.discard(heapq.heappop(self._expiries)[1])
        if jti in self._seen:
            return False
        self._seen.add(jti)
        heapq.heappush(self._expiries, (expires_at, jti))
        return True


class ProviderHelper(Closing):
    """``async with ProviderHelper(credentials) as provider``: ``open`` a forwarded request, then ``respond``
    with the values or ``deny`` with a reason; both give the JSON body of the 200 answer."""

    def __init__(
        self,
        credentials: SystemCredentials,
        *,
        http: httpx.AsyncClient | None = None,
        max_clock_skew: int = 60,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self.credentials = credentials
        self.system_id = credentials.system_id
        self.gateway = GatewayClient(credentials, http=http)
        self.max_clock_skew = max_clock_skew
        self.replay_cache: ReplayCache = replay_cache or MemoryReplayCache()
        self._signing_key = credentials.signing_key()

    async def aclose(self) -> None:
        await self.gateway.aclose()

    async def open(self, body: bytes | str) -> ForwardedRequest:
        """The forwarded request in a ``{"request": "<JWS>"}`` body; ``RequestRefused`` unless every check holds."""
        token = _request_token(body)
        try:
            claims = await self._verified(token, jose.REQUEST_TYP, "request")
            self._check_request(claims)
            artefact = await self._artefact(read.text(claims, "consent"))
            request = self._forwarded(claims, artefact, token)
        except jose.Invalid as exc:
            raise RequestRefused(str(exc)) from exc
        # Last, once everything else holds: a refused request must not spend its jti.
        if not await self.replay_cache.first_use(read.text(claims, "jti"), claims["exp"] + self.max_clock_skew):
            raise RequestRefused("this request was already received (replay)")
        return request

    def respond(self, request: ForwardedRequest, released: Mapping[str, ReleasedValue]) -> dict[str, str]:
        """Release these values, encrypted to the consumer and signed; only items the request asked for."""
        outside = sorted(set(released) - set(request.items))
        if outside:
            raise ValueError(f"not asked for in this request: {', '.join(outside)}")
        if not released:
            raise ValueError("nothing to release: answer with deny() instead")
        content = {
            "request_id": request.request_id,
            "items": {
                item: {"value": v.value, "source": self.system_id, "as_of": _iso(v.as_of)}
                for item, v in released.items()
            },
        }
        data = jose.encrypt(content, jose.public_encryption_key(request.consumer_key))
        return self._answer(request, "delivered", sorted(released), {"data": data})

    def deny(self, request: ForwardedRequest, reason: str) -> dict[str, str]:
        """Refuse to release anything, with a reason the consumer and the resident may read."""
        return self._answer(request, "denied", [], {"reason": reason})

    # --- the checks -------------------------------------------------------------------------------

    async def _verified(self, token: object, typ: str, what: str) -> dict[str, Any]:
        try:
            return await self.gateway.verify_from_gateway(token, typ)
        except (GatewayProblem, httpx.HTTPError) as exc:
            raise jose.Invalid("the gateway's keys could not be fetched") from exc
        except jose.Invalid as exc:
            raise jose.Invalid(f"the {what}: {exc}") from exc

    def _check_request(self, claims: dict[str, Any]) -> None:
        read.expect(claims, "aud", self.system_id)
        read.text(claims, "jti")
        issued, expires = read.integer(claims, "iat"), read.integer(claims, "exp")
        moment = jose.now()
        if expires + self.max_clock_skew < moment:
            raise jose.Invalid("the request has expired")
        if issued - self.max_clock_skew > moment:
            raise jose.Invalid("the request is issued in the future")
        if expires - issued > MAX_REQUEST_LIFETIME:
            raise jose.Invalid("the request lives too long")

    async def _artefact(self, token: str) -> ConsentArtefact:
        claims = await self._verified(token, jose.ARTEFACT_TYP, "consent artefact")
        moment = jose.now()
        if read.integer(claims, "nbf") - self.max_clock_skew > moment:
            raise jose.Invalid("the consent artefact is not valid yet")
        if read.integer(claims, "exp") + self.max_clock_skew < moment:
            raise jose.Invalid("the consent artefact has expired")
        return artefact_of(claims, token)

    def _forwarded(self, claims: dict[str, Any], artefact: ConsentArtefact, token: str) -> ForwardedRequest:
        consumer = read.text(claims, "consumer")
        if artefact.consumer != consumer:
            raise jose.Invalid("the consent artefact was given to another consumer")
        items = read.strings(claims, "items")
        if not items:
            raise jose.Invalid("the request asks for no items")
        providers = {i.id: i.provider for i in artefact.items}
        for item in items:
            if item not in providers:
                raise jose.Invalid(f"{item} is not in the consent")
            if providers[item] != self.system_id:
                raise jose.Invalid(f"{item} is held by another provider under this consent")
        jose.public_encryption_key(claims.get("consumer_key"))
        return ForwardedRequest(
            request_id=read.text(claims, "request_id"),
            subject=read.text(claims, "sub"),
            items=items,
            consumer=consumer,
            purpose=artefact.purpose,
            consent=artefact,
            consumer_key=dict(claims["consumer_key"]),
            request_jws=token,
        )

    def _answer(
        self, request: ForwardedRequest, status: str, items: list[str], extra: dict[str, str]
    ) -> dict[str, str]:
        claims = {
            "iss": self.system_id,
            "aud": request.consumer,
            "iat": jose.now(),
            "request_id": request.request_id,
            "request_hash": jose.request_hash(request.request_jws),
            "status": status,
            "items": items,
            **extra,
        }
        return {"response": jose.sign(claims, self._signing_key, jose.RESPONSE_TYP)}


def _request_token(body: bytes | str) -> str:
    if len(body) > MAX_BODY:
        raise RequestRefused("the body is too large")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRefused("the body is not JSON") from exc
    token = parsed.get("request") if isinstance(parsed, dict) else None
    if not isinstance(token, str):
        raise RequestRefused('the body must be {"request": "<JWS>"}')
    return token


def _iso(as_of: str | date) -> str:
    return as_of.isoformat() if isinstance(as_of, date) else as_of
