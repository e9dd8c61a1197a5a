"""Structured JSON logs (structlog) and Prometheus metrics."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

SECRET_FIELDS = frozenset({"password", "secret", "token", "code", "csrf_token", "authorization", "cookie"})


def _redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Secrets never reach the logs, whatever a caller passes."""
    for key in list(event):
        if key.lower() in SECRET_FIELDS:
            event[key] = "[redacted]"
    return event


def configure_logging(level: str = "INFO") -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


class Metrics:
    """Request counts and latencies by route template (never by raw path: no unbounded labels)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bauhinia_http_requests", "HTTP requests served", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "bauhinia_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.security_events = Counter(
            "bauhinia_security_events", "Security events written to the audit log", ["event"], registry=self.registry
        )
        # The outbox (core.outbox), by message kind ("exchange.webhook", "oidc.backchannel_logout").
        self.outbox_delivered = Counter(
            "bauhinia_outbox_delivered", "Outbox messages acknowledged with a 2xx", ["kind"], registry=self.registry
        )
        self.outbox_failed_attempts = Counter(
            "bauhinia_outbox_failed_attempts",
            "Outbox delivery attempts that failed (timeout, network error, non-2xx answer)",
            ["kind"],
            registry=self.registry,
        )
        self.outbox_given_up = Counter(
            "bauhinia_outbox_given_up",
            "Outbox messages abandoned, undelivered, at their deadline",
            ["kind"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
