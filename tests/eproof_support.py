"""e-Proof's test bench: the demo registry and types, and the departments' clients calling the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from bauhinia.eproof.demo import register_demo_types
from bauhinia.exchange.demo import register_demo_members
from bauhinia.oidc.demo_clients import register_demo_clients
from bauhinia.settings import Settings
from tests.exchange_support import client_token
from tests.helpers import TestResident

LICENCE: dict[str, Any] = {
    "name_en": "TESTER, Ka Ming",
    "name_zh": "測試家明",
    "licence_number": "TKM000001",
    "classes": ["1"],
    "issued_on": "2024-01-02",
    "expires_on": "2034-01-01",
}


class Departments:
    def __init__(self, http: httpx.AsyncClient, data_dir: Path) -> None:
        self.http, self.data_dir = http, data_dir
        self.tokens: dict[str, str] = {}

    async def headers(self, client_id: str) -> dict[str, str]:
        if client_id not in self.tokens:
            self.tokens[client_id] = await client_token(self.http, self.data_dir, client_id)
        return {"accept": "application/json", "Authorization": f"Bearer {self.tokens[client_id]}"}

    async def issue(
        self, resident: TestResident, claims: dict[str, Any] | None = None, **overrides: Any
    ) -> httpx.Response:
        body = {
            "type": "td.driving-licence",
            "holder": {"identity_number": resident.id_number},
            "claims": claims or LICENCE,
        }
        return await self.http.post(
            "/api/eproof/credentials", json=body | overrides, headers=await self.headers("td-backend")
        )

    async def set_status(self, credential_id: str, status: str, client: str = "td-backend") -> httpx.Response:
        return await self.http.post(
            f"/api/eproof/credentials/{credential_id}/status",
            json={"status": status, "reason": "test"},
            headers=await self.headers(client),
        )


async def registered_departments(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> Departments:
    data_dir = Path(settings.data_dir)
    async with app.state.sessionmaker() as db:
        await register_demo_clients(db, app.state.oidc, data_dir)
        await register_demo_members(db, app.state.exchange, data_dir)
        await register_demo_types(db, app.state.eproof)
    return Departments(client, data_dir)
