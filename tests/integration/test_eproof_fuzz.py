"""e-Proof's JSON operations fuzzed with schemathesis from the OpenAPI document: whatever arrives, the
answer is a success or a problem document, never a 500. Issuance and status changes are sent with the
issuing department's token, type registration with an operator's, so every validation is reached."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from bauhinia.settings import Settings
from tests.eproof_support import Departments, registered_departments
from tests.helpers import make_resident
from tests.integration.test_exchange_catalogue import bearer
from tests.integration.test_oidc_fuzz import EXAMPLES, FUZZ, assert_problem_answer, generated_case, send_case

OPERATIONS = [
    ("/api/eproof/credential-types", "GET", {200}, None),
    ("/api/eproof/credential-types", "POST", {201}, "operator"),
    ("/api/eproof/credentials", "POST", {201}, "issuer"),
    ("/api/eproof/credentials/{credential_id}/status", "POST", {200}, "issuer"),
    ("/eproof/log/cosignatures", "POST", {201}, None),
    ("/eproof/log/consistency", "GET", {200}, None),
]


@pytest.fixture
async def tokens(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    """The Transport back end's and an operator's Authorization headers, with one credential issued."""
    departments: Departments = await registered_departments(app, client, settings)
    assert (await departments.issue(await make_resident(app))).status_code == 201
    issuer = (await departments.headers("td-backend"))["Authorization"]
    operator = (await bearer(app, client, "ops", ["bauhinia.operator"]))["Authorization"]
    return {"issuer": issuer, "operator": operator}


@pytest.mark.parametrize(
    ("path", "method", "success", "role"), OPERATIONS, ids=[f"{m} {p}" for p, m, _, _ in OPERATIONS]
)
@settings(FUZZ, max_examples=EXAMPLES // 2)
@given(data=st.data(), authenticated=st.booleans())
async def test_every_eproof_operation_answers_every_generated_request_with_a_problem(
    app: FastAPI,
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    path: str,
    method: str,
    success: set[int],
    role: str | None,
    data: Any,
    authenticated: bool,
) -> None:
    case = generated_case(app, data, path, method)
    auth = {"authorization": tokens[role]} if authenticated and role else {}
    assert_problem_answer(await send_case(client, case, auth), success)
