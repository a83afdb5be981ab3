"""A worker that restarts with records waiting reads every one of them and commits its input.

faust-streaming#596: once a worker has recovered its tables, Faust resumes the input partitions,
seeks them to their committed offsets, then clears the agents' queues. Records fetched during the
seek, and on a partition with no committed offset any fetched before it, were cleared and never
read again, and since Faust commits only a gap-free run of acked offsets, the partition was not
committed again either: a CI failure in which a restarted worker had processed every event yet
stayed 17 records "behind". streams/faust_tuning.py `close_seek_gaps` closes both holes; the
Dozor worker and this test's bare table app (tests/support/table_app.py) apply it.

The race needs records to come in around the seek. Here they are all in the topic before the app
starts, with table state in the changelog (with none, Faust starts its fetcher only after the
seek); 0.5 s pass between the resume and the seek (WAIT_BEFORE_SEEK), the seek takes 0.5 s
longer (SEEK_DELAY, a slow broker) and the agent 0.2 s per batch, so records are queued when the
queues are cleared. Without the correction (`DOZOR_TEST_SEEK_FIX=0`) two runs in three stored
168 to 394 of the 500 values and stopped there; with it, 5 runs in 5 stored and committed all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.streams.test_changelog_recovery import committed, start, table_size
from tests.support.observe import wait_for

pytestmark = pytest.mark.broker
RECORDS = 500
STATE = 10  # table keys in the changelog: with none, Faust starts its fetcher after the seek


async def fill(bootstrap: str, app: str) -> None:
    """RECORDS input records, and table state in the changelog as a restarted app finds it."""
    source, changelog = f"{app}-in", f"{app}-t-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1)
                                   for t in (source, changelog)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(STATE):  # one record per batch: the test broker's end offsets (ARCHITECTURE.md)
            await (await producer.send(changelog, key=f'"s{i}"'.encode(),
                                       value=f'"s{i}"'.encode(), partition=0))
        for i in range(RECORDS):
            await producer.send(source, key=b'"k"', value=f'"v{i}"'.encode(), partition=0)
        await producer.flush()
    finally:
        await producer.stop()


def test_records_fetched_during_the_seek_are_read_again_and_committed(kafka_bootstrap, tmp_path):
    app = f"r{uuid.uuid4().hex[:8]}"
    asyncio.run(fill(kafka_bootstrap, app))
    count_file = tmp_path / "app.count"
    process = start(kafka_bootstrap, app, count_file,
                    extra={"WAIT_BEFORE_SEEK": "0.5", "SEEK_DELAY": "0.5", "BATCH_DELAY": "0.2",
                           "SEEK_FIX": os.environ.get("DOZOR_TEST_SEEK_FIX", "1")})
    try:
        wait_for(lambda: table_size(count_file) is not None, timeout=90, message="app ready")
        wait_for(lambda: table_size(count_file) == STATE + RECORDS, timeout=60,
                 message=f"the {STATE} recovered keys and all {RECORDS} values stored "
                         "(records dropped during the seek)")
        wait_for(lambda: asyncio.run(committed(kafka_bootstrap, app, f"{app}-in")) == RECORDS,
                 timeout=30, message="the whole input committed")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
