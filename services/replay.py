"""`dozor replay FILE`: produce a JSONL file of platform payloads into the raw topic.

This is what the webhook connector does with live callbacks: each line is sent as it is
(bytes unchanged, malformed lines included — the worker dead-letters them), keyed by the
community so that one page's events keep their order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer


@dataclass
class ReplayReport:
    sent: int = 0
    unkeyed: int = 0


def payload_key(line: bytes) -> bytes | None:
    """The partition key of a raw VK payload: its community id; None when unreadable."""
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
            return str(abs(group)).encode()
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
    try:
        for line in lines:
            key = payload_key(line)
            report.unkeyed += key is None
            await producer.send(topic, value=line, key=key)
            report.sent += 1
            if progress is not None:
                progress.update(1)
            if rate:
                await asyncio.sleep(1.0 / rate)
        await producer.flush()
    finally:
        await producer.stop()
    return report
