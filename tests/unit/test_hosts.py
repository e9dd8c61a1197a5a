"""A visit to the demo by loopback address is sent to the published localhost origin (passkeys need a name)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bauhinia.core.hosts import LoopbackRedirectMiddleware, applies_to


def inner_app() -> Starlette:
    async def ok(_: object) -> PlainTextResponse:
        return PlainTextResponse("served")

    return Starlette(routes=[Route("/{path:path}", ok, methods=["GET", "POST"])])


async def fetch(method: str, url: str) -> httpx.Response:
    app = LoopbackRedirectMiddleware(inner_app(), public_url="http://localhost:8000")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        return await client.request(method, url)


async def test_an_address_visit_is_redirected_with_path_and_query() -> None:
    response = await fetch("GET", "http://127.0.0.1:8000/signin?next=%2Faccount")
    assert response.status_code == 307
    assert response.headers["location"] == "http://localhost:8000/signin?next=%2Faccount"


async def test_the_published_name_and_unsafe_methods_are_served() -> None:
    assert (await fetch("GET", "http://localhost:8000/")).text == "served"
    assert (await fetch("POST", "http://127.0.0.1:8000/signin")).text == "served"


def test_only_a_localhost_deployment_redirects() -> None:
    assert applies_to("http://localhost:8000")
    assert not applies_to("https://id.example.gov.hk")
