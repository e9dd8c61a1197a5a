"""The exchange registry's JSON API: members, systems, the data catalogue and purposes.

Any client holding a live access token may read the registry (a consumer looks up providers' keys
and the catalogue); only operator clients (the ``bauhinia.operator`` scope) may change it.
Errors are RFC 9457 problem details.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from bauhinia.core.database import SessionDep
from bauhinia.core.errors import STATUS_TITLES, Problem
from bauhinia.exchange.consents import ConsentRefused, consent_details, consumer_system
from bauhinia.exchange.models import MemberSystem
from bauhinia.exchange.schemas import (
    ConsentDetails,
    ConsentRequestBody,
    ConsentRequested,
    ConsentStatus,
    DataItemPublication,
    DataRequestAnswer,
    DataRequestBody,
    MemberRegistration,
    PublishedDataItem,
    PurposeRegistration,
    RegisteredMember,
    RegisteredPurpose,
    RegisteredSystem,
    SystemRegistration,
)
from bauhinia.exchange.service import ExchangeError, exchange_service
from bauhinia.oidc.service import OPERATOR_SCOPE, calling_client

router = APIRouter(prefix="/api/exchange", tags=["Exchange registry"])


async def reader(request: Request, db: SessionDep) -> str:
    """Any client with a live access token."""
    return await calling_client(request, db)


async def operator(request: Request, db: SessionDep) -> str:
    return await calling_client(request, db, scope=OPERATOR_SCOPE)


async def consumer(request: Request, db: SessionDep) -> MemberSystem:
    """The active consumer system the calling client speaks for."""
    client_id = await calling_client(request, db)
    with problems():
        return await consumer_system(db, exchange_service(request).consents.systems, client_id)


Reader = Annotated[str, Depends(reader)]
Consumer = Annotated[MemberSystem, Depends(consumer)]
Operator = Annotated[str, Depends(operator)]
Version = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="a past version; the current one if absent")]


@contextmanager
def problems() -> Iterator[None]:
    """The service's refusals, as problem details."""
    try:
        yield
    except ExchangeError as exc:
        raise _problem(exc.status, exc.detail, exc.location) from exc
    except ConsentRefused as exc:
        raise _problem(exc.status, exc.detail, [exc.location] if exc.location else []) from exc


def _problem(status: int, detail: str, location: list[str]) -> Problem:
    title = STATUS_TITLES[status]
    if not location:
        return Problem(status, title, detail)
    return Problem(status, title, detail, errors=[{"location": ["body", *location], "message": detail}])


# --- members --------------------------------------------------------------------------------------


@router.get("/members", summary="Every member")
async def list_members(request: Request, db: SessionDep, caller: Reader) -> list[RegisteredMember]:
    return await exchange_service(request).members(db)


@router.get("/members/{member_id:path}", summary="One member (its id holds slashes: HK/GOV/IMMD)")
async def get_member(request: Request, db: SessionDep, member_id: str, caller: Reader) -> RegisteredMember:
    with problems():
        return await exchange_service(request).member(db, member_id)


@router.post("/members", status_code=201, summary="Register a member")
async def add_member(request: Request, db: SessionDep, body: MemberRegistration, caller: Operator) -> RegisteredMember:
    with problems():
        return await exchange_service(request).register_member(db, body, actor=f"client:{caller}")


@router.post("/members/{member_id:path}/disable", summary="Disable a member and all its systems")
async def disable_member(request: Request, db: SessionDep, member_id: str, caller: Operator) -> RegisteredMember:
    with problems():
        return await exchange_service(request).disable_member(db, member_id, actor=f"client:{caller}")


# --- systems --------------------------------------------------------------------------------------


@router.get("/systems", summary="Every system, or one member's")
async def list_systems(
    request: Request, db: SessionDep, caller: Reader, member_id: str | None = None
) -> list[RegisteredSystem]:
    with problems():
        return await exchange_service(request).systems(db, member_id)


@router.get("/systems/{system_id:path}", summary="One system, with its public keys")
async def get_system(request: Request, db: SessionDep, system_id: str, caller: Reader) -> RegisteredSystem:
    with problems():
        return await exchange_service(request).system(db, system_id)


@router.post("/systems", status_code=201, summary="Register a member's system (provider, consumer or both)")
async def add_system(request: Request, db: SessionDep, body: SystemRegistration, caller: Operator) -> RegisteredSystem:
    with problems():
        return await exchange_service(request).register_system(db, body, actor=f"client:{caller}")


@router.post("/systems/{system_id:path}/disable", summary="Disable a system")
async def disable_system(request: Request, db: SessionDep, system_id: str, caller: Operator) -> RegisteredSystem:
    with problems():
        return await exchange_service(request).disable_system(db, system_id, actor=f"client:{caller}")


# --- the data catalogue ---------------------------------------------------------------------------


@router.get("/catalogue/items", summary="The catalogue: the current version of every item")
async def list_items(
    request: Request, db: SessionDep, caller: Reader, include_superseded: bool = False
) -> list[PublishedDataItem]:
    return await exchange_service(request).items(db, include_superseded=include_superseded)


@router.get("/catalogue/items/{item_id}", summary="One item: its current version, or the version asked for")
async def get_item(
    request: Request, db: SessionDep, item_id: str, caller: Reader, version: Version = None
) -> PublishedDataItem:
    with problems():
        return await exchange_service(request).item(db, item_id, version)


@router.post("/catalogue/items", status_code=201, summary="Publish an item, or a new version of it")
async def publish_item(
    request: Request, db: SessionDep, body: DataItemPublication, caller: Operator
) -> PublishedDataItem:
    with problems():
        return await exchange_service(request).publish_item(db, body, actor=f"client:{caller}")


# --- purposes -------------------------------------------------------------------------------------


@router.get("/purposes", summary="Every purpose")
async def list_purposes(request: Request, db: SessionDep, caller: Reader) -> list[RegisteredPurpose]:
    return await exchange_service(request).purposes(db)


@router.get("/purposes/{code}", summary="One purpose")
async def get_purpose(request: Request, db: SessionDep, code: str, caller: Reader) -> RegisteredPurpose:
    with problems():
        return await exchange_service(request).purpose(db, code)


@router.post("/purposes", status_code=201, summary="Register a purpose and the consumers that may use it")
async def add_purpose(
    request: Request, db: SessionDep, body: PurposeRegistration, caller: Operator
) -> RegisteredPurpose:
    with problems():
        return await exchange_service(request).register_purpose(db, body, actor=f"client:{caller}")


# --- consents and data requests (docs/exchange-protocol.md) --------------------------------------


@router.post("/consents", status_code=201, summary="Ask a resident for consent: send their browser to the review_url")
async def request_consent(
    request: Request, db: SessionDep, body: ConsentRequestBody, system: Consumer
) -> ConsentRequested:
    with problems():
        return await exchange_service(request).consents.request(db, system, body)


@router.get("/consents", summary="The calling consumer's consents, newest first")
async def list_consents(
    request: Request, db: SessionDep, system: Consumer, status: ConsentStatus | None = None
) -> list[ConsentDetails]:
    return await exchange_service(request).consents.of_consumer(db, system, status)


@router.get("/consents/{consent_id}", summary="One consent, with its signed artefact once approved")
async def get_consent(request: Request, db: SessionDep, consent_id: str, system: Consumer) -> ConsentDetails:
    with problems():
        return consent_details(await exchange_service(request).consents.for_consumer(db, system, consent_id))


@router.post("/data-requests", summary="Fetch consented data: each provider answers the consumer, encrypted")
async def data_request(request: Request, db: SessionDep, body: DataRequestBody, system: Consumer) -> DataRequestAnswer:
    with problems():
        return await exchange_service(request).forwarder.perform(db, system, body)
