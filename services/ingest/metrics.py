"""The connectors' Prometheus metrics (contract D), declared once for every connector.

Used by `dozor ingest vk-callback`, `vk-poll` and `telegram`. Each process builds one
`IngestMetrics` on a registry (a fresh one per test, `prometheus_client.REGISTRY` or a
process-own one in production) and serves it with `serve_metrics` on
DOZOR_METRICS_HOST:DOZOR_INGEST_METRICS_PORT, apart from the worker's port.

Label values used so far (keep them few: they are label values, not free text):
- connector: ``vk-callback``, ``vk-poll``, ``telegram``
- outcome (requests): ``ok``, ``confirmation``, ``duplicate``, ``forbidden``, ``unknown_page``,
  ``too_large``, ``invalid_json``, ``kafka_unavailable`` (callback); ``ok``, ``api_error``,
  ``http_error`` (API calls of pollers)
- platform: ``vk``, ``telegram``; type: the VK event type or the Telegram update type
- code: the platform's error code as a string (VK ``error_code``, Telegram ``error_code``);
  for Telegram also ``not_admin`` (bot not an admin of a channel), ``not_member`` (bot not in
  a discussion group), ``privacy_mode`` (plain group member with privacy mode on), from the
  per-page health check
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class IngestMetrics:
    """Connector metrics on one registry; the names are contract D of the team plan."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "dozor_ingest_requests",
            "Callback requests received / platform API calls made, by outcome.",
            ["connector", "outcome"], registry=r,
        )
        self.events = Counter(
            "dozor_ingest_events",
            "Raw payloads produced to Kafka (acknowledged), by platform and event/update type.",
            ["platform", "type"], registry=r,
        )
        self.api_errors = Counter(
            "dozor_ingest_api_errors",
            "Platform API errors by connector and error code.",
            ["connector", "code"], registry=r,
        )
        self.last_success = Gauge(
            "dozor_ingest_last_success_timestamp_seconds",
            "Last time a page was read (or its callback accepted) successfully, unix seconds.",
            ["page_id"], registry=r,
        )
        self.last_failure = Gauge(
            "dozor_ingest_last_failure_timestamp_seconds",
            "Last time reading a page failed, unix seconds "
            "(alert DozorConnectorFailing: newer than the last success for 1 h).",
            ["page_id"], registry=r,
        )

    def request(self, connector: str, outcome: str) -> None:
        """Count one callback request or one platform API call."""
        self.requests.labels(connector=connector, outcome=outcome).inc()

    def produced(self, platform: str, type_: str, count: int = 1) -> None:
        """Count payloads Kafka acknowledged."""
        self.events.labels(platform=platform, type=type_).inc(count)

    def api_error(self, connector: str, code: int | str) -> None:
        """Count one platform API error."""
        self.api_errors.labels(connector=connector, code=str(code)).inc()

    def page_ok(self, page_id: str, at: float | None = None) -> None:
        """A page was read successfully now (or at `at`)."""
        self.last_success.labels(page_id=page_id).set(time.time() if at is None else at)

    def page_failed(self, page_id: str, at: float | None = None) -> None:
        """Reading a page failed now (or at `at`)."""
        self.last_failure.labels(page_id=page_id).set(time.time() if at is None else at)


def serve_metrics(metrics: IngestMetrics, host: str, port: int):
    """Serve /metrics of `metrics` on host:port in a background thread; returns the server.

    The return value is prometheus_client's (server, thread) pair; `server.server_port`
    is the bound port (useful with port 0), `server.shutdown()` stops it.
    """
    return start_http_server(port, addr=host, registry=metrics.registry)
