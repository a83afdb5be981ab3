"""The Faust application: topics, tables, the agent and the timer, as glue around plain logic.

One agent, `process`, reads the raw topics (VK, Telegram; the connectors key them by page, so
one partition number owns a page) and the clock topic, in batches (up to `batch_size` or
`batch_wait` seconds):

* `streams.inputs.InputDecoder` turns raw payloads into canonical events; invalid ones go to
  the dead-letter topic with the reason (it never stops on bad input), well-formed ones Dozor
  does not track are counted and skipped;
* the comments that need it are classified off the event loop, `streams.process.BatchStep`
  applies the batch (repeats, tracking, flags, flag updates), and this module publishes its
  outputs (the canonical events too, for the moderation queue), waits for the broker's
  acknowledgements, and only then stores its table writes;
* clock ticks, sent by a timer into each owned partition of the clock topic, run the SLA
  sweep inside the partition's own stream, so its table writes land in the right changelog.

Delivery guarantees: docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import faust
from faust.streams import _current_event  # the event whose partition a table write goes to

from models.memory import FreedMemoryReturner
from streams.classify import Classified, classify_events, needs_classification
from streams.dead_letter import DeadLetterLimitExceeded
from streams.events import CanonicalEvent
from streams.faust_tuning import close_seek_gaps, set_fetch_max_wait
from streams.flags import FlagPolicy
from streams.inputs import DecodedBatch, InputDecoder
from streams.metrics import DozorMetrics
from streams.pages import PageRegistry
from streams.process import CLASSIFIED, DEAD_LETTERS, EVENTS, FLAG_UPDATES, FLAGS, BatchResult
from streams.process import BatchStep, Normalizer, Tables
from streams.ticks import TICK_KEY, tick_message
from streams.topics import TopicNames
from streams.track import PageView, TrackingPolicy

__all__ = ["DozorStreams", "StreamConfig"]
log = logging.getLogger(__name__)


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
    producer_max_batch_size: int = 16384  # 1 with Tansu: services/settings.py says why
    producer_linger: float = 0.005
    dead_letter_max_consecutive: int = 1000
    #: "rocksdb": the pages table on disk under data_dir; "memory": in the heap.
    table_store: str = "rocksdb"
    #: The step's cache of parsed page records, in bytes of their JSON (0: no limit).
    page_cache_bytes: int = 8 * 2**20


#: RocksDB memory per partition's store of the pages table: Faust's defaults (3 write buffers
#: of 64 MiB, a 2 GiB block cache) are sized for a dedicated server; the step's page cache
#: answers most reads, so small buffers do (docs/ARCHITECTURE.md, "Memory").
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 2**20,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 2**20,
    "block_cache_size": 8 * 2**20,
    "driver": "rocksdict",
}


class Classifier(Protocol):
    """What the stream needs of a model (models.classifier.TextClassifier has it)."""

    def predict(self, texts: list[str]) -> list[dict[str, float]]: ...
    def predict_with_topics(
        self, texts: list[str]
    ) -> tuple[list[dict[str, float]], list[str | None]]: ...
    def labels_above(self, scores: dict[str, float]) -> list[str]: ...


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
        self.lag_exported: set[tuple[str, str]] = set()  # (topic, partition) of consumer_lag
        #: malloc_trim on every tick: page records of ever larger sizes are parsed, encoded and
        #: freed, and glibc keeps the freed chunks (models/memory.py; docs/ARCHITECTURE.md,
        #: "Memory").
        self.return_freed_memory = FreedMemoryReturner(every=1)
        self.app = self._build_app()
        self.step = BatchStep(
            Tables(pages=self.page_table, clock=self.clock_table, read_page=self._read_page),
            pages, config.tracking, config.flag_policy, wall_clock, config.clock_idle_seconds,
            cache_bytes=config.page_cache_bytes,
        )

    def _build_app(self) -> faust.App:
        c = self.config
        set_fetch_max_wait(c.fetch_max_wait)
        close_seek_gaps()
        app = faust.App(
            c.app_id,
            broker=broker_url(c.bootstrap),
            store="memory://",  # the clock table; pages: table_store. Rebuilt from changelogs
            datadir=str(c.data_dir),
            topic_partitions=c.partitions,
            web_enabled=False,
            broker_session_timeout=c.session_timeout,
            broker_heartbeat_interval=c.heartbeat,
            broker_request_timeout=max(30.0, c.session_timeout * 2),
            broker_rebalance_timeout=max(30.0, c.session_timeout * 2),
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_max_batch_size=c.producer_max_batch_size,
            producer_linger=c.producer_linger,
            table_standby_replicas=0,
            key_serializer="json",
            value_serializer="json",
        )
        t = c.topics
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
               "value_serializer": "raw"}
        # One agent over the raw topics and the clock: same partition count, so Faust assigns
        # partition p of each (and of the tables' changelogs) to the same worker.
        self.inputs = app.topic(t.raw_vk, t.raw_telegram, t.clock, **raw)
        self.decoder = InputDecoder(Normalizer.for_pages(self.pages),
                                    {t.raw_vk: "vk", t.raw_telegram: "telegram"},
                                    c.dead_letter_max_consecutive)
        self.clock_topic = app.topic(t.clock, **raw)
        # BatchResult.sends name their topic by role; _publish hands them to the producer itself
        self.outputs = {EVENTS: t.events, CLASSIFIED: t.classified, FLAGS: t.flags,
                        FLAG_UPDATES: t.flag_updates, DEAD_LETTERS: t.dead_letters}
        table = {"default": None, "key_type": str, "partitions": c.partitions}
        # Page records are JSON bytes: Faust picks the raw codec for a bytes value type, so they
        # go to the changelog (and come back from it) as they are. On RocksDB they stay on disk
        # (one store per partition, rebuilt from the changelog at start: discard_local_tables)
        # and the step caches the ones in use.
        if c.table_store == "rocksdb":
            # "rocksdb:pages": a store URL without a path is falsy, and Faust then silently uses
            # the app's store; this one names the files (tabledir/pages-<partition>.db).
            store = {"store": "rocksdb:pages", "options": dict(ROCKSDB_OPTIONS)}
        elif c.table_store == "memory":
            store = {"store": "memory://"}
        else:
            raise ValueError(f"table store {c.table_store!r}: 'rocksdb' or 'memory'")
        self.page_table = app.Table("pages", **{**table, **store, "value_type": bytes})
        self.clock_table = app.Table("clock", **table)  # one small value per partition
        app.agent(self.inputs, name="process")(self._process_agent)
        app.timer(c.sweep_interval)(self._tick_timer)

        @app.on_partitions_revoked.connect
        async def on_revoked(app, revoked, **kwargs) -> None:
            self.step.forget_partitions(
                {tp.partition for tp in revoked if tp.topic == self.config.topics.clock}
            )

        return app

    # --- agent: classify, flag, track -----------------------------------------------------------

    async def _process_agent(self, stream) -> None:
        """Batches of the inputs, two in flight: batch N+1 is classified while batch N
        publishes and stores (docs/ARCHITECTURE.md, "Where the worker's time goes").

        `take_events` acks a batch's events when this body returns, before batch N is stored;
        each event's message gets one more reference here, so that ack does not make its
        offset committable: `_finish` acks it again once the batch is stored. A batch's step
        runs only after the previous batch is stored (its repeat check reads those writes).
        """
        c = self.config
        inflight: asyncio.Task | None = None
        try:
            async for batch in stream.take_events(c.batch_size, within=c.batch_wait):
                for event in batch:
                    event.message.incref()
                t0 = time.perf_counter()
                decoded = DecodedBatch()
                try:
                    for event in batch:
                        m = event.message
                        self.decoder.add(decoded, m.topic, m.partition, m.offset, event.key,
                                         event.value, event)
                except DeadLetterLimitExceeded as exc:
                    log.critical("%s", exc)
                    await self.app.crash(exc)
                    return
                records = decoded.records
                results = await self._classify(self.step.to_classify(records))
                self.metrics.stage_seconds.labels(stage="classify").observe(
                    time.perf_counter() - t0)
                if inflight is not None:
                    await inflight  # batch N stored and acked; raises what it raised
                t1 = time.perf_counter()
                out = self.step.run(records, results)
                out.sends[:0] = decoded.dead_letters
                out.metrics += decoded.metrics
                self.metrics.stage_seconds.labels(stage="step").observe(time.perf_counter() - t1)
                inflight = asyncio.ensure_future(self._finish(stream, batch, out))
        finally:
            if inflight is not None:
                await inflight

    async def _finish(self, stream, batch: list[faust.types.EventT], out: BatchResult) -> None:
        """Publish a batch's outputs and wait for the acks, then store its table writes, then
        make its input offsets committable: the delivery guarantee (docs/ARCHITECTURE.md,
        tests/unit/test_process.py)."""
        stage = self.metrics.stage_seconds
        t0 = time.perf_counter()
        await self._publish(out)
        t1 = time.perf_counter()
        self._store(out)
        stage.labels(stage="publish").observe(t1 - t0)
        stage.labels(stage="store").observe(time.perf_counter() - t1)
        for event in batch:
            await stream.ack(event)

    async def _classify(self, events: list[CanonicalEvent]) -> dict[str, Classified]:
        if not any(needs_classification(e) for e in events):
            return {}
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        results = await loop.run_in_executor(
            self.executor, classify_events, events, self.classifier.predict,
            self.classifier.labels_above, self.classifier.predict_with_topics,
        )
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(results))
        return results

    async def _publish(self, out: BatchResult) -> None:
        """Send the batch's outputs now (not at the next commit) and wait for the broker's acks.

        Straight to the app's producer (the aiokafka one under Faust's): Faust's Topic.send wraps
        each record in a channel message, a future and sensor calls, ~6 % of the worker's CPU at
        ~1,000 records/s for nothing this agent uses (bench/bench_pipeline.py, README).
        """
        producer, topics = self.app.producer, self.outputs
        pending = [
            await producer.send(topics[s.role], s.key, s.value, None, None, None)
            for s in out.sends
        ]
        if pending:
            await asyncio.gather(*pending)
        self.metrics.apply(out.metrics)
        for flag in out.flags:
            log.info("flag %s %s %s", flag.reason, flag.page_id, flag.link)
        for update in out.updates:
            log.info("flag update %s %s %s", update.kind, update.page_id, update.flag_id)

    def discard_local_tables(self) -> list[Path]:
        """Delete the pages table's RocksDB files left by an earlier run, before the app starts:
        the table is rebuilt from its changelog, as with the memory store.

        Kept, they would be trusted from their own recorded offset on, yet after a crash they
        may hold a batch's writes that never reached the changelog (the table writes locally
        at once and sends to the changelog after); the worker re-reads that batch as applied,
        commits past it, and a later owner of the partition would rebuild the page without
        it. Returns what was deleted."""
        if self.config.table_store != "rocksdb":
            return []
        store = self.page_table.data
        gone = sorted(Path(store.path).glob(f"{store.basename}-*.db"))
        for path in gone:
            shutil.rmtree(path)
        return gone

    def _read_page(self, page_id: str, ref) -> bytes | None:
        """A page's record from the table, read in the partition of the message `ref` (the
        page's own: RocksDB keeps a store per partition)."""
        if ref is not None:
            in_event_context(ref)
        return self.page_table.get(page_id)

    def _store(self, out: BatchResult) -> None:
        """The batch's table writes, once its outputs are out, each filed in the changelog
        partition of the message that caused it. A page write carries the page's state, its
        newest applied message and its remembered ids in one record (streams/dedup.py)."""
        tables = {"pages": self.page_table, "clock": self.clock_table}
        for write in out.writes:
            in_event_context(write.ref)
            tables[write.table][write.key] = write.value
        self.step.stored(out)

    # --- timer ----------------------------------------------------------------------------------

    async def _tick_timer(self) -> None:
        """Send a clock tick into every clock partition this worker owns."""
        assigned = self.app.consumer.assignment() if self.app.consumer else set()
        owned = {tp.partition for tp in assigned if tp.topic == self.config.topics.clock}
        now = self.wall_clock()
        for partition in sorted(owned):
            await self.clock_topic.send(key=TICK_KEY, value=tick_message(now), partition=partition)
        await self._export_lag(assigned)
        self.return_freed_memory()

    async def _export_lag(self, assigned) -> None:
        """The lag of every partition this worker owns; a partition it no longer owns loses
        its series (its new owner exports it)."""
        consumer = self.app.consumer
        owned = {(tp.topic, str(tp.partition)) for tp in assigned}
        for labels in self.lag_exported - owned:
            try:
                self.metrics.consumer_lag.remove(*labels)
            except KeyError:
                pass
        self.lag_exported = owned
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
        return list(self.step.views.items())

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        close = getattr(self.classifier, "close", None)  # e.g. a child process to stop
        if close is not None:
            close()
