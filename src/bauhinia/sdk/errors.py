"""What the SDK raises: the gateway refused a call, or a signed object failed a check."""

from __future__ import annotations

from typing import Any


class GatewayProblem(Exception):
    """The gateway answered with an error (RFC 9457 problem details, or an OAuth error at the token endpoint)."""

    def __init__(self, status: int, title: str, detail: str = "", errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status, self.title, self.detail = status, title, detail
        self.errors: list[dict[str, Any]] = errors or []


class RequestRefused(Exception):
    """A forwarded data request a provider must not answer with data; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResponseRefused(Exception):
    """Something the gateway sent a consumer (receipt, artefact, webhook) failed a check; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
