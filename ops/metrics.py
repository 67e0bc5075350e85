"""Every Prometheus metric name, in one module (base units, `_total`, `_seconds`)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter("cchc_http_requests_total", "HTTP requests answered", ["route", "status"])
REQUEST_SECONDS = Histogram("cchc_http_request_duration_seconds", "HTTP request latency", ["route"],
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
SCORER_EVENTS = Counter("cchc_scorer_events_total", "Events archived and projected", ["consumer"])
SCORER_BATCH_SECONDS = Histogram("cchc_scorer_batch_duration_seconds", "Scorer batch latency",
                                 ["consumer"])
SCORER_POISON = Counter("cchc_scorer_poison_entries_total", "Entries parked in the dead-letter stream",
                        ["consumer"])
SCORER_ERRORS = Counter("cchc_scorer_errors_total", "Scorer batches that failed", ["consumer", "kind"])


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
