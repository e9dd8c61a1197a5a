"""What operators register (credential types) and what issuers send (issuance, status changes),
validated before anything is signed or stored."""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bauhinia.core.database import StorableText
from bauhinia.exchange.service import ITEM_ID_PATTERN, MEMBER_ID_PATTERN, checked_json_schema
from bauhinia.oidc.service import LocalisedText

TYPE_ID_PATTERN = ITEM_ID_PATTERN
CLAIM_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# Claims the SD-JWT VC profile and this platform set themselves; a type's own claims may not use them.
RESERVED_CLAIMS = {"iss", "sub", "iat", "nbf", "exp", "cnf", "vct", "status", "jti", "_sd", "_sd_alg", "id"}
MAX_VALIDITY_DAYS = 10 * 366


class CredentialStatus(IntEnum):
    """Token Status List values (2 bits per credential)."""

    VALID = 0
    REVOKED = 1  # the status list calls it INVALID
    SUSPENDED = 2


class StatusName(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    SUSPENDED = "suspended"


STATUS_BY_NAME = {
    StatusName.VALID: CredentialStatus.VALID,
    StatusName.REVOKED: CredentialStatus.REVOKED,
    StatusName.SUSPENDED: CredentialStatus.SUSPENDED,
}
NAME_BY_STATUS = {value: name for name, value in STATUS_BY_NAME.items()}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CredentialTypeRegistration(Strict):
    """A kind of licence or certificate, and what its credentials may say."""

    id: str = Field(pattern=TYPE_ID_PATTERN, max_length=100, examples=["td.driving-licence"])
    issuer: str = Field(pattern=MEMBER_ID_PATTERN, max_length=98, examples=["HK/GOV/TD"])
    name: LocalisedText
    claims_schema: dict[str, Any] = Field(
        description="a JSON Schema of type object: every claim a credential of this type carries"
    )
    claim_titles: dict[str, LocalisedText] = Field(description="each claim's title, shown to holders and verifiers")
    selective: list[str] = Field(default_factory=list, description="claims a holder may leave out when presenting")
    printed: list[str] = Field(default_factory=list, description="claims carried in the printable QR form")
    validity_days: int = Field(ge=1, le=MAX_VALIDITY_DAYS)

    @field_validator("claims_schema")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        checked = checked_json_schema(schema)
        properties = checked.get("properties")
        if checked.get("type") != "object" or not isinstance(properties, dict) or not properties:
            raise ValueError('must be a JSON Schema with "type": "object" and its "properties"')
        for name in properties:
            if name in RESERVED_CLAIMS or not _claim_name(name):
                raise ValueError(f"{name!r} cannot be a claim name (lower case, digits, _; not a reserved claim)")
        return checked

    @model_validator(mode="after")
    def _claims_known(self) -> Self:
        properties = set(self.claims_schema["properties"])
        for field, names in (("selective", self.selective), ("printed", self.printed)):
            unknown = sorted(set(names) - properties)
            if unknown:
                raise ValueError(f"{field} names claims the schema does not have: {', '.join(unknown)}")
        untitled = sorted(properties - set(self.claim_titles))
        extra = sorted(set(self.claim_titles) - properties)
        if untitled or extra:
            raise ValueError(f"claim_titles must title exactly the schema's claims (missing {untitled}, extra {extra})")
        return self


def _claim_name(name: str) -> bool:
    return re.fullmatch(CLAIM_NAME_PATTERN, name) is not None


class RegisteredCredentialType(CredentialTypeRegistration):
    created_at: str
    disabled: bool


class Holder(Strict):
    """Who the credential is for: a resident with an account, named by identity card number."""

    identity_number: StorableText = Field(min_length=8, max_length=12, examples=["A123456(3)"])


class IssuanceRequest(Strict):
    type: str = Field(pattern=TYPE_ID_PATTERN, max_length=100)
    holder: Holder
    claims: dict[str, Any] = Field(description="the credential's claims, valid against its type's schema")


class IssuedCredential(BaseModel):
    id: str
    type: str
    issuer: str
    status: StatusName
    issued_at: str
    expires_at: str
    log_index: int
    printed: str = Field(description="the printable QR form's text (BH1:…)")
    proof: str = Field(description="the log inclusion proof bundle, for offline verification")


class StatusChange(Strict):
    status: StatusName
    reason: StorableText = Field(default="", max_length=500)
