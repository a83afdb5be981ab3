"""`dozor replay FILE`: produce a JSONL file of platform payloads into the raw topic.

This is what the webhook connector does with live callbacks: each line is sent as it is
(bytes unchanged, malformed lines included — the worker dead-letters them), keyed by the
community so that one page's events keep their order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.ticks import TICK_KEY, tick_message


@dataclass
class ReplayReport:
    sent: int = 0
    unkeyed: int = 0
    #: partition → offset after the last message sent there (what a consumer must reach).
    next_offsets: dict[int, int] = field(default_factory=dict)


def payload_key(line: bytes) -> bytes | None:
    """The partition key of a raw VK payload: its page id (`vk:-<community id>`, as the live
    connectors key it), so replayed and live payloads of a page share a raw partition; None
    when unreadable."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if isinstance(data, dict):
        group = data.get("group_id")
        obj = data.get("object")
        if group is None and isinstance(obj, dict) and isinstance(obj.get("owner_id"), int):
            group = abs(obj["owner_id"])
        if isinstance(group, int):
            return f"vk:-{abs(group)}".encode()
    return None


def read_lines(path: Path) -> list[bytes]:
    """Non-empty lines of a JSONL file, as bytes."""
    return [line for line in path.read_bytes().splitlines() if line.strip()]


async def replay_lines(
    bootstrap: str,
    topic: str,
    lines: Iterable[bytes],
    rate: float | None = None,
    progress=None,
) -> ReplayReport:
    """Send lines to `topic`; `rate` events/s paces a live-looking replay (None = at once)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    report = ReplayReport()
    pending = []
    try:
        for line in lines:
            key = payload_key(line)
            report.unkeyed += key is None
            pending.append(await producer.send(topic, value=line, key=key))
            report.sent += 1
            if progress is not None:
                progress.update(1)
            if rate:
                await asyncio.sleep(1.0 / rate)
        await producer.flush()
        for metadata in await asyncio.gather(*pending):
            report.next_offsets[metadata.partition] = max(
                report.next_offsets.get(metadata.partition, 0), metadata.offset + 1
            )
    finally:
        await producer.stop()
    return report


async def wait_until_consumed(
    bootstrap: str, group: str, topic: str, next_offsets: dict[int, int], timeout: float = 120.0
) -> None:
    """Wait until consumer group `group` has committed `topic` up to `next_offsets`.

    The targets come from the producer's own acknowledgements (ReplayReport.next_offsets)
    rather than from the broker's end offsets, so messages sent later by others do not count.
    """
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tps = {TopicPartition(topic, p): target for p, target in next_offsets.items()}
    try:
        while True:
            committed = await admin.list_consumer_group_offsets(group, partitions=list(tps))
            behind = {
                tp.partition: target - (committed[tp].offset if tp in committed else -1)
                for tp, target in tps.items()
                if (committed[tp].offset if tp in committed else -1) < target
            }
            if not behind:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"group {group} still behind on {topic}: {behind}")
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def advance_clock(bootstrap: str, clock_topic: str, at: float) -> int:
    """Send a forced clock tick to every partition of the clock topic; returns how many.

    Closes a replayed period: deadlines up to `at` pass as if the period had been lived.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        partitions = await producer.partitions_for(clock_topic)
        for partition in sorted(partitions):
            await producer.send(clock_topic, key=TICK_KEY, value=tick_message(at, force=True),
                                partition=partition)
        await producer.flush()
        return len(partitions)
    finally:
        await producer.stop()
