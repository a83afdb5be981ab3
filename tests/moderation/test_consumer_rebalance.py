"""Offsets across a rebalance, with a fake Kafka consumer (no broker): a partition revoked
while its batch is being stored, or whose commit failed on revocation, must not stay in the
pending offsets — aiokafka refuses every commit that names an unassigned partition
(IllegalStateError), which would stop all later commits until a restart."""

from __future__ import annotations

import asyncio
import json
import threading

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from services.moderation.consumer import ConsumerConfig, ModerationConsumer, _CommitOnRevoke
from services.moderation.store import IngestCounts

CONFIG = ConsumerConfig(bootstrap="", group="g", topic_flags="t.flags",
                        topic_updates="t.flag-updates", topic_events="t.events")
P0, P1 = TopicPartition("t.flags", 0), TopicPartition("t.flags", 1)


class FakeKafkaConsumer:
    """The part of AIOKafkaConsumer the moderation consumer uses for offsets, with
    aiokafka's refusal of a commit naming a partition that is not assigned."""

    def __init__(self, assigned) -> None:
        self.assigned = set(assigned)
        self.commits: list[dict] = []
        self.fail_next = 0

    def assignment(self):
        return set(self.assigned)

    async def commit(self, offsets):
        for tp in offsets:
            if tp not in self.assigned:
                raise IllegalStateError(f"Partition {tp} is not assigned")
        if self.fail_next:
            self.fail_next -= 1
            raise CommitFailedError("the group rebalanced")
        self.commits.append(dict(offsets))


class BlockingStore:
    """A store whose ingest waits for `release` (the batch is 'being stored')."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.block = False

    def ingest(self, flags, updates, events):
        if self.block:
            self.entered.set()
            assert self.release.wait(10)
        return IngestCounts(flags_new=len(flags))


class _Msg:
    def __init__(self, value: bytes, offset: int) -> None:
        self.value, self.offset, self.key = value, offset, None


def batch(make_flag, tp: TopicPartition, first: int, n: int) -> dict:
    return {tp: [_Msg(json.dumps(make_flag()).encode(), first + i) for i in range(n)]}


async def test_a_partition_revoked_while_its_batch_is_stored_does_not_stop_later_commits(make_flag):
    store = BlockingStore()
    consumer = ModerationConsumer(store, CONFIG)
    kafka = consumer.consumer = FakeKafkaConsumer({P0, P1})
    listener = _CommitOnRevoke(consumer)

    store.block = True
    storing = asyncio.create_task(consumer._store_batch(batch(make_flag, P1, 0, 5)))
    assert await asyncio.to_thread(store.entered.wait, 10)
    # the group rebalances meanwhile: P1 goes to another member
    await listener.on_partitions_revoked({P1})
    kafka.assigned = {P0}
    store.release.set()
    await storing
    store.block = False

    await consumer._store_batch(batch(make_flag, P0, 0, 3))
    await consumer.commit_stored()
    assert kafka.commits == [{P0: 3}]  # P1's offset is not ours to commit any more
    await consumer._store_batch(batch(make_flag, P0, 3, 2))
    await consumer.commit_stored()
    assert kafka.commits[-1] == {P0: 5}
    assert consumer._stored == {}


async def test_a_commit_that_fails_on_revocation_drops_the_revoked_partitions(make_flag):
    consumer = ModerationConsumer(BlockingStore(), CONFIG)
    kafka = consumer.consumer = FakeKafkaConsumer({P0, P1})
    await consumer._store_batch(batch(make_flag, P0, 0, 2))
    await consumer._store_batch(batch(make_flag, P1, 0, 4))
    kafka.fail_next = 1
    await _CommitOnRevoke(consumer).on_partitions_revoked({P1})
    assert kafka.commits == []
    assert consumer._stored == {P0: 2}  # P1 dropped whether or not the commit succeeded
    kafka.assigned = {P0}

    await consumer._store_batch(batch(make_flag, P0, 2, 1))
    await consumer.commit_stored()
    assert kafka.commits == [{P0: 3}]


async def test_a_failed_commit_keeps_only_the_still_assigned_offsets(make_flag):
    """A commit fails and a rebalance revokes a partition before the next one: the next
    commit names only what is still assigned."""
    consumer = ModerationConsumer(BlockingStore(), CONFIG)
    kafka = consumer.consumer = FakeKafkaConsumer({P0, P1})
    await consumer._store_batch(batch(make_flag, P0, 0, 2))
    await consumer._store_batch(batch(make_flag, P1, 0, 4))
    kafka.fail_next = 1
    await consumer.commit_stored()
    assert consumer._stored == {P0: 2, P1: 4}  # kept for the next try
    kafka.assigned = {P0}  # revoked without a listener call (e.g. the group was left)
    await consumer.commit_stored()
    assert kafka.commits == [{P0: 2}]
    assert consumer._stored == {}
