"""Every Prometheus metric Dozor exports, declared once with its kind and meaning.

Naming follows the Prometheus conventions: `dozor_` prefix, base units (seconds, ratios
0–1), counters declared without `_total` (client_python adds it), timestamps rather than
"time since", descriptive labels in `dozor_page_info` to be joined in PromQL.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from streams.flags import UPDATE_KINDS
from streams.normalize.errors import DEAD_LETTER_REASONS

FLAG_REASONS = ("toxic", "strongly_negative", "unanswered_question", "negative_spike")
QUESTION_OUTCOMES = ("answered_in_time", "answered_late", "deleted")
PLATFORMS = ("vk", "telegram")
EVENT_KINDS = {"vk": (("post", ("new",)), ("comment", ("new", "edit", "delete", "restore")))}

BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ANSWER_SECONDS_BUCKETS = (
    300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 3 * 86400, 7 * 86400,
)


class DozorMetrics:
    """The worker's metrics on one registry (a fresh one per test, the global in production)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.events = Counter(
            "dozor_events", "Canonical events processed.", ["platform", "kind", "action"],
            registry=r,
        )
        # The per-page counters are DictCounters: thousands of pages times their labels.
        self.comments = DictCounter(
            "dozor_comments", "Comments classified (new, edit, restore).", ["page_id"],
            registry=r,
        )
        self.comments_classified = DictCounter(
            "dozor_comments_classified",
            "Classified comments whose label is above its threshold.",
            ["page_id", "label"],
            registry=r,
        )
        self.flags = DictCounter(
            "dozor_flags", "Flags sent to moderators.", ["page_id", "reason"], registry=r
        )
        # At most pages x themes series (16 themes in the shipped model), created as comments
        # arrive (not pre-initialised): only negative comments that got a topic count.
        self.negative_comments_by_topic = DictCounter(
            "dozor_negative_comments_by_topic",
            "Classified comments above the negative threshold, by the topic the model gave them "
            "(comments without a topic are not counted).",
            ["page_id", "topic"], registry=r,
        )
        self.topic_info = Gauge(
            "dozor_topic_info", "The model's topics (themes); always 1. Join on topic.",
            ["topic", "name"], registry=r,
        )
        self.dead_letters = Counter(
            "dozor_dead_letters", "Payloads sent to the dead-letter topic.", ["reason"],
            registry=r,
        )
        self.ignored_updates = Counter(
            "dozor_ignored_updates",
            "Well-formed raw payloads Dozor does not track (e.g. Telegram service messages).",
            ["platform"], registry=r,
        )
        self.flag_updates = Counter(
            "dozor_flag_updates", "Updates of already flagged items sent to moderators.",
            ["kind"], registry=r,
        )
        self.duplicates = Counter(
            "dozor_duplicate_events", "Events dropped because their event id was seen.",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "dozor_classifier_batch_seconds", "Wall time of one classifier batch.",
            buckets=BATCH_SECONDS_BUCKETS, registry=r,
        )
        self.stage_seconds = Histogram(
            "dozor_batch_stage_seconds",
            "Wall time of one input batch in each stage of the process agent: classify, "
            "step (tracking and flags), publish (send and wait for the acks), store.",
            ["stage"], buckets=BATCH_SECONDS_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "dozor_classifier_batch_size", "Texts per classifier batch.",
            buckets=BATCH_SIZE_BUCKETS, registry=r,
        )
        self.last_event_timestamp = Gauge(
            "dozor_last_event_timestamp_seconds",
            "Event time (payload date) of the newest event seen.", ["platform"], registry=r,
        )
        self.page_info = Gauge(
            "dozor_page_info", "Page registry; always 1. Join on page_id.",
            ["page_id", "platform", "name", "municipality", "category"], registry=r,
        )
        self.answer_seconds = Histogram(
            "dozor_answer_seconds", "Time from a question to the page's answer.",
            ["platform"], buckets=ANSWER_SECONDS_BUCKETS, registry=r,
        )
        self.stream_time_timestamp = Gauge(
            "dozor_stream_time_timestamp_seconds",
            "Stream clock: newest event time, advanced by the wall clock when idle.",
            registry=r,
        )
        # Deprecated name of the same gauge (a timestamp), kept for one release.
        self.stream_time_deprecated = Gauge(
            "dozor_stream_time_seconds",
            "DEPRECATED: use dozor_stream_time_timestamp_seconds (same value).",
            registry=r,
        )
        self.stream_time = _Fanout(self.stream_time_timestamp, self.stream_time_deprecated)
        # Lets alerts judge silence by wall clock after a restart: until the first event,
        # no event has arrived since this time (dozor_last_event_timestamp_seconds is absent).
        self.worker_start_timestamp = Gauge(
            "dozor_worker_start_timestamp_seconds",
            "When this worker process started (unix seconds).", registry=r,
        )
        self.worker_start_timestamp.set(time.time())
        self.consumer_lag = Gauge(
            "dozor_consumer_lag_messages",
            "High watermark minus position of the worker's consumer.",
            ["topic", "partition"], registry=r,
        )
        self.worker_info = Gauge(
            "dozor_worker_info", "The running worker and its model; always 1.",
            ["version", "model"], registry=r,
        )
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason=reason)
        for kind in UPDATE_KINDS:
            self.flag_updates.labels(kind=kind)
        for platform in PLATFORMS:
            self.ignored_updates.labels(platform=platform)
        for platform, kinds in EVENT_KINDS.items():
            for kind, actions in kinds:
                for action in actions:
                    self.events.labels(platform=platform, kind=kind, action=action)

    def apply(self, changes: Iterable) -> None:
        """Apply metric changes computed by the pure batch step (streams.process.MetricChange:
        `metric` is an attribute of this object, `op` one of inc / set / observe)."""
        for change in changes:
            metric = getattr(self, change.metric)
            if change.labels:
                metric = metric.labels(**dict(change.labels))
            getattr(metric, change.op)(change.value)

    def init_topics(self, names: dict[str, str]) -> None:
        """Export the model's topics (theme key → Russian name) as `dozor_topic_info`."""
        for topic, name in names.items():
            self.topic_info.labels(topic=topic, name=name).set(1)

    def init_page(self, page_id: str, labels: list[str]) -> None:
        """Pre-initialise a page's series so rates start from zero, not from absence."""
        self.comments.labels(page_id=page_id)
        for label in labels:
            self.comments_classified.labels(page_id=page_id, label=label)
        for reason in FLAG_REASONS:
            self.flags.labels(page_id=page_id, reason=reason)


class DictCounter:
    """A labelled counter whose series are one dict entry each, exported at scrape time.

    prometheus_client's `Counter` keeps a child object with its own lock per series, ~570 bytes
    (tracemalloc); an entry here is ~110. The per-page counters have thousands of series (1,670
    pages × 16 topics alone is 26,720, ~17 MiB as children), created as comments arrive
    (docs/ARCHITECTURE.md, "Memory"). Used like a Counter: `.labels(page_id=…, topic=…).inc()`;
    `labels` alone creates the series at 0. A scrape thread reads a copy of the dict taken under
    the counter's lock (`_snapshot`). No `_created` samples.
    """

    def __init__(self, name: str, documentation: str, labelnames: list[str],
                 registry: CollectorRegistry) -> None:
        self._name, self._documentation = name, documentation
        self._labelnames = tuple(labelnames)
        self._labelset = frozenset(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()  # one per counter; a scrape copies the dict under it
        registry.register(self)

    def labels(self, **labels: str) -> _DictCounterChild:
        key = self._key(labels)
        if key not in self._values:
            with self._lock:
                self._values.setdefault(key, 0.0)
        return _DictCounterChild(self, key)

    def value(self, **labels: str) -> float | None:
        """The series' count; None if it does not exist."""
        return self._values.get(self._key(labels))

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if labels.keys() != self._labelset:
            raise ValueError(f"{self._name}: labels {sorted(labels)}, expected {self._labelnames}")
        # interned: the series of one page share its id string
        return tuple(sys.intern(str(labels[name])) for name in self._labelnames)

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def describe(self):
        return [self._family()]

    def collect(self):
        family = self._family()
        for key, value in self._snapshot().items():
            family.add_metric(key, value)
        yield family

    def _snapshot(self) -> dict[tuple[str, ...], float]:
        """A copy of the series. Under the lock: a list of the items, built one tuple at a time
        while the event loop added series, once failed in a test with "dictionary changed size
        during iteration" (a garbage collection can run Python code and hand the GIL over)."""
        with self._lock:
            return self._values.copy()


class _DictCounterChild:
    __slots__ = ("_counter", "_key")

    def __init__(self, counter: DictCounter, key: tuple[str, ...]) -> None:
        self._counter, self._key = counter, key

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        with self._counter._lock:
            self._counter._values[self._key] += amount


class _Fanout:
    """Sets several gauges at once: a renamed metric exported under both names."""

    def __init__(self, *gauges: Gauge) -> None:
        self._gauges = gauges

    def set(self, value: float) -> None:
        for gauge in self._gauges:
            gauge.set(value)


class PageStateCollector:
    """Per-page answer-tracking metrics, read from the pages' durable state at scrape time.

    They are derived from the table state (not process counters), so after a restart or a
    rebalance they come back as they were: `dozor_questions_total` keeps counting where it
    stopped, and a worker exports only the pages its partitions own.
    `views` returns (page_id, view) pairs, view as `streams.track.PageView`.
    """

    def __init__(self, views: Callable[[], Iterable[tuple[str, object]]]) -> None:
        self._views = views

    def describe(self):
        return []

    def collect(self):
        open_ = GaugeMetricFamily(
            "dozor_questions_open", "Questions waiting for the page's answer.", labels=["page_id"]
        )
        overdue = GaugeMetricFamily(
            "dozor_questions_overdue", "Open questions past their answer deadline.",
            labels=["page_id"],
        )
        oldest = GaugeMetricFamily(
            "dozor_oldest_open_question_timestamp_seconds",
            "When the oldest open question of the page was asked.", labels=["page_id"],
        )
        questions = CounterMetricFamily(
            "dozor_questions", "Closed questions by outcome.", labels=["page_id", "outcome"]
        )
        posts = CounterMetricFamily(
            "dozor_posts", "Posts published by the page.", labels=["page_id"]
        )
        last_post = GaugeMetricFamily(
            "dozor_last_post_timestamp_seconds", "Time of the page's newest post.",
            labels=["page_id"],
        )
        negative = GaugeMetricFamily(
            "dozor_page_negative_comments",
            "Negative comments in the spike window (event time).", labels=["page_id"],
        )
        ratio = GaugeMetricFamily(
            "dozor_page_negative_ratio",
            "Negative share of comments in the spike window (0-1).", labels=["page_id"],
        )
        share = GaugeMetricFamily(  # deprecated name of dozor_page_negative_ratio, one release
            "dozor_page_negative_share",
            "DEPRECATED: use dozor_page_negative_ratio (same value).", labels=["page_id"],
        )
        for page_id, view in list(self._views()):
            snap = view.snapshot
            open_.add_metric([page_id], snap.open_questions)
            overdue.add_metric([page_id], snap.overdue_questions)
            if snap.oldest_open_asked_at is not None:
                oldest.add_metric([page_id], snap.oldest_open_asked_at)
            for outcome in QUESTION_OUTCOMES:
                questions.add_metric([page_id, outcome], view.counts.get(outcome, 0))
            posts.add_metric([page_id], snap.posts_total)
            if snap.last_post_at is not None:
                last_post.add_metric([page_id], snap.last_post_at)
            negative.add_metric([page_id], snap.negative_count)
            ratio.add_metric([page_id], snap.negative_share)
            share.add_metric([page_id], snap.negative_share)
        yield from (open_, overdue, oldest, questions, posts, last_post, negative, ratio, share)
