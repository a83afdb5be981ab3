"""The Faust application: topics, tables and agents, wired around the plain logic.

Two agents, each a thin shell:

* `normalize` — raw platform payloads → canonical events keyed by page (one partition owns
  a page), or the dead-letter topic with the reason. It never stops on bad input.
* `process` — canonical events in batches (up to `batch_size` or `batch_wait` seconds):
  drop repeats (streams/dedup.py), classify the comments off the event loop, feed the page's
  answer-tracking state (a table backed by a changelog topic), publish every classified
  comment and every flag, and only then store the tables. Clock ticks, sent by a timer into
  each owned partition, run the SLA sweep inside the partition's own stream, so its table
  writes land in the right changelog.

Offsets are committed after a batch is processed and its outputs and table writes are out
(at least once). A page's state carries the offset of the newest message applied to it, so a
message re-read after a crash is recognised exactly when its effect was stored; a flag that
is sent again carries the same deterministic `flag_id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import faust
from faust.streams import _current_event  # the event whose partition a table write goes to

from streams.classify import Classified, classify_events, needs_classification
from streams.dead_letter import (
    DeadLetterLimit,
    DeadLetterLimitExceeded,
    dead_letter_record,
    encode,
)
from streams.dedup import NEW, repeat_kind
from streams.events import CanonicalEvent
from streams.faust_tuning import set_fetch_max_wait
from streams.flags import Flag, FlagPolicy, comment_flags
from streams.metrics import DozorMetrics
from streams.normalize import InvalidPayload
from streams.normalize.vk import normalize_vk_bytes
from streams.pages import PageRegistry
from streams.topics import TopicNames
from streams.track import PageRecord, PageView, TrackingPolicy, apply_event, effect_flags
from streams.track import page_view, sweep, sweep_time
from streams.tracking.effects import QuestionAnswered

log = logging.getLogger(__name__)

TICK_KEY = b"__tick__"
#: Header of every canonical event: the raw topic and partition it was normalised from
#: ("topic:partition"), so ticks sweep a page only as far as its own input has got (sweep_time).
SOURCE_HEADER = "dozor-source"
#: An event dated further than this into the future does not move the stream clock.
MAX_CLOCK_SKEW_SECONDS = 300.0
#: How long event ids (and sent flag ids) are remembered for de-duplication.
SEEN_RETENTION_SECONDS = 14 * 86400.0
PRUNE_EVERY_TICKS = 60


@dataclass(frozen=True)
class StreamConfig:
    """Plain values the stream app needs, handed down from the settings object."""

    bootstrap: str
    app_id: str = "dozor"
    partitions: int = 4
    topics: TopicNames = field(default_factory=TopicNames)
    session_timeout: float = 10.0
    heartbeat: float = 2.0
    data_dir: Path = Path(".cache/dozor")
    batch_size: int = 64
    batch_wait: float = 0.05
    flag_policy: FlagPolicy = field(default_factory=FlagPolicy)
    tracking: TrackingPolicy | None = None
    sweep_interval: float = 5.0
    clock_idle_seconds: float = 30.0
    fetch_max_wait: float = 0.1
    dead_letter_max_consecutive: int = 1000


@dataclass
class BatchOutput:
    """What one batch produced, held until the batch is applied: messages to publish first,
    then the table writes (`seen` and clock entries, each with the event whose partition's
    changelog it belongs to); page states wait in `DozorStreams.dirty`."""

    sends: list[tuple[faust.TopicT, bytes, bytes]] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    seen: dict[str, tuple[list, faust.types.EventT]] = field(default_factory=dict)
    clocks: dict[int, tuple[float, faust.types.EventT]] = field(default_factory=dict)


@dataclass(frozen=True)
class Tick:
    """A clock message in the events topic: the stream time may advance to `at`.

    The timer sends wall-clock ticks (used once the partition is idle); `dozor replay
    --advance-clock-to` sends forced ones, to close a replayed day as if it had been lived.
    """

    at: float
    force: bool = False


def tick_message(at: float, force: bool = False) -> bytes:
    return json.dumps({"tick": at, "force": force}).encode()


class Classifier(Protocol):
    """What the stream needs of a model (models.classifier.TextClassifier has it)."""

    def predict(self, texts: list[str]) -> list[dict[str, float]]: ...
    def labels_above(self, scores: dict[str, float]) -> list[str]: ...


def source_of(event) -> str | None:
    """The input a canonical event was normalised from (its SOURCE_HEADER), or None."""
    value = (getattr(event, "headers", None) or {}).get(SOURCE_HEADER)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(",") if server)


def in_event_context(event: faust.types.EventT) -> None:
    """Make `event` the current one, so table writes go to its partition's changelog.

    `stream.take_events` yields a batch from several partitions; Faust would otherwise file
    every write under the batch's last event.
    """
    _current_event.set(weakref.ref(event))


class DozorStreams:
    """The Faust app with Dozor's topics, tables and agents; state kept for metrics."""

    def __init__(
        self,
        config: StreamConfig,
        classifier: Classifier,
        pages: PageRegistry,
        metrics: DozorMetrics,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if config.tracking is None:
            raise ValueError("StreamConfig.tracking is required")
        self.config = config
        self.classifier = classifier
        self.pages = pages
        self.metrics = metrics
        self.wall_clock = wall_clock
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classifier")
        self.views: dict[str, PageView] = {}
        self.clock: dict[int, float] = {}
        #: events partition -> input ("raw topic:partition") -> newest event time read from it
        self.source_clocks: dict[int, dict[str, float]] = {}
        self.last_event_wall: dict[int, float] = {}
        self.started_wall = wall_clock()
        self.ticks = 0
        self.records: dict[str, PageRecord] = {}
        self.dirty: dict[str, tuple] = {}
        self.loaded_partitions: set[int] = set()
        self.unregistered: set[str] = set()
        self.dead_letter_limit = DeadLetterLimit(config.dead_letter_max_consecutive)
        self.app = self._build_app()

    # --- wiring -------------------------------------------------------------------------------

    def _build_app(self) -> faust.App:
        c = self.config
        set_fetch_max_wait(c.fetch_max_wait)
        app = faust.App(
            c.app_id,
            broker=broker_url(c.bootstrap),
            store="memory://",  # tables are rebuilt from their changelog topics on start
            datadir=str(c.data_dir),
            topic_partitions=c.partitions,
            web_enabled=False,
            broker_session_timeout=c.session_timeout,
            broker_heartbeat_interval=c.heartbeat,
            broker_request_timeout=max(30.0, c.session_timeout * 2),
            broker_rebalance_timeout=max(30.0, c.session_timeout * 2),
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            table_standby_replicas=0,
            key_serializer="json",
            value_serializer="json",
        )
        t = c.topics
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
               "value_serializer": "raw"}
        self.raw_vk = app.topic(t.raw_vk, **raw)
        self.events = app.topic(t.events, **raw)
        self.classified = app.topic(t.classified, **raw)
        self.flags = app.topic(t.flags, **raw)
        self.dead_letters = app.topic(t.dead_letters, **raw)
        self.page_table = app.Table(
            "pages", default=None, key_type=str,
            partitions=c.partitions,
        )
        self.seen = app.Table(
            "seen", default=None, key_type=str,
            partitions=c.partitions,
        )
        self.clock_table = app.Table(
            "clock", default=None, key_type=str,
            partitions=c.partitions,
        )
        app.agent(self.raw_vk, name="normalize")(self._normalize_agent)
        app.agent(self.events, name="process")(self._process_agent)
        app.timer(c.sweep_interval)(self._tick_timer)

        @app.on_partitions_revoked.connect
        async def on_revoked(app, revoked, **kwargs) -> None:
            self._forget_partitions(revoked)

        return app

    # --- agent: normalise -----------------------------------------------------------------------

    async def _normalize_agent(self, stream) -> None:
        async for event in stream.events():
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            try:
                canonical = normalize_vk_bytes(raw)
                self.dead_letter_limit.valid()
            except InvalidPayload as error:
                try:
                    self.dead_letter_limit.invalid(error)
                except DeadLetterLimitExceeded as exc:
                    log.critical("%s", exc)
                    await self.app.crash(exc)
                    return
                record = dead_letter_record(
                    raw, error, topic=event.message.topic, partition=event.message.partition,
                    offset=event.message.offset, platform="vk",
                )
                await self.dead_letters.send(key=event.key, value=encode(record))
                self.metrics.dead_letters.labels(reason=error.reason).inc()
                log.warning("dead letter %s at %s:%s", error, event.message.partition,
                            event.message.offset)
                continue
            await self.events.send(
                key=canonical.page_id.encode(), value=canonical.to_json(),
                headers={SOURCE_HEADER: f"{event.message.topic}:{event.message.partition}".encode()},
            )

    # --- agent: classify, flag, track -----------------------------------------------------------

    async def _process_agent(self, stream) -> None:
        c = self.config
        async for batch in stream.take_events(c.batch_size, within=c.batch_wait):
            await self.process_batch(batch)

    async def process_batch(self, batch: list[faust.types.EventT]) -> None:
        """Apply a batch, publish what it produced, then store the state it changed.

        The order is the delivery guarantee: outputs (classified comments, flags) are sent and
        acknowledged *before* any table write of the batch. A crash before the state is stored
        makes the next worker apply the messages again (outputs may repeat, with the same ids);
        once the state is stored, re-read messages are recognised (streams/dedup.py) and their
        outputs are already out. Nothing is lost either way.
        """
        decoded: list[tuple[faust.types.EventT, CanonicalEvent | Tick]] = []
        fresh: dict[str, CanonicalEvent] = {}
        for event in batch:
            item = self._decode(event)
            if item is None:
                continue
            decoded.append((event, item))
            if isinstance(item, CanonicalEvent) and self._repeat(item, event, {}) == NEW:
                fresh.setdefault(item.event_id, item)
        results = await self._classify(list(fresh.values()))
        out = BatchOutput()
        for event, item in decoded:
            if isinstance(item, CanonicalEvent):
                self._handle_event(item, results.get(item.event_id), event, out)
            else:
                self._handle_tick(item, event, out)
        await self._publish(out)
        self._store(out)

    def _decode(self, event) -> CanonicalEvent | Tick | None:
        if event.key == TICK_KEY:
            data = json.loads(event.value)
            return Tick(float(data["tick"]), bool(data.get("force", False)))
        try:
            return CanonicalEvent.from_dict(json.loads(event.value))
        except (ValueError, TypeError, KeyError) as exc:  # written by us: a bug, not input
            log.error("undecodable canonical event at %s: %s", event.message, exc)
            return None

    async def _classify(self, events: list[CanonicalEvent]) -> dict[str, Classified]:
        if not any(needs_classification(e) for e in events):
            return {}
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        results = await loop.run_in_executor(
            self.executor,
            classify_events,
            events,
            self.classifier.predict,
            self.classifier.labels_above,
        )
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(results))
        return results

    def _repeat(self, event: CanonicalEvent, source, pending: dict) -> str:
        """NEW, REPLAY or COPY (streams/dedup.py); `pending`: this batch's unsaved seen writes."""
        record = self._stored_record(event.page_id)
        applied = record.applied if record is not None else None
        seen = pending[event.event_id][0] if event.event_id in pending else self.seen.get(
            event.event_id
        )
        return repeat_kind(source.message.partition, source.message.offset, applied, seen)

    def _handle_event(
        self, event: CanonicalEvent, classified: Classified | None, source, out: BatchOutput
    ) -> None:
        m = self.metrics
        partition, offset = source.message.partition, source.message.offset
        origin = source_of(source)
        clocks = self.source_clocks.setdefault(partition, {})
        if origin is not None and event.created_at:
            # Every message read counts, repeats too: the input has got this far, in order.
            clocks[origin] = max(clocks.get(origin, 0.0), event.created_at)
        if self._repeat(event, source, out.seen) != NEW:
            m.duplicates.inc()
            return
        now = self._advance_clock(partition, event.created_at)
        out.seen[event.event_id] = ([now, partition, offset], source)
        m.events.labels(platform=event.platform, kind=event.kind, action=event.action).inc()
        if event.created_at:
            m.last_event_timestamp.labels(platform=event.platform).set(event.created_at)
        page = self._page(event.page_id)
        flags: list[Flag] = []
        if classified is not None:
            m.comments.labels(page_id=event.page_id).inc()
            for label in classified.labels:
                m.comments_classified.labels(page_id=event.page_id, label=label).inc()
            out.sends.append((
                self.classified, event.page_id.encode(),
                json.dumps(classified.to_record(), ensure_ascii=False).encode(),
            ))
            flags.extend(comment_flags(event, classified.scores, page, self.config.flag_policy))

        record = self._record(event.page_id, partition)
        # Time has reached this event: deadlines before it have passed, whenever ticks ran.
        effects = sweep(record, event.created_at) if event.created_at else []
        effects += apply_event(record, event, classified, page, self.config.tracking, now)
        for effect in effects:
            if isinstance(effect, QuestionAnswered):
                m.answer_seconds.labels(platform=effect.platform).observe(effect.response_seconds)
        flags.extend(effect_flags(effects, page, now))
        record.applied = (partition, offset)
        if origin is not None:
            record.source = origin
        # Its view (metrics) at the time the page's own input has reached, as a tick would show it.
        self._mark_dirty(record, source, sweep_time(now, False, record.source, clocks))
        self._queue_flags(flags, partition, now, source, out)

    def _handle_tick(self, tick: Tick, source, out: BatchOutput) -> None:
        partition = source.message.partition
        idle_since = self.last_event_wall.get(partition, self.started_wall)
        trusted = tick.force or tick.at - idle_since >= self.config.clock_idle_seconds
        if trusted:
            now = self._advance_clock(partition, tick.at, from_wall=True)
        else:
            now = self._clock_of(partition)
        if self.clock_table.get(str(partition)) != now:
            out.clocks[partition] = (now, source)
        self._load_partition(partition)
        clocks = self.source_clocks.get(partition, {})
        for page_id, record in list(self.records.items()):
            if record.partition != partition:
                continue
            at = sweep_time(now, trusted, record.source, clocks)
            effects = sweep(record, at) if at > 0 else []
            if effects:
                self._mark_dirty(record, source, at)
                self._queue_flags(effect_flags(effects, self._page(page_id), at),
                                  partition, at, source, out)
            if at > 0:
                self.views[page_id] = page_view(record, at)
            else:  # nothing read from the page's input yet: show it, with nothing overdue
                self.views.setdefault(page_id, page_view(record, 0.0))
        self.metrics.stream_time.set(max(self.clock.values(), default=0.0))
        self.ticks += 1
        if self.ticks % PRUNE_EVERY_TICKS == 0:
            in_event_context(source)
            self._prune_seen(partition, now)

    def _queue_flags(
        self, flags: list[Flag], partition: int, now: float, source, out: BatchOutput
    ) -> None:
        for flag in flags:
            key = f"flag:{flag.flag_id}"
            if key in out.seen or self.seen.get(key) is not None:
                continue
            out.seen[key] = ([now, partition], source)
            out.sends.append((
                self.flags, flag.page_id.encode(),
                json.dumps(flag.to_dict(), ensure_ascii=False).encode(),
            ))
            out.flags.append(flag)

    async def _publish(self, out: BatchOutput) -> None:
        """Send the batch's outputs now (not at the next commit) and wait for the broker's acks."""
        pending = [
            await topic.send(key=key, value=value, force=True) for topic, key, value in out.sends
        ]
        if pending:
            await asyncio.gather(*pending)
        for flag in out.flags:
            self.metrics.flags.labels(page_id=flag.page_id, reason=flag.reason).inc()
            log.info("flag %s %s %s", flag.reason, flag.page_id, flag.link)

    def _store(self, out: BatchOutput) -> None:
        """The batch's table writes, once its outputs are out. Page states go first, but the
        changelogs are separate partitions and may land in any order after a crash; the repeat
        rule (streams/dedup.py) does not rely on the order: a `seen` entry whose page write was
        lost makes the message apply again."""
        self._flush_dirty()
        for partition, (now, source) in out.clocks.items():
            in_event_context(source)
            self.clock_table[str(partition)] = now
        for key, (value, source) in out.seen.items():
            in_event_context(source)
            self.seen[key] = value

    # --- state helpers --------------------------------------------------------------------------

    def _page(self, page_id: str):
        if page_id not in self.pages and page_id not in self.unregistered:
            # Unknown pages are processed all the same, and reported once as such.
            self.unregistered.add(page_id)
            page = self.pages.get(page_id)
            self.metrics.page_info.labels(
                page_id=page.page_id, platform=page.platform, name=page.name,
                municipality=page.municipality, category=page.category,
            ).set(1)
            log.warning("events from unregistered page %s; add it to the page registry", page_id)
        return self.pages.get(page_id)

    def _stored_record(self, page_id: str) -> PageRecord | None:
        """The page's record from the write-back cache, else the (recovered) table, else None."""
        record = self.records.get(page_id)
        if record is None:
            value = self.page_table.get(page_id)
            if value is not None:
                record = self.records[page_id] = PageRecord.from_value(value, self.config.tracking)
        return record

    def _record(self, page_id: str, partition: int) -> PageRecord:
        """The page's record: cached, stored, else new."""
        record = self._stored_record(page_id)
        if record is None:
            record = self.records[page_id] = PageRecord.new(page_id, partition, self.config.tracking)
        return record

    def _load_partition(self, partition: int) -> None:
        """Bring the partition's pages from the recovered table into the cache, once."""
        if partition in self.loaded_partitions:
            return
        for page_id, value in list(self.page_table.items()):
            if value is not None and int(value["partition"]) == partition:
                self._record(page_id, partition)
        self.loaded_partitions.add(partition)

    def _mark_dirty(self, record: PageRecord, source, now: float) -> None:
        # Written to the table once per batch, in the context of the page's latest event.
        self.dirty[record.state.page_id] = (record, source, now)

    def _flush_dirty(self) -> None:
        for page_id, (record, source, now) in self.dirty.items():
            in_event_context(source)
            self.page_table[page_id] = record.to_value()
            self.views[page_id] = page_view(record, now)
        self.dirty.clear()

    def _forget_partitions(self, revoked) -> None:
        """Partitions went to another worker: their table state may change there."""
        partitions = {tp.partition for tp in revoked if tp.topic == self.config.topics.events}
        for page_id in [p for p, r in self.records.items() if r.partition in partitions]:
            self.records.pop(page_id, None)
            self.views.pop(page_id, None)
        self.loaded_partitions -= partitions
        for partition in partitions:
            self.clock.pop(partition, None)
            self.source_clocks.pop(partition, None)

    def _clock_of(self, partition: int) -> float:
        if partition not in self.clock:
            stored = self.clock_table.get(str(partition))
            self.clock[partition] = float(stored) if stored is not None else 0.0
        return self.clock[partition]

    def _advance_clock(self, partition: int, at: float, from_wall: bool = False) -> float:
        """The partition's stream clock: newest event time; the wall clock when idle."""
        current = self._clock_of(partition)
        if not from_wall:
            self.last_event_wall[partition] = self.wall_clock()
            if not at or at > self.wall_clock() + MAX_CLOCK_SKEW_SECONDS:
                return current
        if at > current:
            self.clock[partition] = at  # persisted by the next tick
        return self.clock[partition]

    def _prune_seen(self, partition: int, now: float) -> None:
        cutoff = now - SEEN_RETENTION_SECONDS
        for key, value in list(self.seen.items()):
            if value and int(value[1]) == partition and float(value[0]) < cutoff:
                del self.seen[key]

    # --- timer ----------------------------------------------------------------------------------

    async def _tick_timer(self) -> None:
        """Send a clock tick into every events partition this worker owns."""
        assigned = self.app.consumer.assignment() if self.app.consumer else set()
        owned = {tp.partition for tp in assigned if tp.topic == self.config.topics.events}
        now = self.wall_clock()
        for partition in sorted(owned):
            await self.events.send(key=TICK_KEY, value=tick_message(now), partition=partition)
        await self._export_lag(assigned)

    async def _export_lag(self, assigned) -> None:
        consumer = self.app.consumer
        for tp in assigned:
            try:
                highwater = consumer.highwater(tp)
                position = await consumer.position(tp)
            except Exception:  # lag is best effort; a rebalance may be under way
                continue
            if highwater is not None and position is not None:
                self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, highwater - position)
                )

    def page_views(self) -> list[tuple[str, PageView]]:
        return list(self.views.items())

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

