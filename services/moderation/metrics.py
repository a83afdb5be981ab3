"""Prometheus metrics of the moderation service (contract D), declared once here.

The queue-depth gauges are computed from the store when /metrics is scraped (one GROUP BY
and one MIN over indexed columns), cached for a few seconds so that several scrapers or a
refreshing dashboard cost one query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

# flag → first action / resolution: minutes to days (working hours, weekends)
DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600,
                    2 * 86400, 3 * 86400, 7 * 86400)


class ModerationMetrics:
    """Counters and histograms of the moderation service, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.first_action_seconds = Histogram(
            "dozor_moderation_first_action_seconds",
            "Seconds from flag to the first moderator action (take or resolve)",
            buckets=DURATION_BUCKETS, registry=registry,
        )
        self.resolution_seconds = Histogram(
            "dozor_moderation_resolution_seconds",
            "Seconds from flag to resolution by a moderator (answered, hidden, dismissed)",
            buckets=DURATION_BUCKETS, registry=registry,
        )
        self.actions = Counter(
            "dozor_moderation_actions",
            "Moderator actions by kind: take, release, resolve, model_error",
            ["action"], registry=registry,
        )
        self.flags_ingested = Counter(
            "dozor_moderation_flags_ingested",
            "Flags stored as new queue items (a redelivered flag is not counted again)",
            registry=registry,
        )
        self.updates_applied = Counter(
            "dozor_moderation_updates_applied",
            "Flag updates applied to items by kind: answered, edited, deleted, restored, spike_ended",
            ["kind"], registry=registry,
        )
        self.invalid_records = Counter(
            "dozor_moderation_invalid_records",
            "Consumed records skipped because they are not valid JSON of the expected shape",
            ["topic"], registry=registry,
        )
        self.feedback_produced = Counter(
            "dozor_moderation_feedback_produced",
            "«Модель ошиблась» corrections produced to the feedback topic",
            registry=registry,
        )
        for action in ("take", "release", "resolve", "model_error"):
            self.actions.labels(action=action)
        for kind in ("answered", "edited", "deleted", "restored", "spike_ended"):
            self.updates_applied.labels(kind=kind)

    def on_action(self, action: str, item, first_action: bool) -> None:
        """The store's ``on_action`` hook: called after a moderator action is committed."""
        self.actions.labels(action=action).inc()
        if first_action and item.first_action_at is not None:
            self.first_action_seconds.observe(max(0.0, item.first_action_at - item.flagged_at))
        if action == "resolve" and item.resolved_at is not None:
            self.resolution_seconds.observe(max(0.0, item.resolved_at - item.flagged_at))

    def on_batch(self, counts) -> None:
        """Count what one consumer batch stored (``store.IngestCounts``)."""
        if counts.flags_new:
            self.flags_ingested.inc(counts.flags_new)
        for kind, n in counts.updates_applied.items():
            self.updates_applied.labels(kind=kind).inc(n)


class QueueCollector:
    """``dozor_moderation_items{status,reason,municipality}`` and
    ``dozor_moderation_oldest_new_item_timestamp_seconds``, read from the store at scrape
    time (cached ``cache_seconds``)."""

    def __init__(self, store, cache_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict, float | None] | None = None

    def _read(self):
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                self._cached = (now, self.store.queue_depth(), self.store.oldest_new_flagged_at())
            return self._cached[1], self._cached[2]

    def describe(self):
        # no query at registration time
        return [
            GaugeMetricFamily("dozor_moderation_items", "Queue items by status, reason and municipality",
                              labels=["status", "reason", "municipality"]),
            GaugeMetricFamily("dozor_moderation_oldest_new_item_timestamp_seconds",
                              "flagged_at of the oldest item still new (0 when none waits)"),
        ]

    def collect(self):
        items = GaugeMetricFamily("dozor_moderation_items",
                                  "Queue items by status, reason and municipality",
                                  labels=["status", "reason", "municipality"])
        oldest = GaugeMetricFamily("dozor_moderation_oldest_new_item_timestamp_seconds",
                                   "flagged_at of the oldest item still new (0 when none waits)")
        try:
            depth, oldest_at = self._read()
        except Exception:  # the database is away: say so in the log, keep /metrics up
            log.exception("cannot read the queue depth from the moderation store")
            return
        for (status, reason, municipality), n in sorted(depth.items()):
            items.add_metric([status, reason, municipality], n)
        oldest.add_metric([], oldest_at or 0.0)
        yield items
        yield oldest
