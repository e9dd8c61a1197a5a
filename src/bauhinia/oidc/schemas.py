"""Client metadata as operators register it, validated before anything is stored."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bauhinia.core.database import StorableText
from bauhinia.core.hosts import is_https_or_loopback
from bauhinia.oidc.claims import ITEMS, STANDARD_SCOPES
from bauhinia.oidc.jose import public_key_set
from bauhinia.oidc.tokens import SIGNING_ALGS

CLIENT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,63}$"
# Scopes a back-end may be given for its own APIs: dotted names, no spaces or quotes.
API_SCOPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$")
ID_TOKEN_ALGS = SIGNING_ALGS  # the provider signs ID tokens with any of its algorithms


class AuthMethod(StrEnum):
    PRIVATE_KEY_JWT = "private_key_jwt"
    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 (a method name)
    NONE = "none"


class GrantType(StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 (a grant type)
    CLIENT_CREDENTIALS = "client_credentials"


class SubjectType(StrEnum):
    PAIRWISE = "pairwise"
    PUBLIC = "public"


class LocalisedText(BaseModel):
    """A text in the platform's three languages (English is the fallback)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    en: StorableText = Field(min_length=1, max_length=200)
    zh_hant: StorableText = Field(default="", alias="zh-Hant", max_length=200)
    zh_hans: StorableText = Field(default="", alias="zh-Hans", max_length=200)

    def in_language(self, language: str) -> str:
        chosen = {"zh-Hant": self.zh_hant, "zh-Hans": self.zh_hans}.get(language, "")
        return chosen or self.en


class ClientMetadata(BaseModel):
    """What an operator registers for a client (a subset of RFC 7591 names, plus platform policy)."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(pattern=CLIENT_ID_PATTERN)
    client_name: LocalisedText
    # Why the service asks for residents' details, shown on the consent page.
    purpose: LocalisedText | None = None
    department: LocalisedText | None = Field(default=None, description="the department running the service")
    grant_types: list[GrantType] = Field(default_factory=lambda: [GrantType.AUTHORIZATION_CODE], min_length=1)
    token_endpoint_auth_method: AuthMethod = AuthMethod.PRIVATE_KEY_JWT
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    backchannel_logout_uri: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid"], max_length=50)
    items: list[str] = Field(default_factory=list, description="e-ME items the client may ask for")
    sector_identifier: str | None = Field(default=None, max_length=253, pattern=r"^[a-z0-9.-]+$")
    subject_type: SubjectType = SubjectType.PAIRWISE
    required_acr: str | None = Field(default=None, pattern=r"^(basic|verified)$")
    fapi: bool = Field(default=False, description="FAPI 2.0: PAR, private_key_jwt and DPoP required")
    require_pushed_authorization_requests: bool = False
    dpop_bound_access_tokens: bool = False
    id_token_signed_response_alg: str = "ES256"  # noqa: S105 (an algorithm name)
    # Loopback http redirect URIs: only for demo and development installations.
    allow_loopback_http: bool = False

    @field_validator("department", mode="before")
    @classmethod
    def _department_in_english_only(cls, value: object) -> object:
        """A plain string is the English name (the other languages fall back to it)."""
        return {"en": value} if isinstance(value, str) and value else (None if value == "" else value)

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            if scope not in STANDARD_SCOPES and not API_SCOPE_PATTERN.match(scope):
                raise ValueError(f"unknown scope {scope!r}: use a standard OpenID scope or a dotted API scope")
        return sorted(set(scopes))

    @field_validator("items")
    @classmethod
    def _known_items(cls, items: list[str]) -> list[str]:
        unknown = sorted(set(items) - set(ITEMS))
        if unknown:
            raise ValueError(f"unknown items {unknown}; known: {sorted(ITEMS)}")
        return sorted(set(items))

    @field_validator("id_token_signed_response_alg")
    @classmethod
    def _id_token_alg(cls, alg: str) -> str:
        if alg not in ID_TOKEN_ALGS:
            raise ValueError(f"id_token_signed_response_alg must be one of {list(ID_TOKEN_ALGS)}")
        return alg

    @field_validator("jwks")
    @classmethod
    def _public_jwks(cls, jwks: dict[str, Any] | None) -> dict[str, Any] | None:
        if jwks is None:
            return None
        return {"keys": [key.as_dict(private=False) for key in public_key_set(jwks).keys]}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_uris()
        self._check_authentication()
        if self.fapi:
            self.require_pushed_authorization_requests = True
            self.dpop_bound_access_tokens = True
        hosts = {urlsplit(u).hostname for u in self.redirect_uris}
        if self.subject_type is SubjectType.PAIRWISE and not self.sector_identifier and len(hosts) > 1:
            raise ValueError("redirect_uris on several hosts need a sector_identifier for pairwise subjects")
        return self

    def _check_uris(self) -> None:
        uris = [*self.redirect_uris, *self.post_logout_redirect_uris]
        if self.backchannel_logout_uri:
            uris.append(self.backchannel_logout_uri)
        for uri in uris:
            if not is_https_or_loopback(uri, allow_loopback=self.allow_loopback_http):
                raise ValueError(f"{uri!r} must be an absolute https URI without a fragment")
        if self.jwks_uri and not is_https_or_loopback(self.jwks_uri, allow_loopback=self.allow_loopback_http):
            raise ValueError("jwks_uri must be an https URI")
        if GrantType.AUTHORIZATION_CODE in self.grant_types and not self.redirect_uris:
            raise ValueError("the authorization_code grant needs at least one redirect_uri")
        if GrantType.AUTHORIZATION_CODE in self.grant_types and "openid" not in self.scopes:
            raise ValueError("a client signing residents in needs the openid scope")

    def _check_authentication(self) -> None:
        method = self.token_endpoint_auth_method
        if method is AuthMethod.PRIVATE_KEY_JWT and not (self.jwks or self.jwks_uri):
            raise ValueError("private_key_jwt needs jwks or jwks_uri")
        if self.jwks and self.jwks_uri:
            raise ValueError("give jwks or jwks_uri, not both")
        public_grants = {GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN}
        if method is AuthMethod.NONE and not set(self.grant_types) <= public_grants:
            raise ValueError("a public client (auth method none) may use only authorization_code and refresh")
        if self.fapi and method is not AuthMethod.PRIVATE_KEY_JWT:
            raise ValueError("the FAPI 2.0 profile requires private_key_jwt")


class RegisteredClient(BaseModel):
    """A client as the operator API shows it: metadata, never the secret."""

    client_id: str
    metadata: ClientMetadata
    disabled: bool
    created_at: str
