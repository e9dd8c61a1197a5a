"""Send browsers that typed http://127.0.0.1:PORT to the published http://localhost:PORT.

Browsers refuse an IP address as a WebAuthn relying party id, so a loopback deployment
(the demo) publishes ``localhost``; a visit by address is redirected there so that
passkeys and cookies work. Only safe methods are redirected; nothing else changes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "[::1]"})
# Host names of loopback URLs (as urlsplit gives them): browsers treat plain http to them as secure.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_https_or_loopback(url: str, *, allow_loopback: bool, allow_query: bool = True) -> bool:
    """An absolute https URL without a fragment, or (when allowed) a plain-http loopback one."""
    parts = urlsplit(url)
    if parts.fragment or (parts.query and not allow_query) or not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return allow_loopback and parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


class LoopbackRedirectMiddleware:
    def __init__(self, app: ASGIApp, *, public_url: str) -> None:
        self.app = app
        self.public = urlsplit(public_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if hostname in LOOPBACK_ADDRESSES:
                query = scope.get("query_string", b"").decode("latin-1")
                target = f"{self.public.scheme}://{self.public.netloc}{scope['path']}" + (f"?{query}" if query else "")
                await RedirectResponse(target, status_code=307)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def applies_to(public_url: str) -> bool:
    return urlsplit(public_url).hostname == "localhost"
