"""Two corrections to Faust's aiokafka consumer, applied by `streams.app` before the app starts.

**Fetch wait.** Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` hard-coded.
Apache Kafka answers a fetch as soon as data is there, but some Kafka-protocol brokers (Tansu,
the embedded broker of the demo and the tests) hold every fetch for the full wait, which caps
each hop of the pipeline at one batch per 1.5 s. Dozor sets the wait from
`DOZOR_CONSUMER_FETCH_MAX_WAIT_SECONDS` instead (`set_fetch_max_wait`).

**The seek after recovery** (faust-streaming issue #596, open). When a worker has recovered its
tables, Faust resumes the input partitions, seeks them to their committed offsets, then clears
every agent's queue and lets the fetcher go on. Records fetched before the clear are dropped and
must be fetched again, which only the seek can bring about; two holes let some never come back:

* the fetcher runs *during* the seek, so records it fetches after the new position is set are
  cleared, and the position is already past them;
* a partition with no committed offset yet (a new group, or one the group never committed on)
  is not sought at all: aiokafka's `seek_to_committed` seeks only to offsets above 0 and leaves
  the others where the fetcher took them.

A third hole is a fetch under way when the flow stops. `Consumer.getmany` drops whatever it
returns once the flow has stopped and seeks to the committed offsets again; but the fetch may have
been served from the position a seek had just set (a fetch waits up to a second; Recovery's seek
can come and go meanwhile), and on a partition with no committed offset (or on a changelog
partition, which Faust never commits) that second seek does not move the position back.

In every case the records are lost to that worker, and as Faust commits only a gap-free run of
acked offsets, the partition is never committed again. Seen on the test broker as a restarted
worker that had processed every event yet stayed "behind" by the records it had dropped, and as
one that, with nothing committed before it, never processed a record of its input at all.
`close_seek_gaps` makes Recovery's seek stop the flow of records (Faust resumes it after the
clear) and seek uncommitted input partitions to their beginning, the position
`consumer_auto_offset_reset="earliest"` gave them, so the seek does what Faust expects of it:
records handled before it are read again and recognised as repeats (streams/dedup.py). And it
puts back what getmany drops: each partition of such a fetch goes back to the fetch's first
offset, unless a seek has moved it since (`put_back`).
"""

from __future__ import annotations

import logging

from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)

_fetch_max_wait_ms = 1500


def set_fetch_max_wait(seconds: float) -> None:
    """Use `seconds` as the fetch wait of every Faust worker consumer in this process."""
    global _fetch_max_wait_ms
    _fetch_max_wait_ms = max(1, int(seconds * 1000))
    thread_class = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_class._create_worker_consumer, "_dozor_patched", False):
        return
    original = thread_class._create_worker_consumer

    def _create_worker_consumer(self, transport):
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read by aiokafka's Fetcher on start
        return consumer

    _create_worker_consumer._dozor_patched = True
    thread_class._create_worker_consumer = _create_worker_consumer


def uncommitted_inputs(committed, acks_enabled_for) -> list:
    """The partitions of `committed` (partition → committed offset) that the seek must rewind:
    acked input partitions that aiokafka's `seek_to_committed` does not seek, i.e. with no
    committed offset (None, or negative as some brokers answer) or with 0. Changelog partitions
    are not acked; Faust's recovery positions them itself."""
    return sorted(
        (tp for tp, offset in committed.items()
         if (offset is None or offset <= 0) and acks_enabled_for(tp.topic)),
        key=lambda tp: (tp.topic, tp.partition),
    )


def put_back(consumer, fetched) -> list:
    """In the consumer's thread: move each partition of `fetched` (partition → (first, last)
    offset of the records a fetch returned and Faust dropped) back to `first`, so those records
    are fetched again; but only where the position is still `last + 1`, i.e. no seek moved it
    since (Recovery's positions win). Returns the partitions moved back."""
    subscription = consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return []
    moved = []
    for tp, (first, last) in fetched.items():
        state = assignment.state_value(tp) if tp in assignment.tps else None
        if state is not None and state.has_valid_position and state.position == last + 1:
            consumer.seek(tp, first)
            moved.append(tp)
    if moved:
        log.info("fetched while the flow was stopped, read again: %s",
                 ", ".join(f"{tp.topic}:{tp.partition} from {fetched[tp][0]}" for tp in moved))
    return moved


def close_seek_gaps() -> None:
    """Make Faust's seek to the committed offsets after a recovery leave no record behind
    (module docstring; faust-streaming#596). Idempotent."""
    from faust.transport.consumer import Consumer, ensure_TP

    if getattr(Consumer.perform_seek, "_dozor_patched", False):
        return
    perform_seek = Consumer.perform_seek
    wait_next_records = Consumer._wait_next_records

    async def perform_seek_leaving_no_gap(self):
        if not self.flow_active:
            # Consumer.getmany seeks when it finds the flow stopped (a rebalance under way):
            # Faust's own seek, as its end may fall in the next recovery.
            await perform_seek(self)
            return
        # Recovery's seek: it resumes the flow once it has cleared the queues.
        self.stop_flow()
        committed = await self.seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset == "earliest":
            rewind = uncommitted_inputs(committed, self.app.topics.acks_enabled_for)
            if rewind:
                await self._thread.seek_to_beginning(*rewind)
        # the bookkeeping of Faust's Consumer.perform_seek (faust-streaming 0.15.3)
        self._read_offset.update({
            tp: offset if offset is not None and offset >= 0 else None
            for tp, offset in committed.items()
        })
        self._committed_offset.update({
            ensure_TP(tp): offset if offset else None
            for tp, offset in committed.items() if offset is not None
        })

    async def wait_next_records_putting_back(self, timeout):
        records, active_partitions = await wait_next_records(self, timeout)
        if records and not self.flow_active:
            # Consumer.getmany drops what a fetch brings back once the flow has stopped
            fetched = {tp: (batch[0].offset, batch[-1].offset)
                       for tp, batch in records.items() if batch}
            if fetched:
                await self._thread.call_thread(
                    put_back, self._thread._ensure_consumer(), fetched)
        return records, active_partitions

    perform_seek_leaving_no_gap._dozor_patched = True
    Consumer.perform_seek = perform_seek_leaving_no_gap
    Consumer._wait_next_records = wait_next_records_putting_back
