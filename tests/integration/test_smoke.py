from __future__ import annotations

import httpx

from tests.helpers import make_resident, sign_in


async def test_start_page_renders(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "<title>" in response.text


async def test_resident_signs_in_with_password_and_code(app: object, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)  # type: ignore[arg-type]
    final = await sign_in(client, who)
    assert final.status_code == 303
    assert final.headers["location"] == "/account"
    account = await client.get("/account")
    assert account.status_code == 200
    assert who.email in account.text
