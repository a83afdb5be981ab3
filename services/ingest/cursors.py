"""Durable connector cursors in a compacted Kafka topic (DOZOR_TOPIC_INGEST_CURSORS).

One message per cursor change: key = cursor name (``vk-poll:vk:-170001``,
``telegram:offset``), value = JSON (null = forget the cursor). The topic is created with
``cleanup.policy=compact`` so Kafka keeps at least the newest value per key. On start a
connector reads the topic from the beginning to its end offsets; the last value per key wins.

A cursor is written only after the payloads it stands for were acknowledged by Kafka, so a
crash between the two re-sends some payloads (the worker de-duplicates them by canonical event
id) and never skips any. Only one process should write a given key (one poller per pages set).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.ingest.producer import RawProducer

log = logging.getLogger(__name__)


async def ensure_cursor_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create the compacted cursor topic unless it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = await admin.list_topics()
        if topic in existing:
            return
        try:
            await admin.create_topics([NewTopic(
                topic, num_partitions=partitions, replication_factor=1,
                topic_configs={"cleanup.policy": "compact"},
            )])
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()


async def read_cursors(bootstrap: str, topic: str, timeout: float = 30.0) -> dict[str, Any]:
    """Every cursor in the topic: {key: newest value}; a key whose newest value is null is
    absent."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
        auto_offset_reset="earliest", fetch_max_wait_ms=100,
    )
    await consumer.start()
    cursors: dict[str, Any] = {}
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # a fresh client has no metadata yet
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return cursors
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            if loop.time() > deadline:
                raise TimeoutError(f"reading cursor topic {topic} took over {timeout}s")
            batch = await consumer.getmany(*tps, timeout_ms=200)
            for records in batch.values():
                for record in records:
                    key = record.key.decode() if record.key else None
                    if key is None:
                        continue
                    if record.value is None:
                        cursors.pop(key, None)
                        continue
                    try:
                        cursors[key] = json.loads(record.value)
                    except ValueError:
                        log.warning("cursor %s: unreadable value at offset %s ignored",
                                    key, record.offset)
    finally:
        await consumer.stop()
    return cursors


class CursorStore:
    """Cursors of one connector: loaded once at start, each change written and acknowledged."""

    def __init__(self, bootstrap: str, topic: str, producer: RawProducer) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.producer = producer
        self.values: dict[str, Any] = {}

    async def load(self) -> dict[str, Any]:
        """Create the topic if needed and read every cursor (last value per key wins)."""
        await ensure_cursor_topic(self.bootstrap, self.topic)
        self.values = await read_cursors(self.bootstrap, self.topic)
        return self.values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def commit(self, key: str, value: Any) -> None:
        """Store `value` for `key`; returns after Kafka acknowledged it (ProduceFailed if not)."""
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        await self.producer.send(self.topic, key, data)
        self.values[key] = value
