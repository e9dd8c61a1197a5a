"""The three demo providers: each answers the gateway's data requests from its own records.

``POST /demo/<department>/exchange/data-requests`` takes ``{"request": "<JWS>"}`` (docs/exchange-protocol.md
§4). The SDK's ``ProviderHelper`` checks it (signatures, audience, expiry, replay, the consent artefact);
the department then releases exactly the requested items it holds on the forwarded subject, encrypted
to the consumer, or says it holds nothing on that resident.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bauhinia.demo.web import NotSetUp, departments_of, not_set_up
from bauhinia.sdk import ReleasedValue, RequestRefused

NO_RECORD = "No record for this resident."
MAX_REQUEST_BYTES = 256 * 1024  # a forwarded request is a few kilobytes


@dataclass(frozen=True)
class Provider:
    path: str  # under /demo: /<path>/exchange/data-requests
    system_id: str
    name: str

    @property
    def member_code(self) -> str:
        return self.system_id.split("/")[2]


PROVIDERS = (
    Provider("immigration", "HK/GOV/IMMD/residency", "Immigration Department"),
    Provider("inland-revenue", "HK/GOV/IRD/assessments", "Inland Revenue Department"),
    Provider("transport", "HK/GOV/TD/licensing", "Transport Department"),
)


def held_items(records: Any, subject: str, items: list[str]) -> dict[str, ReleasedValue]:
    """The requested items the department holds on the subject, and nothing else."""
    held = records.get(subject) if isinstance(records, dict) else None
    if not isinstance(held, dict):
        return {}
    released = {}
    for item in items:
        record = held.get(item)
        if isinstance(record, dict) and "value" in record and isinstance(record.get("as_of"), str):
            released[item] = ReleasedValue(value=record["value"], as_of=record["as_of"])
    return released


def answerer(provider: Provider) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        departments = departments_of(request)
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            return JSONResponse({"error": "The request is too large."}, status_code=413)
        try:
            helper = await departments.provider(provider.system_id)
            records = await departments.records(provider.member_code, provider.system_id)
        except NotSetUp as exc:
            return not_set_up(request, exc)
        try:
            forwarded = await helper.open(body)
        except RequestRefused as exc:
            return JSONResponse({"error": exc.reason}, status_code=400)
        except httpx.HTTPError:  # the gateway's keys could not be read
            return JSONResponse({"error": "The gateway's keys could not be read; try again."}, status_code=503)
        released = held_items(records, forwarded.subject, list(forwarded.items))
        if not released:
            return JSONResponse(helper.deny(forwarded, NO_RECORD))
        return JSONResponse(helper.respond(forwarded, released))

    answer.__name__ = f"{provider.path.replace('-', '_')}_data_requests"
    return answer


def routes() -> list[Route]:
    return [
        Route(f"/{provider.path}/exchange/data-requests", answerer(provider), methods=["POST"])
        for provider in PROVIDERS
    ]
