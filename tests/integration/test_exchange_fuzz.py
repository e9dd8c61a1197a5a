"""The registry API fuzzed: schemathesis cases from its OpenAPI operations, and changes to valid
registrations so that every validation is reached. Whatever arrives, the answer is a success or a
problem document, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from bauhinia.exchange.schemas import DataItemPublication, SystemRegistration
from bauhinia.settings import Settings
from tests.exchange_support import Exchange, adult, demo_exchange
from tests.integration.test_exchange_catalogue import MEMBER, bearer, item, registry, system
from tests.integration.test_oidc_fuzz import (
    EXAMPLES,
    FUZZ,
    assert_problem_answer,
    changed,
    generated_case,
    json_values,
    send_case,
    texts,
)

Headers = dict[str, str]
OPERATIONS = [
    ("/api/exchange/members", "GET", {200}),
    ("/api/exchange/members", "POST", {201}),
    ("/api/exchange/members/{member_id}", "GET", {200}),
    ("/api/exchange/members/{member_id}/disable", "POST", {200}),
    ("/api/exchange/systems", "GET", {200}),
    ("/api/exchange/systems", "POST", {201}),
    ("/api/exchange/systems/{system_id}", "GET", {200}),
    ("/api/exchange/systems/{system_id}/disable", "POST", {200}),
    ("/api/exchange/catalogue/items", "GET", {200}),
    ("/api/exchange/catalogue/items", "POST", {201}),
    ("/api/exchange/catalogue/items/{item_id}", "GET", {200}),
    ("/api/exchange/purposes", "GET", {200}),
    ("/api/exchange/purposes", "POST", {201}),
    ("/api/exchange/purposes/{code}", "GET", {200}),
]


@pytest.fixture
async def populated(app: FastAPI, client: httpx.AsyncClient) -> Headers:
    """An operator's headers, on a registry holding a provider, a consumer and an item."""
    headers = await bearer(app, client, "ops", ["bauhinia.operator"])
    await registry(app, client, headers)
    assert (await client.post("/api/exchange/catalogue/items", json=item(), headers=headers)).status_code == 201
    return headers


@pytest.mark.parametrize(("path", "method", "success"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
@settings(FUZZ, max_examples=EXAMPLES // 2)
@given(data=st.data(), authenticated=st.booleans())
async def test_every_operation_answers_every_generated_request_with_a_problem(
    app: FastAPI,
    client: httpx.AsyncClient,
    populated: Headers,
    path: str,
    method: str,
    success: set[int],
    data: Any,
    authenticated: bool,
) -> None:
    case = generated_case(app, data, path, method)
    auth = {"authorization": populated["Authorization"]} if authenticated else {}
    assert_problem_answer(await send_case(client, case, auth), success)


def changes_of(model: type[Any]) -> Any:
    fields = sorted(model.model_fields)
    return st.fixed_dictionaries(
        {
            "set": st.dictionaries(st.sampled_from(fields), st.one_of(json_values, texts), max_size=2),
            "drop": st.lists(st.sampled_from(fields), max_size=1),
        }
    )


@settings(FUZZ, max_examples=EXAMPLES // 2)
@given(system_changes=changes_of(SystemRegistration), item_changes=changes_of(DataItemPublication))
async def test_changed_registrations_are_stored_or_refused_field_by_field(
    app: FastAPI, client: httpx.AsyncClient, populated: Headers, system_changes: Any, item_changes: Any
) -> None:
    member = await client.post("/api/exchange/members", json={**MEMBER, "id": "HK/GOV/FUZZ"}, headers=populated)
    assert_problem_answer(member, {201})
    body = changed(system("HK/GOV/FUZZ/one", "immd-backend"), system_changes)
    assert_problem_answer(await client.post("/api/exchange/systems", json=body, headers=populated), {201})
    body = changed(item(), item_changes)
    assert_problem_answer(await client.post("/api/exchange/catalogue/items", json=body, headers=populated), {201})


CONSUMER_OPERATIONS = [
    ("/api/exchange/consents", "POST", {201}),
    ("/api/exchange/consents", "GET", {200}),
    ("/api/exchange/consents/{consent_id}", "GET", {200}),
    ("/api/exchange/data-requests", "POST", {200}),
]


@pytest.fixture
async def consumer_exchange(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> AsyncIterator[Exchange]:
    """The demo registry with a consent already approved, so generated ids sometimes name a real one."""
    exchange = await demo_exchange(app, client, Path(settings.data_dir))
    exchange.app.state.exchange.forwarder.timeout = 0.5
    await exchange.active_consent(await adult(app), mode="period", max_fetches=10_000)
    yield exchange
    await exchange.aclose()


@pytest.mark.parametrize(
    ("path", "method", "success"), CONSUMER_OPERATIONS, ids=[f"{m} {p}" for p, m, _ in CONSUMER_OPERATIONS]
)
@settings(FUZZ, max_examples=EXAMPLES // 2)
@given(data=st.data(), authenticated=st.booleans())
async def test_consent_and_data_request_operations_never_fail_with_a_server_error(
    app: FastAPI,
    consumer_exchange: Exchange,
    path: str,
    method: str,
    success: set[int],
    data: Any,
    authenticated: bool,
) -> None:
    case = generated_case(app, data, path, method)
    auth = {"authorization": consumer_exchange.consumer_headers["Authorization"]} if authenticated else {}
    assert_problem_answer(await send_case(consumer_exchange.http, case, auth), success)
