"""Faust rebuilds a table from its changelog completely after a SIGKILL, on the test broker.

The worker's delivery guarantee rests on this (docs/ARCHITECTURE.md, "Delivery guarantees").
Tansu reports a partition's end offset as the first offset of its last record batch + 1, and
Faust's recovery stops at the end offset, so with multi-record batches a restarted app lost the
newest changelog records (464 of 500 keys came back). The worker's test environment
(`tests/support/worker.py`) therefore sends one record per batch on Tansu; this test runs a bare
Faust table with that same environment, kills it and counts what a new process recovers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support.observe import wait_for
from tests.support.worker import REPO, broker_settings

pytestmark = pytest.mark.broker
KEYS = 500


def start(bootstrap: str, app: str, count_file: Path,
          extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOZOR_")}
    env.update(BOOTSTRAP=bootstrap, APP=app, COUNT_FILE=str(count_file), PYTHONUNBUFFERED="1")
    env.update(broker_settings())
    env.update(extra or {})
    log = open(count_file.with_suffix(".log"), "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.table_app", "worker", "-l", "warn"], cwd=REPO,
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def table_size(count_file: Path) -> int | None:
    lines = count_file.read_text().split() if count_file.exists() else []
    return int(lines[-1]) if lines else None


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    """The offset the app's consumer group committed on partition 0 of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(KEYS):  # one partition: its changelog partition takes every write
            await producer.send(topic, key=b'"k"', value=f'"v{i}"'.encode(), partition=0)
        await producer.flush()
    finally:
        await producer.stop()


def test_a_killed_app_recovers_every_table_key(kafka_bootstrap, tmp_path):
    app = f"c{uuid.uuid4().hex[:8]}"
    first_count, second_count = tmp_path / "first.count", tmp_path / "second.count"
    first = start(kafka_bootstrap, app, first_count)
    second = None
    try:
        wait_for(lambda: table_size(first_count) is not None, timeout=90, message="app ready")
        asyncio.run(produce(kafka_bootstrap, f"{app}-in"))
        wait_for(lambda: table_size(first_count) == KEYS, timeout=60, message="every key stored")
        # Every input offset committed: the new process cannot re-read the input, so whatever
        # it holds comes from the changelog alone.
        wait_for(lambda: asyncio.run(committed(kafka_bootstrap, app, f"{app}-in")) == KEYS,
                 timeout=30, message="the input offsets committed")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        second = start(kafka_bootstrap, app, second_count)
        wait_for(lambda: table_size(second_count) is not None, timeout=90, message="restarted")
        # Waits out a slow recovery; a lost key stays lost (nothing re-reads the input).
        wait_for(lambda: table_size(second_count) == KEYS, timeout=30,
                 message="every key recovered (keys lost in the changelog recovery)")
        assert table_size(second_count) == KEYS
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
