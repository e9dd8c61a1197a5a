"""Serve an ASGI app over real HTTP on 127.0.0.1 from the test's own event loop.

The gateway calls providers with aiohttp over real sockets; tests that play providers (or let the
app's mounted demo departments answer) serve them here, on a free port, instead of a transport stub.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass
class InLoopServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    base_url: str

    async def aclose(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve_in_loop(app: ASGIApp) -> InLoopServer:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # pytest keeps Ctrl-C
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            await task  # raises why it could not start
        await asyncio.sleep(0.005)
    return InLoopServer(server, task, f"http://127.0.0.1:{port}")
