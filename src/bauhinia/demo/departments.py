"""The demo departments as one ASGI app, mounted by the platform at ``/demo`` in demo and dev modes.

Three providers (Immigration, Inland Revenue, Transport) answer the gateway's data requests, and the
Housing Department's public-rental application site asks residents for consent and fetches their
records. Like real departments they speak only HTTP to the gateway, through ``bauhinia.sdk``, with the
credentials ``bauhinia demo`` wrote to ``<data-dir>/members/``; nothing here imports server code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from bauhinia.demo import housing, providers
from bauhinia.demo.web import NotSetUp, departments_of, is_machine_path, problem
from bauhinia.sdk import ConsumerClient, ProviderHelper, SystemCredentials

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The sites' pages: (path prefix, name in the header, home page), under the mount point.
SITES = [("/housing", "Housing Department (demo)", "/housing/apply")]
GATEWAY_TIMEOUT = 15.0  # a data request waits up to the gateway's provider timeout (5 s by default)


class Departments(Starlette):
    """The demo departments' app. Credentials and records are read on first use, so the platform can
    start (and mount this) before ``bauhinia demo`` has registered the departments."""

    def __init__(self, data_dir: Path, gateway: str, *, http: httpx.AsyncClient | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.gateway = gateway.rstrip("/")
        # One client for every call to the gateway; a test may set its own before the first call.
        self.http = http
        self._owns_http = http is None
        self._lock = asyncio.Lock()
        self._exit = AsyncExitStack()
        self._providers: dict[str, ProviderHelper] = {}
        self._consumer: ConsumerClient | None = None
        self._records: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
        self.pages = Environment(
            loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, auto_reload=False
        )
        self.housing = housing.HousingOffice(self)
        routes: list[BaseRoute] = [Route("/", index, methods=["GET"]), *providers.routes(), *self.housing.routes()]
        super().__init__(routes=routes, exception_handlers={HTTPException: http_error})

    # --- what the departments share -------------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=GATEWAY_TIMEOUT, follow_redirects=False)
            self._owns_http = True
        return self.http

    def credentials(self, system_id: str) -> SystemCredentials:
        """A system's credentials file, ``<data-dir>/members/<CODE>-<subsystem>.json``."""
        _, _, code, subsystem = system_id.split("/")
        path = self.data_dir / "members" / f"{code}-{subsystem}.json"
        if not path.is_file():
            raise NotSetUp(f"The credentials of {system_id} ({path.name}) are not there yet.")
        try:
            return SystemCredentials.load(path)
        except Exception as exc:  # any reason at all: the file is not what `bauhinia demo` writes
            raise NotSetUp(f"The credentials of {system_id} ({path.name}) cannot be read.") from exc

    async def provider(self, system_id: str) -> ProviderHelper:
        """One helper per provider for the app's life: it remembers the requests it saw (replays)."""
        async with self._lock:
            helper = self._providers.get(system_id)
            if helper is None:
                credentials = await asyncio.to_thread(self.credentials, system_id)
                helper = ProviderHelper(credentials, http=self.client())
                self._providers[system_id] = await self._exit.enter_async_context(helper)
            return helper

    async def consumer(self, system_id: str) -> ConsumerClient:
        async with self._lock:
            if self._consumer is None:
                credentials = await asyncio.to_thread(self.credentials, system_id)
                client = ConsumerClient(credentials, http=self.client())
                self._consumer = await self._exit.enter_async_context(client)
            return self._consumer

    async def records(self, member_code: str, system_id: str) -> Mapping[str, Any]:
        """A provider's records by its subjects, ``<data-dir>/departments/<CODE>.json`` (read again when
        ``bauhinia demo`` rewrites it)."""
        cached = self._records.get(member_code)
        if cached is not None:
            # A local file's stat takes microseconds: done here, unchanged records cost no trip to a
            # thread (measured: the trip was 13.6 % of the providers' CPU, bench/exchange.py).
            with contextlib.suppress(OSError):
                if _version(self._records_path(member_code)) == cached[0]:
                    return cached[1]
        return await asyncio.to_thread(self._read_records, member_code, system_id)

    def _records_path(self, member_code: str) -> Path:
        return self.data_dir / "departments" / f"{member_code}.json"

    def _read_records(self, member_code: str, system_id: str) -> Mapping[str, Any]:
        path = self._records_path(member_code)
        try:
            version = _version(path)
            cached = self._records.get(member_code)
            if cached is not None and cached[0] == version:
                return cached[1]
            content = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise NotSetUp(f"The records of {system_id} ({path.name}) are not there yet.") from exc
        except (OSError, ValueError) as exc:
            raise NotSetUp(f"The records of {system_id} ({path.name}) cannot be read: {exc}") from exc
        records = content.get("records") if isinstance(content, dict) else None
        if not isinstance(records, dict) or content.get("system_id") != system_id:
            raise NotSetUp(f"{path.name} does not hold the records of {system_id}.")
        self._records[member_code] = (version, records)
        return records

    async def aclose(self) -> None:
        await self._exit.aclose()
        self._consumer = None
        if self.http is not None and self._owns_http:
            await self.http.aclose()

    # --- pages ----------------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        path = request.url.path.removeprefix(root)
        site = next((s for s in SITES if path.startswith(s[0])), ("/", "Bauhinia demo", "/"))
        context.setdefault("department", site[1])
        context.setdefault("home", site[2])
        page = self.pages.get_template(template).render(root=root, **context)
        return HTMLResponse(page, status_code=status_code, headers={"cache-control": "no-store"})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {404: "Page not found", 405: "Method not allowed"}
    title = titles.get(exc.status_code, "Something went wrong")
    accept = request.headers.get("accept", "")
    if is_machine_path(request.url.path) or ("json" in accept and "text/html" not in accept):
        return problem(exc.status_code, title, str(exc.detail), exc.headers)
    message = "Check the address and try again." if exc.status_code == 404 else str(exc.detail)
    response = departments_of(request).render(request, "error.html", exc.status_code, heading=title, message=message)
    response.headers.update(exc.headers or {})
    return response


async def index(request: Request) -> Response:
    return departments_of(request).render(request, "index.html")


def create_departments(data_dir: Path, gateway: str, *, http: httpx.AsyncClient | None = None) -> Departments:
    """The demo departments, calling the gateway at ``gateway`` (its public URL) over HTTP."""
    return Departments(data_dir, gateway, http=http)


def _version(path: Path) -> tuple[int, int]:
    """What changes when a file is rewritten."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
