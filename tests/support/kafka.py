"""Reading and writing topics of the test broker from a test."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.replay import read_lines, replay_lines


def replay_file(path: Path, bootstrap: str, topic: str = "dozor.raw.vk") -> int:
    """Produce every line of a JSONL file into `topic`; returns how many were sent."""
    report = asyncio.run(replay_lines(bootstrap, topic, read_lines(Path(path))))
    return report.sent


async def _consume(bootstrap: str, topic: str, until, timeout: float) -> list:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    messages: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                messages.extend(records)
            if until(messages):
                break
    finally:
        await consumer.stop()
    return messages


def consume(bootstrap: str, topic: str, until=lambda msgs: False, timeout: float = 60.0) -> list:
    """Read `topic` from the start until `until(messages)` is true or `timeout` passes."""
    return asyncio.run(_consume(bootstrap, topic, until, timeout))


def consume_json(bootstrap: str, topic: str, until=lambda objs: False, timeout: float = 60.0):
    """Like `consume`, values decoded as JSON."""
    msgs = consume(bootstrap, topic, lambda m: until([json.loads(x.value) for x in m]), timeout)
    return [json.loads(m.value) for m in msgs]


def produce(bootstrap: str, topic: str, key: str, values: list[bytes]) -> None:
    """Send `values` to `topic` with `key`, each acknowledged by the broker (acks=all)."""
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value=value, key=key.encode())
        finally:
            await producer.stop()

    asyncio.run(run())
