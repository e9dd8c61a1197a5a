"""The consumer's side (docs/exchange-protocol.md §2–5): ask for a consent, read it and its artefact, fetch
the data and check every provider's answer end to end (the gateway could have altered nothing it cannot
sign), and verify the gateway's webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from bauhinia.sdk import claims as read
from bauhinia.sdk import jose
from bauhinia.sdk.artefact import ConsentArtefact, artefact_of
from bauhinia.sdk.credentials import SystemCredentials
from bauhinia.sdk.errors import GatewayProblem, ResponseRefused
from bauhinia.sdk.gateway import SYSTEM_ID, GatewayClient
from bauhinia.sdk.lifecycle import Closing

ANSWERED = ("delivered", "denied")  # the statuses that carry a provider's signed response
STATUSES = (*ANSWERED, "timeout", "error")


@dataclass(frozen=True)
class ConsentRequest:
    id: str
    status: str
    review_url: str  # where to send the resident's browser
    expires_at: datetime


@dataclass(frozen=True)
class Consent:
    id: str
    status: str
    purpose: str
    mode: str
    items: list[str]
    valid_until: datetime | None
    max_fetches: int
    fetches: int
    data_life: int
    artefact: ConsentArtefact | None


@dataclass(frozen=True)
class ReleasedItem:
    value: Any
    source: str
    as_of: str
    provider: str


@dataclass(frozen=True)
class ProviderOutcome:
    provider: str
    items: list[str]
    status: str  # delivered, denied, timeout or error
    detail: str | None = None
    response: str | None = None  # the provider's signed response, kept as evidence


@dataclass(frozen=True)
class DataResult:
    request_id: str
    consent_id: str
    values: dict[str, ReleasedItem]
    outcomes: list[ProviderOutcome]
    receipt: dict[str, Any]  # the verified claims of the gateway's receipt
    receipt_jws: str  # the receipt itself: what proves what was asked and received


@dataclass(frozen=True)
class ConsentEvent:
    id: str
    consent_id: str
    status: str
    issued_at: datetime


class ConsumerClient(Closing):
    """``async with ConsumerClient(credentials) as consumer``: consents, data requests, webhooks."""

    def __init__(self, credentials: SystemCredentials, *, http: httpx.AsyncClient | None = None) -> None:
        self.system_id = credentials.system_id
        self.gateway = GatewayClient(credentials, http=http)
        self._encryption_key = credentials.encryption_key()
        self._artefacts: dict[str, ConsentArtefact] = {}  # an artefact never changes once issued

    async def aclose(self) -> None:
        await self.gateway.aclose()

    # --- consents ---------------------------------------------------------------------------------

    async def request_consent(
        self,
        *,
        purpose: str,
        items: Sequence[str],
        optional: Sequence[str] = (),
        mode: str = "once",
        valid_for: int = 3600,
        max_fetches: int = 1,
        data_life: int = 0,
        redirect_uri: str,
        state: str,
    ) -> ConsentRequest:
        """Ask for a consent; send the resident to ``review_url``. ``optional`` items may be left out by them."""
        body = {
            "purpose": purpose,
            "items": [{"id": i} for i in items] + [{"id": i, "optional": True} for i in optional],
            "mode": mode,
            "valid_for": valid_for,
            "max_fetches": max_fetches,
            "data_life": data_life,
            "redirect_uri": redirect_uri,
            "state": state,
        }
        answer = _object(await self.gateway.json("POST", "/api/exchange/consents", json=body))
        try:
            return ConsentRequest(
                read.text(answer, "id"),
                read.text(answer, "status"),
                read.text(answer, "review_url"),
                _datetime(read.text(answer, "expires_at")),
            )
        except jose.Invalid as exc:
            raise ResponseRefused(f"the gateway's answer: {exc}") from exc

    async def consent(self, consent_id: str) -> Consent:
        """A consent's status and, once approved, its verified artefact."""
        answer = _object(await self.gateway.json("GET", f"/api/exchange/consents/{quote(consent_id, safe='')}"))
        try:
            if answer.get("id") != consent_id:
                raise jose.Invalid("the gateway answered for another consent")
            artefact = answer.get("artefact")
            valid_until = answer.get("valid_until")
            return Consent(
                id=consent_id,
                status=read.text(answer, "status"),
                purpose=read.text(answer, "purpose"),
                mode=read.text(answer, "mode"),
                items=read.strings(answer, "items"),
                valid_until=_datetime(valid_until) if isinstance(valid_until, str) else None,
                max_fetches=read.integer(answer, "max_fetches"),
                fetches=read.integer(answer, "fetches"),
                data_life=read.integer(answer, "data_life"),
                artefact=None if artefact is None else await self._artefact_of(consent_id, artefact),
            )
        except jose.Invalid as exc:
            raise ResponseRefused(f"the consent: {exc}") from exc

    async def _artefact_of(self, consent_id: str, token: object) -> ConsentArtefact:
        cached = self._artefacts.get(consent_id)
        if cached is not None and cached.jws == token:
            return cached
        claims = await self.gateway.verify_from_gateway(token, jose.ARTEFACT_TYP)
        assert isinstance(token, str)
        artefact = artefact_of(claims, token)
        if artefact.id != consent_id:
            raise jose.Invalid("the artefact is of another consent")
        if artefact.consumer != self.system_id:
            raise jose.Invalid("the artefact was given to another consumer")
        self._artefacts[consent_id] = artefact
        return artefact

    async def _artefact(self, consent_id: str) -> ConsentArtefact:
        cached = self._artefacts.get(consent_id)
        if cached is not None:
            return cached
        consent = await self.consent(consent_id)
        if consent.artefact is None:
            raise GatewayProblem(409, "Conflict", f"The consent is {consent.status}: it has no artefact.")
        return consent.artefact

    # --- data requests ----------------------------------------------------------------------------

    async def fetch(self, consent_id: str, items: Sequence[str] | None = None) -> DataResult:
        """Request the data under a consent. Every provider's answer is checked; one that fails a check
        becomes an ``error`` outcome and its values are dropped. ``GatewayProblem`` if the gateway refuses."""
        artefact = await self._artefact(consent_id)  # read while the consent is active (a once-consent ends now)
        body: dict[str, Any] = {"consent_id": consent_id}
        if items is not None:
            body["items"] = list(items)
        answer = _object(await self.gateway.json("POST", "/api/exchange/data-requests", json=body))
        receipt = await self._receipt(answer, consent_id)
        results = answer.get("results")
        if not isinstance(results, list):
            raise ResponseRefused("the gateway's answer lists no results")
        checked = await asyncio.gather(*(self._result(r, receipt, artefact) for r in results))
        values: dict[str, ReleasedItem] = {}
        for _, released in checked:
            values.update(released)
        return DataResult(
            request_id=receipt["jti"],
            consent_id=consent_id,
            values=values,
            outcomes=[outcome for outcome, _ in checked],
            receipt=receipt,
            receipt_jws=answer["receipt"],
        )

    async def _receipt(self, answer: dict[str, Any], consent_id: str) -> dict[str, Any]:
        try:
            receipt = await self.gateway.verify_from_gateway(answer.get("receipt"), jose.RECEIPT_TYP)
            read.expect(receipt, "jti", read.text(answer, "id"))
            read.expect(receipt, "consent_id", consent_id)
            read.expect(receipt, "consumer", self.system_id)
            if not isinstance(receipt.get("results"), list):
                raise jose.Invalid("the receipt lists no results")
        except jose.Invalid as exc:
            raise ResponseRefused(f"the receipt: {exc}") from exc
        return receipt

    async def _result(
        self, result: object, receipt: dict[str, Any], artefact: ConsentArtefact
    ) -> tuple[ProviderOutcome, dict[str, ReleasedItem]]:
        """One provider's outcome and values; any failed check makes it an ``error`` with the reason."""
        if not isinstance(result, dict):
            return ProviderOutcome("", [], "error", "the gateway's result is not an object"), {}
        provider = result.get("provider") if isinstance(result.get("provider"), str) else ""
        items = [i for i in result.get("items") or [] if isinstance(i, str)]
        try:
            return await self._checked(result, receipt, artefact)
        except jose.Invalid as exc:
            return ProviderOutcome(str(provider), items, "error", str(exc), result.get("response")), {}
        except (GatewayProblem, httpx.HTTPError) as exc:
            detail = f"the provider's registered keys could not be read ({exc!r})"
            return ProviderOutcome(str(provider), items, "error", detail, result.get("response")), {}

    async def _checked(
        self, result: dict[str, Any], receipt: dict[str, Any], artefact: ConsentArtefact
    ) -> tuple[ProviderOutcome, dict[str, ReleasedItem]]:
        provider, status = read.text(result, "provider"), read.text(result, "status")
        items = read.strings(result, "items")
        if not SYSTEM_ID.match(provider):
            raise jose.Invalid("the provider is not a system id")
        if status not in STATUSES:
            raise jose.Invalid("the gateway gave an unknown status")
        recorded = _recorded(receipt, provider)
        if recorded.get("status") != status or sorted(recorded.get("items") or []) != sorted(items):
            raise jose.Invalid("the result differs from the receipt")
        outside = sorted(set(items) - set(artefact.item_ids(provider)))
        if outside:
            raise jose.Invalid(f"asked of this provider without consent: {', '.join(outside)}")
        detail = result.get("detail") if isinstance(result.get("detail"), str) else None
        if status not in ANSWERED:
            return ProviderOutcome(provider, items, status, detail), {}
        response = read.text(result, "response")
        claims = await self._response_claims(provider, response, receipt, recorded, status)
        if status == "denied":
            reason = claims.get("reason")
            return ProviderOutcome(provider, items, status, reason if isinstance(reason, str) else None, response), {}
        released = self._released(provider, claims, items)
        return ProviderOutcome(provider, items, status, detail, response), released

    async def _response_claims(
        self, provider: str, response: str, receipt: dict[str, Any], recorded: dict[str, Any], status: str
    ) -> dict[str, Any]:
        if recorded.get("response_hash") != jose.request_hash(response):
            raise jose.Invalid("the response is not the one the receipt records")
        try:
            claims = await self.gateway.verify_from_system(provider, response, jose.RESPONSE_TYP)
        except jose.Invalid as exc:
            raise jose.Invalid(f"the provider's response: {exc}") from exc
        read.expect(claims, "iss", provider)
        read.expect(claims, "aud", self.system_id)
        read.expect(claims, "request_id", receipt["jti"])
        if not isinstance(recorded.get("request_hash"), str) or claims.get("request_hash") != recorded["request_hash"]:
            raise jose.Invalid("the response answers another request (request_hash)")
        read.expect(claims, "status", status)
        return claims

    def _released(self, provider: str, claims: dict[str, Any], asked: list[str]) -> dict[str, ReleasedItem]:
        """The decrypted values, refused whole if any item was not asked of this provider (so not consented)."""
        named = read.strings(claims, "items")
        content = jose.decrypt(claims.get("data"), self._encryption_key)
        read.expect(content, "request_id", claims["request_id"])
        values = content.get("items")
        if not isinstance(values, dict) or not values:
            raise jose.Invalid("the decrypted data holds no items")
        outside = sorted((set(values) | set(named)) - set(asked))
        if outside:
            raise jose.Invalid(f"the provider released items not asked of it: {', '.join(outside)}")
        if set(values) != set(named):
            raise jose.Invalid("the encrypted items differ from the signed list")
        return {item: _released_item(entry, provider) for item, entry in values.items()}

    # --- webhooks ---------------------------------------------------------------------------------

    async def verify_webhook(self, body: bytes | str) -> ConsentEvent:
        """A consent status event POSTed by the gateway (``application/jwt``); ``ResponseRefused`` unless valid.
        Events may come twice (deduplicate on ``id``) and out of order (compare ``issued_at``)."""
        try:
            token = body.decode("ascii").strip() if isinstance(body, bytes) else body.strip()
            claims = await self.gateway.verify_from_gateway(token, jose.EVENT_TYP)
            read.expect(claims, "aud", self.system_id)
            read.expect(claims, "event", "consent.status")
            return ConsentEvent(
                id=read.text(claims, "jti"),
                consent_id=read.text(claims, "consent_id"),
                status=read.text(claims, "status"),
                issued_at=read.instant(read.integer(claims, "iat")),
            )
        except UnicodeDecodeError as exc:
            raise ResponseRefused("the webhook body is not a compact JWS") from exc
        except jose.Invalid as exc:
            raise ResponseRefused(f"the webhook: {exc}") from exc
        except (GatewayProblem, httpx.HTTPError) as exc:
            raise ResponseRefused("the gateway's keys could not be fetched") from exc


def _recorded(receipt: dict[str, Any], provider: str) -> dict[str, Any]:
    entries = [e for e in receipt["results"] if isinstance(e, dict) and e.get("provider") == provider]
    if len(entries) != 1:
        raise jose.Invalid("the receipt does not record this provider once")
    return entries[0]


def _released_item(entry: object, provider: str) -> ReleasedItem:
    if not isinstance(entry, dict) or "value" not in entry:
        raise jose.Invalid("a released item has no value")
    return ReleasedItem(entry["value"], read.text(entry, "source"), read.text(entry, "as_of"), provider)


def _object(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise ResponseRefused("the gateway's answer is not a JSON object")
    return answer


def _datetime(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise jose.Invalid("a time is not in ISO 8601 form") from exc
