"""Helpers for tests that talk to a real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

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


def metric_samples(text: str, name: str) -> dict[tuple, float]:
    """{sorted label items: value} of one sample name in an exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25, message: str = ""):
    """Poll until `predicate()` returns a truthy value; returns it or fails the test."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except AssertionError:
            raise
        except Exception as exc:  # the process may not be up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}: last={last!r}")
