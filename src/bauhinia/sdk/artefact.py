"""The consent artefact (docs/exchange-protocol.md §3): the gateway-signed record of what a resident agreed to.
It names no resident and holds no status; consumers and providers read it the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bauhinia.sdk import claims as read
from bauhinia.sdk.jose import Invalid


@dataclass(frozen=True)
class ArtefactItem:
    id: str
    version: int
    provider: str  # the system that holds it


@dataclass(frozen=True)
class ConsentArtefact:
    id: str  # the consent id
    consumer: str
    purpose: str
    items: list[ArtefactItem]
    mode: str
    max_fetches: int
    data_life: int
    not_before: datetime
    expires_at: datetime
    jws: str

    def item_ids(self, provider: str | None = None) -> list[str]:
        """The consented items, or only those this provider holds."""
        return [i.id for i in self.items if provider is None or i.provider == provider]


def artefact_of(claims: dict[str, Any], jws: str) -> ConsentArtefact:
    """The artefact from its verified claims; ``Invalid`` if a claim is missing or malformed."""
    listed = claims.get("items")
    if not isinstance(listed, list) or not listed:
        raise Invalid("the artefact lists no items")
    items = [_item(entry) for entry in listed]
    if len({i.id for i in items}) != len(items):
        raise Invalid("the artefact lists an item twice")
    return ConsentArtefact(
        id=read.text(claims, "jti"),
        consumer=read.text(claims, "consumer"),
        purpose=read.text(claims, "purpose"),
        items=items,
        mode=read.text(claims, "mode"),
        max_fetches=read.integer(claims, "max_fetches"),
        data_life=read.integer(claims, "data_life"),
        not_before=read.instant(read.integer(claims, "nbf")),
        expires_at=read.instant(read.integer(claims, "exp")),
        jws=jws,
    )


def _item(entry: object) -> ArtefactItem:
    if not isinstance(entry, dict):
        raise Invalid("an artefact item is not an object")
    return ArtefactItem(read.text(entry, "id"), read.integer(entry, "version"), read.text(entry, "provider"))
