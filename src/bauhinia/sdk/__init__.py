"""The client library a department uses to take part in the consented data exchange: as a consumer
(``ConsumerClient``) or a provider (``ProviderHelper``), over HTTP only. Imports no server code.
See docs/sdk.md and docs/exchange-protocol.md."""

from bauhinia.sdk.artefact import ArtefactItem, ConsentArtefact
from bauhinia.sdk.consumer import (
    Consent,
    ConsentEvent,
    ConsentRequest,
    ConsumerClient,
    DataResult,
    ProviderOutcome,
    ReleasedItem,
)
from bauhinia.sdk.credentials import SystemCredentials
from bauhinia.sdk.errors import GatewayProblem, RequestRefused, ResponseRefused
from bauhinia.sdk.gateway import GatewayClient
from bauhinia.sdk.jose import request_hash
from bauhinia.sdk.provider import ForwardedRequest, MemoryReplayCache, ProviderHelper, ReleasedValue, ReplayCache

__all__ = [
    "ArtefactItem",
    "Consent",
    "ConsentArtefact",
    "ConsentEvent",
    "ConsentRequest",
    "ConsumerClient",
    "DataResult",
    "ForwardedRequest",
    "GatewayClient",
    "GatewayProblem",
    "MemoryReplayCache",
    "ProviderHelper",
    "ProviderOutcome",
    "ReleasedItem",
    "ReleasedValue",
    "ReplayCache",
    "RequestRefused",
    "ResponseRefused",
    "SystemCredentials",
    "request_hash",
]
