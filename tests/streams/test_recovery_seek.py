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
The second test covers the third hole (a fetch that comes back after the seek), the third
`put_back` itself.
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


def read_and_commit_everything(bootstrap: str, tmp_path, extra: dict[str, str]) -> None:
    """Start the table app on a filled input; it must store and commit every record."""
    app = f"r{uuid.uuid4().hex[:8]}"
    asyncio.run(fill(bootstrap, app))
    count_file = tmp_path / "app.count"
    process = start(bootstrap, app, count_file,
                    extra={**extra, "SEEK_FIX": os.environ.get("DOZOR_TEST_SEEK_FIX", "1")})
    try:
        wait_for(lambda: table_size(count_file) is not None, timeout=90, message="app ready")
        wait_for(lambda: table_size(count_file) == STATE + RECORDS, timeout=60,
                 message=f"the {STATE} recovered keys and all {RECORDS} values stored "
                         "(records dropped during the seek)")
        wait_for(lambda: asyncio.run(committed(bootstrap, app, f"{app}-in")) == RECORDS,
                 timeout=30, message="the whole input committed")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_records_fetched_during_the_seek_are_read_again_and_committed(kafka_bootstrap, tmp_path):
    read_and_commit_everything(kafka_bootstrap, tmp_path,
                               {"WAIT_BEFORE_SEEK": "0.5", "SEEK_DELAY": "0.5", "BATCH_DELAY": "0.2"})


def test_records_a_fetch_brings_back_after_the_seek_are_read_again(kafka_bootstrap, tmp_path):
    """The third hole (streams/faust_tuning.py): a fetch waiting since before Recovery's seek
    returns the records it fetched from the rewound position while the flow is still stopped;
    getmany drops them and seeks to the committed offsets, which leaves this uncommitted input
    where the fetch took it, so `put_back` must move it back. Seen in CI as a restarted worker,
    with nothing committed before it, that never processed a record of its input. The flow
    stays stopped 1 s after the seek (SEEK_HOLD) so that the fetch comes back in that window:
    without `put_back` 8 runs of 11 stopped short, with it none of 14."""
    read_and_commit_everything(kafka_bootstrap, tmp_path, {"SEEK_HOLD": "1.0"})


def test_put_back_moves_a_partition_back_only_where_no_seek_moved_it_since(kafka_bootstrap):
    """`put_back` on a real aiokafka consumer: the fetch's partitions go back to its first offset
    unless their position is no longer just past its last one (another seek won)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.faust_tuning import put_back

    async def scenario() -> tuple[TopicPartition, TopicPartition, list, dict]:
        a, b, c = (TopicPartition(f"r{uuid.uuid4().hex[:8]}", 0) for _ in range(3))
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(tp.topic, num_partitions=1, replication_factor=1)
                                       for tp in (a, b)])
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False,
                                    group_id=a.topic)
        await consumer.start()
        try:
            consumer.assign([a, b])
            consumer.seek(a, 10)  # as left by a fetch of 7..9
            consumer.seek(b, 3)   # a seek moved it after the fetch of 7..9
            moved = put_back(consumer, {a: (7, 9), b: (7, 9), c: (7, 9)})  # c: not assigned
            return a, b, moved, {tp: await consumer.position(tp) for tp in (a, b)}
        finally:
            await consumer.stop()

    a, b, moved, positions = asyncio.run(scenario())
    assert moved == [a]
    assert positions == {a: 7, b: 3}
