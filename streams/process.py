"""One batch of the `process` agent, without Faust: decoded records in; what to send, what to
store and which metrics change out.

The agent (streams/app.py) decodes a batch of its inputs (raw payloads through `Normalizer`,
clock ticks) into `InputRecord`s, asks
`BatchStep.to_classify` which comments need the model, runs it, and calls `BatchStep.run`.
The step reads the tables through plain mappings (`Tables`: Faust tables in the worker, dicts
in tests) and never writes them: it returns a `BatchResult`, whose `sends` the agent publishes
and waits for, *then* it stores the `writes` — the delivery guarantee of docs/ARCHITECTURE.md.
What the step keeps between batches is a cache of what the tables say (page records, parsed
once, changed in place as the batch is applied) and the stream clocks; the tables stay the
truth: a fresh step over the same tables (a restart) decides every repeat the same way.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.classify import Classified
from streams.clock import StreamClocks
from streams.dedup import NEW, remember, repeat_kind
from streams.events import CanonicalEvent
from streams.flags import Flag, FlagPolicy, FlagUpdate, comment_flags
from streams.normalize.telegram import TelegramNormalizer
from streams.normalize.vk import normalize_vk_bytes
from streams.pages import PageRegistry
from streams.ticks import Tick
from streams.track import (
    PageRecord,
    PageView,
    TrackingPolicy,
    apply_event,
    effect_flags,
    flag_updates,
    page_view,
    sweep,
)
from streams.tracking.effects import QuestionAnswered

log = logging.getLogger(__name__)

# Output roles: the agent maps them to its topics.
EVENTS = "events"
CLASSIFIED = "classified"
FLAGS = "flags"
FLAG_UPDATES = "flag_updates"
DEAD_LETTERS = "dead_letters"  # the agent adds these; the step sends none


@dataclass(frozen=True)
class InputRecord:
    """One decoded input message: a raw payload's canonical event, or a clock tick."""

    partition: int
    offset: int
    item: CanonicalEvent | Tick
    #: The event's input, "raw topic:partition" (None in tests that do not care).
    source: str | None = None
    #: The broker message it came from, opaque here: table writes carry it back, so the agent
    #: files each write in the changelog partition of the message that caused it.
    ref: Any = None

    @property
    def input(self) -> str:
        """Which input the offset counts in: the source, else the partition."""
        return self.source if self.source is not None else str(self.partition)


@dataclass(frozen=True)
class Send:
    """A record to publish: `role` (EVENTS, CLASSIFIED, FLAGS, FLAG_UPDATES), key and value
    bytes."""

    role: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class TableWrite:
    """A table write for after the sends: `table` is "pages" (JSON bytes) or "clock"; `ref` is
    the InputRecord.ref whose partition it belongs to."""

    table: str
    key: str
    value: Any
    ref: Any = None


@dataclass(frozen=True)
class MetricChange:
    """One change of a DozorMetrics metric: `op` ("inc", "set", "observe") with `value`."""

    metric: str
    labels: tuple[tuple[str, str], ...] = ()
    op: str = "inc"
    value: float = 1.0


@dataclass
class BatchResult:
    """What one batch produced. Publish `sends` (and wait for the acks) before `writes`."""

    sends: list[Send] = field(default_factory=list)
    writes: list[TableWrite] = field(default_factory=list)
    metrics: list[MetricChange] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    updates: list[FlagUpdate] = field(default_factory=list)
    #: Page views (metrics, `dozor pages`) to show once the writes are stored.
    views: dict[str, PageView] = field(default_factory=dict)

    def metric(self, metric_: str, op: str = "inc", value: float = 1.0, **labels: str) -> None:
        self.metrics.append(MetricChange(metric_, tuple(labels.items()), op, value))


@dataclass
class Tables:
    """The worker's tables as read-only mappings (Faust tables, or dicts in tests)."""

    pages: Mapping[str, Any]
    clock: Mapping[str, Any]
    #: Reads one page's value for the message `ref` it is read for (`read_page(page_id, ref)`):
    #: a Faust table on RocksDB keeps one store per partition and finds it by the current
    #: message. None: `pages.get(page_id)`.
    read_page: Callable[[str, Any], Any] | None = None

    def page(self, page_id: str, ref: Any) -> Any:
        if self.read_page is None:
            return self.pages.get(page_id)
        return self.read_page(page_id, ref)


@dataclass
class _Pending:
    """Table writes of the batch being applied, each with the ref of its latest message."""

    dirty: dict[str, tuple[PageRecord, Any, float]] = field(default_factory=dict)
    clocks: dict[int, tuple[float, Any]] = field(default_factory=dict)


class BatchStep:
    """Dozor's per-batch logic: repeats, classification results, tracking, flags, updates."""

    def __init__(
        self,
        tables: Tables,
        pages: PageRegistry,
        tracking: TrackingPolicy,
        flag_policy: FlagPolicy,
        wall_clock: Callable[[], float],
        clock_idle_seconds: float,
        cache_bytes: int = 0,
    ) -> None:
        self.tables = tables
        self.pages = pages
        self.tracking = tracking
        self.flag_policy = flag_policy
        self.clocks = StreamClocks(tables.clock, wall_clock, clock_idle_seconds)
        #: Parsed page records, least recently used first, at most `cache_bytes` of their
        #: stored (JSON) size once a batch is stored (0: no limit); the tables hold the rest.
        self.records = PageCache(cache_bytes)
        self.views: dict[str, PageView] = {}
        #: partition -> page -> (when time alone next changes its view or sweep, its source):
        #: a tick looks only at the pages due (PageState.next_change_at), cached or not.
        self.due: dict[int, dict[str, tuple[float, str | None]]] = {}
        self.loaded_partitions: set[int] = set()
        self.unregistered: set[str] = set()

    # --- the step -------------------------------------------------------------------------------

    def to_classify(self, records: Iterable[InputRecord]) -> list[CanonicalEvent]:
        """The batch's events that are not repeats, once per event id (the model's input)."""
        fresh: dict[str, CanonicalEvent] = {}
        for rec in records:
            item = rec.item
            if isinstance(item, CanonicalEvent) and self._repeat(item, rec) == NEW:
                fresh.setdefault(item.event_id, item)
        return list(fresh.values())

    def run(
        self, records: Iterable[InputRecord], classified: Mapping[str, Classified]
    ) -> BatchResult:
        """Apply the batch to the cached page states; returns what to send, then to store."""
        out, pending = BatchResult(), _Pending()
        for rec in records:
            if isinstance(rec.item, CanonicalEvent):
                self._event(rec, rec.item, classified.get(rec.item.event_id), out, pending)
            else:
                self._tick(rec, rec.item, out, pending)
        for page_id, (record, ref, at) in pending.dirty.items():
            value = record.to_json()
            out.writes.append(TableWrite("pages", page_id, value, ref))
            out.views[page_id] = page_view(record, at)
            self.records.sized(page_id, len(value))
            self._index(page_id, record, at)
        for partition, (now, ref) in pending.clocks.items():
            out.writes.append(TableWrite("clock", str(partition), now, ref))
        return out

    def stored(self, out: BatchResult) -> None:
        """The batch's writes are stored: show its views, and keep the cache to its size (every
        cached record is as stored now, so any of them may be read back from the table)."""
        self.views.update(out.views)
        self.records.trim()

    def forget_partitions(self, partitions: set[int]) -> None:
        """Partitions went to another worker: their table state may change there."""
        for page_id in [p for p, r in self.records.items() if r.partition in partitions]:
            self.records.pop(page_id)
        for partition in partitions:
            for page_id in self.due.pop(partition, {}):
                self.views.pop(page_id, None)
        self.loaded_partitions -= partitions
        self.clocks.forget(partitions)

    # --- events ---------------------------------------------------------------------------------

    def _event(
        self, rec: InputRecord, event: CanonicalEvent, classified: Classified | None,
        out: BatchResult, pending: _Pending,
    ) -> None:
        partition, offset = rec.partition, rec.offset
        self.clocks.note_input(partition, rec.source, event.created_at)
        # Repeats move the clock too: a message re-read after a restart had moved it before
        # the crash, and the stored clock may be older than that (it is stored on ticks).
        now = self.clocks.on_event(partition, event.created_at)
        if self._repeat(event, rec) != NEW:
            out.metric("duplicates")
            return
        out.metric("events", platform=event.platform, kind=event.kind, action=event.action)
        out.sends.append(Send(EVENTS, event.page_id.encode(), event.to_json()))
        if event.created_at:
            out.metric("last_event_timestamp", "set", event.created_at, platform=event.platform)
        page = self._page(event.page_id, out)
        flags: list[Flag] = []
        if classified is not None:
            out.metric("comments", page_id=event.page_id)
            for label in classified.labels:
                out.metric("comments_classified", page_id=event.page_id, label=label)
            if classified.topic is not None and "negative" in classified.labels:
                out.metric("negative_comments_by_topic", page_id=event.page_id,
                           topic=classified.topic)
            out.sends.append(Send(
                CLASSIFIED, event.page_id.encode(),
                json.dumps(classified.to_record(), ensure_ascii=False).encode(),
            ))
            flags.extend(comment_flags(event, classified.scores, page, self.flag_policy,
                                       classified.topic))

        record = self._record(event.page_id, partition, rec.ref)
        remember(record.seen, event.event_id, now)
        # Time has reached this event: deadlines before it have passed, whenever ticks ran.
        effects = sweep(record, event.created_at) if event.created_at else []
        effects += apply_event(record, event, classified, page, self.tracking, now)
        for effect in effects:
            if isinstance(effect, QuestionAnswered):
                out.metric("answer_seconds", "observe", effect.response_seconds,
                           platform=effect.platform)
        flags.extend(effect_flags(effects, page, now))
        # Before this event's own flags are remembered: updates concern flags sent earlier.
        updates = flag_updates(record, event, classified, effects, now, record.sent.__contains__)
        record.applied = (rec.input, offset)
        if rec.source is not None:
            record.source = rec.source
        # Its view (metrics) at the time the page's own input has reached, as a tick shows it.
        pending.dirty[event.page_id] = (
            record, rec.ref, self.clocks.sweep_time(partition, now, False, record.source)
        )
        self._queue_flags(flags, record, now, out)
        for update in updates:
            out.sends.append(Send(
                FLAG_UPDATES, update.page_id.encode(),
                json.dumps(update.to_dict(), ensure_ascii=False).encode(),
            ))
            out.updates.append(update)
            out.metric("flag_updates", kind=update.kind)

    def _repeat(self, event: CanonicalEvent, rec: InputRecord) -> str:
        """NEW, REPLAY or COPY (streams/dedup.py), from the page's record as the batch left it."""
        record = self._stored_record(event.page_id, rec.ref)
        if record is None:
            return NEW
        return repeat_kind(rec.input, rec.offset, record.applied, event.event_id in record.seen)

    def _queue_flags(
        self, flags: list[Flag], record: PageRecord, now: float, out: BatchResult
    ) -> None:
        """Send the flags the page has not sent before; the record remembers them (it is a
        dirty page of the batch whenever it has new flags)."""
        for flag in flags:
            if flag.flag_id in record.sent:
                continue
            remember(record.sent, flag.flag_id, now)
            out.sends.append(Send(
                FLAGS, flag.page_id.encode(),
                json.dumps(flag.to_dict(), ensure_ascii=False).encode(),
            ))
            out.flags.append(flag)
            out.metric("flags", page_id=flag.page_id, reason=flag.reason)

    # --- ticks ----------------------------------------------------------------------------------

    def _tick(self, rec: InputRecord, tick: Tick, out: BatchResult, pending: _Pending) -> None:
        partition = rec.partition
        now, trusted = self.clocks.on_tick(partition, tick.at, tick.force)
        if self.tables.clock.get(str(partition)) != now:
            pending.clocks[partition] = (now, rec.ref)
        self._load_partition(partition, now, trusted, rec.ref, out, pending)
        for page_id, (due, source) in list(self.due.get(partition, {}).items()):
            at = self.clocks.sweep_time(partition, now, trusted, source)
            if at <= 0 or at < due:
                continue  # nothing about the page changes before `due`
            record = self._stored_record(page_id, rec.ref)
            if record is not None:
                self._sweep_page(page_id, record, at, rec.ref, out, pending)
        out.metric("stream_time", "set", self.clocks.newest())

    def _sweep_page(
        self, page_id: str, record: PageRecord, at: float, ref: Any, out: BatchResult,
        pending: _Pending,
    ) -> None:
        """A tick's sweep of one page to `at`: overdue questions flagged, its view renewed."""
        effects = sweep(record, at)
        if effects:
            pending.dirty[page_id] = (record, ref, at)
            self._queue_flags(effect_flags(effects, self._page(page_id, out), at),
                              record, at, out)
        out.views[page_id] = page_view(record, at)
        self._index(page_id, record, at)

    def _index(self, page_id: str, record: PageRecord, at: float) -> None:
        """When a tick must next look at the page (its view and sweep as of `at`)."""
        self.due.setdefault(record.partition, {})[page_id] = (
            record.state.next_change_at(at), record.source)

    # --- state ----------------------------------------------------------------------------------

    def _page(self, page_id: str, out: BatchResult):
        if page_id not in self.pages and page_id not in self.unregistered:
            # Unknown pages are processed all the same, and reported once as such.
            self.unregistered.add(page_id)
            page = self.pages.get(page_id)
            out.metric("page_info", "set", 1, page_id=page.page_id, platform=page.platform,
                       name=page.name, municipality=page.municipality, category=page.category)
            log.warning("events from unregistered page %s; add it to the page registry", page_id)
        return self.pages.get(page_id)

    def _stored_record(self, page_id: str, ref: Any) -> PageRecord | None:
        """The page's record from the cache, else the (recovered) table, else None. `ref`: the
        message it is read for, of the page's partition."""
        record = self.records.get(page_id)
        if record is None:
            value = self.tables.page(page_id, ref)
            if value is not None:
                record = PageRecord.from_json(value, self.tracking)
                self.records.put(page_id, record, len(value))
        return record

    def _record(self, page_id: str, partition: int, ref: Any) -> PageRecord:
        """The page's record: cached, stored, else new."""
        record = self._stored_record(page_id, ref)
        if record is None:
            record = PageRecord.new(page_id, partition, self.tracking)
            self.records.put(page_id, record, 0)
        return record

    def _load_partition(
        self, partition: int, now: float, trusted: bool, ref: Any, out: BatchResult,
        pending: _Pending,
    ) -> None:
        """On the partition's first tick, sweep and show each of its pages in the (recovered)
        table once, and note when each is next due; only those changed stay cached."""
        if partition in self.loaded_partitions:
            return
        known = self.due.get(partition, {})
        for page_id, value in list(self.tables.pages.items()):
            if value is None or page_id in known:
                continue
            record = cached = self.records.get(page_id)
            if record is None:
                record = PageRecord.from_json(value, self.tracking)
            if record.partition != partition:
                continue
            at = self.clocks.sweep_time(partition, now, trusted, record.source)
            if at > 0:
                self._sweep_page(page_id, record, at, ref, out, pending)
                if cached is None and page_id in pending.dirty:
                    self.records.put(page_id, record, len(value))
            else:
                # Nothing read from the page's input yet: show it, with nothing overdue.
                out.views[page_id] = page_view(record, 0.0)
                self._index(page_id, record, 0.0)
        self.loaded_partitions.add(partition)


class PageCache:
    """Parsed page records by page id, least recently used first, each with the size of its
    stored JSON; `trim` drops the least recently used beyond `limit` bytes of it (0: none)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self._records: OrderedDict[str, tuple[PageRecord, int]] = OrderedDict()
        self.size = 0

    def get(self, page_id: str) -> PageRecord | None:
        entry = self._records.get(page_id)
        if entry is None:
            return None
        self._records.move_to_end(page_id)
        return entry[0]

    def put(self, page_id: str, record: PageRecord, size: int) -> None:
        self.pop(page_id)
        self._records[page_id] = (record, size)
        self.size += size

    def sized(self, page_id: str, size: int) -> None:
        """The cached record's JSON is `size` bytes now."""
        entry = self._records.get(page_id)
        if entry is not None:
            self._records[page_id] = (entry[0], size)
            self.size += size - entry[1]

    def pop(self, page_id: str) -> None:
        entry = self._records.pop(page_id, None)
        if entry is not None:
            self.size -= entry[1]

    def trim(self) -> None:
        while self.limit and self.size > self.limit and self._records:
            _, (_, size) = self._records.popitem(last=False)
            self.size -= size

    def items(self) -> list[tuple[str, PageRecord]]:
        return [(page_id, entry[0]) for page_id, entry in self._records.items()]


# --- normalisation: raw payload bytes → canonical event -------------------------------------------


class Normalizer:
    """`normalize(platform, raw)` for every raw topic: a CanonicalEvent, None for a well-formed
    payload Dozor does not track, or InvalidPayload (→ dead letter). Pure per payload."""

    def __init__(
        self, telegram_discussions: Mapping[int, int], telegram_channels: Iterable[int] = ()
    ) -> None:
        self.telegram = TelegramNormalizer(telegram_discussions, telegram_channels)

    @classmethod
    def for_pages(cls, pages: PageRegistry) -> Normalizer:
        """The normalisers for the registry's pages (Telegram: its channels and groups)."""
        channels = [int(p.page_id.split(":", 1)[1]) for p in pages if p.platform == "telegram"]
        return cls(pages.telegram_discussions(), channels)

    def __call__(self, platform: str, raw: bytes) -> CanonicalEvent | None:
        if platform == "vk":
            return normalize_vk_bytes(raw)
        if platform == "telegram":
            return self.telegram.normalize_bytes(raw)
        raise ValueError(f"no normaliser for platform {platform!r}")
