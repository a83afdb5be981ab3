"""The moderation consumer: flags, flag updates and canonical events from Kafka into the store.

Order per batch, which is what makes a crash harmless:

1. ``getmany`` a batch from the three topics;
2. decode it (a record that is not JSON of the expected shape is logged, counted in
   ``dozor_moderation_invalid_records_total`` and skipped — it never stops the consumer);
3. write the whole batch in ONE database transaction (the synchronous store, in a thread);
4. only then commit the offsets (at once, or at most every ``commit_interval`` seconds).

A crash after 3 and before 4 re-reads the batch; flags are upserted by ``flag_id`` and
updates by ``update_id``, so the re-read stores nothing twice. A failed database write is
retried from the first offset of the batch after a pause; nothing is committed past it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from sqlalchemy.exc import InterfaceError, OperationalError

from streams.ticks import TICK_KEY
from services.moderation.store import IngestCounts, ModerationStore, item_row

log = logging.getLogger(__name__)

UPDATE_KINDS = ("answered", "edited", "deleted", "restored", "spike_ended")


@dataclass(frozen=True)
class ConsumerConfig:
    """Plain values from Settings (see services/moderation/service.py)."""

    bootstrap: str
    group: str
    topic_flags: str
    topic_updates: str
    topic_events: str
    session_timeout: float = 10.0
    heartbeat: float = 2.0
    fetch_max_wait: float = 0.1
    max_records: int = 2000
    commit_interval: float = 0.0
    thread_retention_days: float = 30.0
    prune_interval: float = 3600.0
    retry_max_seconds: float = 30.0


class InvalidRecord(ValueError):
    """A consumed record that is not what its topic carries."""


def decode_flag(value: bytes) -> dict:
    record = json.loads(value)
    if not isinstance(record, dict):
        raise InvalidRecord("not a JSON object")
    item_row(record, 0.0)  # raises for a record that is not a flag
    json.dumps(record, allow_nan=False)  # NaN / Infinity: JSON the database cannot store
    return record


def decode_update(value: bytes) -> dict:
    record = json.loads(value)
    if not isinstance(record, dict):
        raise InvalidRecord("not a JSON object")
    for name in ("update_id", "flag_id", "kind"):
        if not isinstance(record.get(name), str) or not record[name]:
            raise InvalidRecord(f"no {name}")
    if record["kind"] not in UPDATE_KINDS:
        raise InvalidRecord(f"unknown kind {record['kind']!r}")
    if len(record["flag_id"]) > 24 or len(record["update_id"]) > 64:
        raise InvalidRecord("flag_id or update_id too long")
    float(record.get("at") or 0.0)
    if record.get("scores") is not None and not isinstance(record["scores"], dict):
        raise InvalidRecord("scores is not an object")
    if record.get("details") is not None and not isinstance(record["details"], dict):
        raise InvalidRecord("details is not an object")
    json.dumps(record, allow_nan=False)
    return record


def decode_event(value: bytes) -> dict:
    record = json.loads(value)
    if not isinstance(record, dict):
        raise InvalidRecord("not a JSON object")
    for name in ("page_id", "item_id", "kind"):
        if not isinstance(record.get(name), str):
            raise InvalidRecord(f"no {name}")
    float(record.get("created_at") or 0.0)
    return record


@dataclass
class Batch:
    flags: list[dict]
    updates: list[dict]
    events: list[dict]
    invalid: dict[str, int]


def split_batch(config: ConsumerConfig, records_by_tp: dict) -> Batch:
    """Decode a ``getmany`` result by topic; invalid records are counted and logged."""
    batch = Batch([], [], [], {})
    decoders = {
        config.topic_flags: (decode_flag, batch.flags),
        config.topic_updates: (decode_update, batch.updates),
        config.topic_events: (decode_event, batch.events),
    }
    # flags before updates before events is the store's order anyway; within a topic the
    # records keep their partition order
    for tp, records in records_by_tp.items():
        decoder, out = decoders[tp.topic]
        for message in records:
            if tp.topic == config.topic_events and message.key == TICK_KEY:
                continue  # clock ticks (the events topic carried them until 2026-12-06)
            try:
                out.append(decoder(message.value))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                batch.invalid[tp.topic] = batch.invalid.get(tp.topic, 0) + 1
                log.warning("skipping invalid record %s[%d]@%d: %s", tp.topic, tp.partition,
                            message.offset, exc)
    return batch


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, consumer: ModerationConsumer) -> None:
        self.owner = consumer

    async def on_partitions_revoked(self, revoked):
        # what is stored must be committed before another member takes the partitions
        try:
            await self.owner.commit_stored()
        finally:
            # committed or not, these offsets are no longer ours to commit: the new owner
            # re-reads from the group's committed offset (harmless: upserts are idempotent)
            self.owner.forget(revoked)

    async def on_partitions_assigned(self, assigned):
        pass


class ModerationConsumer:
    """Consume the three topics into ``store`` until ``stop`` is set.

    ``on_batch(counts)`` is called after each stored batch (metrics);
    ``on_invalid(topic, n)`` for skipped records.
    """

    def __init__(self, store: ModerationStore, config: ConsumerConfig, *,
                 on_batch: Callable[[IngestCounts], None] | None = None,
                 on_invalid: Callable[[str, int], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self.on_batch = on_batch
        self.on_invalid = on_invalid
        self.clock = clock
        self.consumer: AIOKafkaConsumer | None = None
        self._stored: dict[TopicPartition, int] = {}  # next offsets whose rows are committed
        self._last_commit = 0.0
        self._last_prune = 0.0
        self.batches = 0

    def _make_consumer(self) -> AIOKafkaConsumer:
        c = self.config
        return AIOKafkaConsumer(
            bootstrap_servers=c.bootstrap,
            group_id=c.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(c.session_timeout * 1000),
            heartbeat_interval_ms=int(c.heartbeat * 1000),
            fetch_max_wait_ms=int(c.fetch_max_wait * 1000),
            max_poll_records=c.max_records,
        )

    def forget(self, partitions) -> None:
        """Drop the stored offsets of ``partitions`` (revoked: another member owns them now)."""
        for tp in partitions:
            self._stored.pop(tp, None)

    def _assigned(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """The offsets of the partitions this member still owns. aiokafka refuses a commit
        that names any other partition (IllegalStateError), so one revoked partition left in
        the pending offsets would stop every later commit."""
        assigned = self.consumer.assignment() if self.consumer is not None else set()
        kept = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if len(kept) < len(offsets):
            log.info("not committing offsets of partitions no longer assigned: %s",
                     sorted(f"{tp.topic}[{tp.partition}]" for tp in offsets if tp not in kept))
        return kept

    async def commit_stored(self) -> None:
        """Commit the offsets of everything stored so far (nothing beyond), for the
        partitions still assigned; those of revoked partitions are dropped."""
        if self._stored and self.consumer is not None:
            offsets, self._stored = self._assigned(self._stored), {}
            if not offsets:
                return
            try:
                await self.consumer.commit(offsets)
            except Exception:
                # not fatal: the next commit covers it; a crash re-reads (harmless). Only
                # partitions still assigned go back (a rebalance may have run meanwhile).
                log.warning("offset commit failed; will retry", exc_info=True)
                for tp, offset in self._assigned(offsets).items():
                    self._stored.setdefault(tp, offset)
                return
            self._last_commit = time.monotonic()

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; commit what is stored on the way out."""
        self.consumer = self._make_consumer()
        self.consumer.subscribe(
            [self.config.topic_flags, self.config.topic_updates, self.config.topic_events],
            listener=_CommitOnRevoke(self),
        )
        await self.consumer.start()
        self._last_commit = time.monotonic()  # the interval counts from the start
        if ready is not None:
            ready.set()
        failures = 0
        try:
            while not stop.is_set():
                records = await self.consumer.getmany(timeout_ms=500, max_records=self.config.max_records)
                if records:
                    try:
                        await self._store_batch(records)
                        failures = 0
                    except Exception:
                        failures += 1
                        pause = min(self.config.retry_max_seconds, 0.5 * 2 ** min(failures, 8))
                        log.exception("cannot store a batch; retrying it in %.1f s", pause)
                        assigned = self.consumer.assignment()
                        for tp, messages in records.items():
                            if tp in assigned:  # seek refuses a partition revoked meanwhile
                                self.consumer.seek(tp, messages[0].offset)
                        try:
                            await asyncio.wait_for(stop.wait(), pause)
                        except asyncio.TimeoutError:
                            pass
                        continue
                if self._stored and (self.config.commit_interval <= 0 or
                                     time.monotonic() - self._last_commit >= self.config.commit_interval):
                    await self.commit_stored()
                await self._maybe_prune()
            await self.commit_stored()
        finally:
            await self.consumer.stop()

    async def _store_batch(self, records: dict) -> None:
        batch = split_batch(self.config, records)
        for topic, n in batch.invalid.items():
            if self.on_invalid:
                self.on_invalid(topic, n)
        counts = IngestCounts()
        if batch.flags or batch.updates or batch.events:
            try:
                counts = await asyncio.to_thread(self.store.ingest, batch.flags, batch.updates,
                                                 batch.events)
            except (OperationalError, InterfaceError):
                raise  # the database is away: the whole batch is retried
            except Exception:
                # one record the database refuses must not block the partition forever:
                # store the batch record by record and skip the ones refused on their own
                log.warning("a batch was refused; storing it record by record", exc_info=True)
                counts = await asyncio.to_thread(self._ingest_one_by_one, batch)
        # the rows are committed: these offsets may be committed now — for the partitions
        # still assigned (a rebalance may have revoked some while the batch was stored)
        assigned = self.consumer.assignment() if self.consumer is not None else None
        for tp, messages in records.items():
            if assigned is None or tp in assigned:
                self._stored[tp] = messages[-1].offset + 1
        self.batches += 1
        if self.on_batch:
            self.on_batch(counts)

    def _ingest_one_by_one(self, batch: Batch) -> IngestCounts:
        total = IngestCounts()
        work = ([(self.config.topic_flags, ([r], [], [])) for r in batch.flags]
                + [(self.config.topic_updates, ([], [r], [])) for r in batch.updates]
                + [(self.config.topic_events, ([], [], [r])) for r in batch.events])
        for topic, args in work:
            try:
                counts = self.store.ingest(*args)
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:
                log.warning("skipping a record of %s the store refuses: %s", topic, exc)
                if self.on_invalid:
                    self.on_invalid(topic, 1)
                continue
            total.flags_new += counts.flags_new
            total.events += counts.events
            total.updates_pending += counts.updates_pending
            for kind, n in counts.updates_applied.items():
                total.updates_applied[kind] = total.updates_applied.get(kind, 0) + n
        return total

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self.config.prune_interval:
            return
        self._last_prune = now
        cutoff = self.clock() - self.config.thread_retention_days * 86400.0
        try:
            removed = await asyncio.to_thread(self.store.prune_thread_events, cutoff)
            await asyncio.to_thread(self.store.prune_sessions)
        except Exception:
            log.warning("pruning thread events failed; will retry", exc_info=True)
            return
        if removed:
            log.info("pruned %d thread events older than %.0f days", removed,
                     self.config.thread_retention_days)
