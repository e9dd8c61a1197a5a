"""OAuth 2.0 error responses (RFC 6749 §5.2, RFC 6750 §3, RFC 9449 §7.1) for the provider's endpoints."""

from __future__ import annotations

from fastapi.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An error the client reads: ``error`` is the registered code, ``description`` says which check failed."""

    def __init__(
        self, error: str, description: str, *, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers={**NO_STORE, **self.headers})


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_client(description: str, *, basic: bool = False) -> OAuthError:
    headers = {"WWW-Authenticate": 'Basic realm="bauhinia"'} if basic else {}
    return OAuthError("invalid_client", description, status=401, headers=headers)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_dpop_proof(description: str) -> OAuthError:
    return OAuthError("invalid_dpop_proof", description)


class ResourceError(Exception):
    """An error of a protected resource (userinfo): the status and a WWW-Authenticate challenge."""

    def __init__(self, error: str, description: str, *, status: int = 401, scheme: str = "Bearer") -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status, self.scheme = error, description, status, scheme
        self.extra_headers: dict[str, str] = {}

    def response(self) -> JSONResponse:
        if self.error == "invalid_request" and self.status == 401:
            # No credentials at all: RFC 6750 §3.1 says the challenge carries no error code. Both schemes offered.
            challenge = 'Bearer realm="bauhinia", DPoP algs="ES256 PS256 EdDSA Ed25519"'
        else:
            challenge = f'{self.scheme} error="{self.error}", error_description="{self.description}"'
            if self.scheme == "DPoP":
                challenge += ', algs="ES256 PS256 EdDSA Ed25519"'
        headers = {**NO_STORE, "WWW-Authenticate": challenge, **self.extra_headers}
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers=headers)
