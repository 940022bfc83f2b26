"""Prometheus metrics: request counts and latencies, uploads and matches by outcome.

``/metrics`` answers without authentication, so nothing here may be derived
from the data: no row counts (two scrapes around an upload gave its exact row
count, a whale's events included), no persons, no epsilon spent per party.
Only how the service behaves: requests, latencies, outcomes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "cleanroom_http_requests_total",
    "HTTP requests by route and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "cleanroom_http_request_seconds",
    "HTTP request latency by route.",
    ["route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
UPLOADS = Counter(
    "cleanroom_uploads_total", "Bundle uploads by outcome.", ["outcome"], registry=REGISTRY
)
MATCHES = Counter(
    "cleanroom_matches_total", "Match runs by outcome.", ["outcome"], registry=REGISTRY
)
AUTH_DENIED = Counter(
    "cleanroom_auth_denied_total",
    "Requests refused for authentication or role.",
    ["reason"],
    registry=REGISTRY,
)
