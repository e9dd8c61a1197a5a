"""What operators register in the gateway — members, their systems, data items, purposes — validated
before anything is stored. Identifiers follow X-Road: ``instance/memberClass/memberCode[/subsystem]``."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, Self

from jsonschema import SchemaError
from jsonschema.validators import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bauhinia.core.database import StorableText
from bauhinia.core.hosts import is_https_or_loopback
from bauhinia.oidc.service import LocalisedText, public_key_set

ID_PART = r"[A-Za-z0-9-]{1,32}"
MEMBER_ID_PATTERN = rf"^{ID_PART}/{ID_PART}/{ID_PART}$"
SYSTEM_ID_PATTERN = rf"^{ID_PART}/{ID_PART}/{ID_PART}/{ID_PART}$"
ITEM_ID_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9.-]+$"
PURPOSE_CODE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9.-]+$"
CLIENT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,63}$"
MAX_SCHEMA_CHARS = 64 * 1024
MAX_SCHEMA_DEPTH = 32


class SystemRole(StrEnum):
    PROVIDER = "provider"
    CONSUMER = "consumer"


class Sensitivity(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    RESTRICTED = "restricted"
    CONFIDENTIAL = "confidential"


def member_of(system_id: str) -> str:
    """The member id a system id starts with."""
    return system_id.rsplit("/", 1)[0]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MemberRegistration(Strict):
    """A department (later also a regulated company) taking part in the exchange."""

    id: str = Field(pattern=MEMBER_ID_PATTERN, max_length=98, examples=["HK/GOV/IMMD"])
    name: LocalisedText


def public_p256_jwks(jwks: dict[str, Any], use: str) -> dict[str, Any]:
    """The set, normalised, if it holds only public EC P-256 keys with a kid and this ``use``."""
    normalised = []
    for key in public_key_set(jwks).keys:
        if key.key_type != "EC" or key.as_dict(private=False).get("crv") != "P-256":
            raise ValueError("only EC P-256 keys are accepted")
        if key.get("use") != use:
            raise ValueError(f'every key must say "use": "{use}"')
        if not key.kid:
            raise ValueError("every key needs a kid")
        normalised.append(key.as_dict(private=False))
    return {"keys": normalised}


class SystemRegistration(Strict):
    """A member's subsystem: a data provider, a data consumer, or both."""

    id: str = Field(pattern=SYSTEM_ID_PATTERN, max_length=131, examples=["HK/GOV/IMMD/residency"])
    roles: list[SystemRole] = Field(min_length=1, max_length=2)
    signing_jwks: dict[str, Any] = Field(description="public EC P-256 keys with use sig")
    encryption_jwks: dict[str, Any] = Field(description="public EC P-256 keys with use enc (ECDH-ES)")
    data_endpoint: str | None = Field(default=None, max_length=500, description="a provider's base URL")
    webhook_url: str | None = Field(default=None, max_length=500, description="where a consumer is notified")
    client_id: str = Field(pattern=CLIENT_ID_PATTERN, description="its OpenID client (client_credentials)")
    redirect_uris: list[str] = Field(
        default_factory=list, max_length=20, description="a consumer's pages residents return to after consenting"
    )
    # Loopback http endpoints: only for demo and development installations.
    allow_loopback_http: bool = False

    @field_validator("roles")
    @classmethod
    def _distinct_roles(cls, roles: list[SystemRole]) -> list[SystemRole]:
        return sorted(set(roles))

    @field_validator("signing_jwks")
    @classmethod
    def _signing_keys(cls, jwks: dict[str, Any]) -> dict[str, Any]:
        return public_p256_jwks(jwks, "sig")

    @field_validator("encryption_jwks")
    @classmethod
    def _encryption_keys(cls, jwks: dict[str, Any]) -> dict[str, Any]:
        return public_p256_jwks(jwks, "enc")

    @model_validator(mode="after")
    def _endpoints_match_roles(self) -> Self:
        for role, name, url in (
            (SystemRole.PROVIDER, "data_endpoint", self.data_endpoint),
            (SystemRole.CONSUMER, "webhook_url", self.webhook_url),
        ):
            if role in self.roles and url is None:
                raise ValueError(f"a {role.value} needs a {name}")
            if role not in self.roles and url is not None:
                raise ValueError(f"{name} is only for a {role.value}")
            if url is not None and not is_https_or_loopback(
                url, allow_loopback=self.allow_loopback_http, allow_query=False
            ):
                raise ValueError(f"{name} must be an absolute https URL without query or fragment")
        if self.redirect_uris and SystemRole.CONSUMER not in self.roles:
            raise ValueError("redirect_uris are only for a consumer")
        for uri in self.redirect_uris:
            if not is_https_or_loopback(uri, allow_loopback=self.allow_loopback_http, allow_query=False):
                raise ValueError("each redirect URI must be an absolute https URL without query or fragment")
        self.redirect_uris = sorted(set(self.redirect_uris))
        return self


def _meta_schema_uri(validator: type[Any]) -> str:
    meta: dict[str, Any] = validator.META_SCHEMA
    return str(meta.get("$id") or meta.get("id")).rstrip("#")


# The drafts a value schema may name in $schema; an unknown one is refused rather than guessed.
DRAFTS: dict[str, type[Any]] = {
    _meta_schema_uri(v): v
    for v in (Draft4Validator, Draft6Validator, Draft7Validator, Draft201909Validator, Draft202012Validator)
}


def _depth(value: object) -> int:
    """How deeply containers nest (iteratively: a hostile schema must not exhaust the stack)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, level = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        deepest = max(deepest, level)
        if level <= MAX_SCHEMA_DEPTH:
            pending.extend((child, level + 1) for child in children)
    return deepest


def checked_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema if it is a valid JSON Schema (draft 2020-12 unless its $schema names another draft)."""
    if _depth(schema) > MAX_SCHEMA_DEPTH or len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise ValueError("the schema is too large or too deeply nested")
    named = schema.get("$schema", Draft202012Validator.META_SCHEMA["$id"])
    validator = DRAFTS.get(named.rstrip("#")) if isinstance(named, str) else None
    if validator is None:
        raise ValueError(f"$schema must name one of the drafts {sorted(DRAFTS)}")
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
    return schema


class DataItemPublication(Strict):
    """One version of a data item in the catalogue: what it is, who holds it, and why it may be shared."""

    id: str = Field(pattern=ITEM_ID_PATTERN, max_length=100, examples=["immd.residential-address"])
    title: LocalisedText
    value_schema: dict[str, Any] = Field(description="the JSON Schema of the value the provider releases")
    provider_system_id: str = Field(pattern=SYSTEM_ID_PATTERN, max_length=131)
    sensitivity: Sensitivity
    legal_basis: StorableText = Field(min_length=1, max_length=2000, description="the law under which it may be shared")
    purpose_limitation: StorableText = Field(default="", max_length=2000, description="what it may not be used for")

    @field_validator("value_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        return checked_json_schema(schema)


class PurposeRegistration(Strict):
    """Why a consumer may ask for data: shown to residents when they are asked to consent."""

    code: str = Field(pattern=PURPOSE_CODE_PATTERN, max_length=100, examples=["housing.public-rental-application"])
    description: LocalisedText
    consumer_system_ids: list[str] = Field(min_length=1, max_length=100)

    @field_validator("consumer_system_ids")
    @classmethod
    def _system_ids(cls, ids: list[str]) -> list[str]:
        for system_id in ids:
            if not re.fullmatch(SYSTEM_ID_PATTERN, system_id):
                raise ValueError(f"{system_id!r} is not a system id (instance/memberClass/memberCode/subsystem)")
        return sorted(set(ids))


class RegisteredMember(MemberRegistration):
    member_class: str
    created_at: str
    disabled: bool


class RegisteredSystem(SystemRegistration):
    member_id: str
    created_at: str
    disabled: bool


class PublishedDataItem(DataItemPublication):
    version: int
    published_at: str
    superseded: bool


class RegisteredPurpose(PurposeRegistration):
    created_at: str


# --- consents and data requests ---------------------------------------------------------------------

CONSENT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
STATE_PATTERN = r"^[\x21-\x7e]{1,200}$"
DAY = 86_400
MAX_PERIOD = 366 * DAY
MAX_DATA_LIFE = 3653 * DAY


class ConsentStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


FINAL_STATUSES = frozenset({ConsentStatus.REVOKED, ConsentStatus.EXPIRED, ConsentStatus.REJECTED})


class ConsentMode(StrEnum):
    ONCE = "once"
    PERIOD = "period"


class RequestedItem(Strict):
    id: str = Field(pattern=ITEM_ID_PATTERN, max_length=100)
    optional: bool = False


class ConsentRequestBody(Strict):
    """What a consumer asks a resident to agree to (docs/exchange-protocol.md §2)."""

    purpose: str = Field(pattern=PURPOSE_CODE_PATTERN, max_length=100)
    items: list[RequestedItem] = Field(min_length=1, max_length=20)
    mode: ConsentMode = ConsentMode.ONCE
    valid_for: int = Field(default=3600, ge=60, le=MAX_PERIOD, description="seconds usable after approval")
    max_fetches: int = Field(default=1, ge=1, le=10_000)
    data_life: int = Field(default=0, ge=0, le=MAX_DATA_LIFE, description="seconds the consumer may keep the data")
    redirect_uri: str = Field(max_length=500)
    state: str = Field(pattern=STATE_PATTERN)

    @field_validator("items")
    @classmethod
    def _distinct(cls, items: list[RequestedItem]) -> list[RequestedItem]:
        if len({i.id for i in items}) != len(items):
            raise ValueError("each item may be asked for once")
        if all(i.optional for i in items):
            raise ValueError("at least one item must be required")
        return items

    @model_validator(mode="after")
    def _mode_limits(self) -> Self:
        if self.mode is ConsentMode.ONCE and self.max_fetches != 1:
            raise ValueError("a one-time consent allows exactly one fetch (max_fetches 1)")
        if self.mode is ConsentMode.ONCE and self.valid_for > DAY:
            raise ValueError("a one-time consent is valid for one day at most")
        return self


class ConsentRequested(BaseModel):
    id: str
    status: ConsentStatus
    review_url: str
    expires_at: str


class ConsentDetails(BaseModel):
    """A consent as its consumer sees it."""

    id: str
    status: ConsentStatus
    purpose: str
    mode: ConsentMode
    items: list[str] = Field(description="the consented items (the requested ones while pending)")
    valid_until: str | None
    max_fetches: int
    fetches: int
    data_life: int
    artefact: str | None = Field(description="the gateway-signed consent artefact (JWS), once approved")
    created_at: str
    updated_at: str


class DataRequestBody(Strict):
    consent_id: str = Field(pattern=CONSENT_ID_PATTERN)
    items: list[str] | None = Field(default=None, min_length=1, max_length=20)


class ProviderStatus(StrEnum):
    DELIVERED = "delivered"
    DENIED = "denied"
    TIMEOUT = "timeout"
    ERROR = "error"


class ProviderResult(BaseModel):
    provider: str
    items: list[str]
    status: ProviderStatus
    response: str | None = Field(default=None, description="the provider's signed response (JWS)")
    detail: str | None = None


class DataRequestAnswer(BaseModel):
    id: str
    consent_id: str
    created_at: str
    results: list[ProviderResult]
    receipt: str = Field(description="the gateway-signed exchange record (JWS)")
