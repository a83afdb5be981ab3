"""A bare Faust app with one changelogged table, for tests/streams/test_changelog_recovery.py.

`python -m tests.support.table_app worker` consumes `<APP>-in` in batches and stores each value
as a key of table `t`, filed in the changelog partition of its message as the Dozor worker
does (streams/app.py, `in_event_context`). Once a second it writes the table's size to
COUNT_FILE. Environment: BOOTSTRAP, APP, COUNT_FILE, DOZOR_PRODUCER_MAX_BATCH_BYTES (the
worker's setting; unset = Faust's default 16384).

For tests/streams/test_recovery_seek.py: WAIT_BEFORE_SEEK (seconds between Faust resuming the
input partitions and its seek to the committed offsets), SEEK_DELAY (seconds the seek itself
takes longer, as on a slow broker), SEEK_HOLD (seconds the flow stays stopped after the
seek), BATCH_DELAY (seconds each batch of the agent takes) and SEEK_FIX=0 (leave out the
worker's correction, streams/faust_tuning.py close_seek_gaps).
"""

from __future__ import annotations

import asyncio
import os
import weakref

import faust
from faust.streams import _current_event

from streams.faust_tuning import close_seek_gaps, set_fetch_max_wait

set_fetch_max_wait(0.05)
WAIT_BEFORE_SEEK = float(os.environ.get("WAIT_BEFORE_SEEK", "0"))
SEEK_DELAY = float(os.environ.get("SEEK_DELAY", "0"))
BATCH_DELAY = float(os.environ.get("BATCH_DELAY", "0"))
SEEK_HOLD = float(os.environ.get("SEEK_HOLD", "0"))
if SEEK_DELAY:  # inside the correction: the broker's answer to the seek comes late
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    _seek_to_committed = AIOKafkaConsumerThread.seek_to_committed

    async def slow_seek_to_committed(self):
        await asyncio.sleep(SEEK_DELAY)
        return await _seek_to_committed(self)

    AIOKafkaConsumerThread.seek_to_committed = slow_seek_to_committed
if os.environ.get("SEEK_FIX", "1") != "0":
    close_seek_gaps()
if WAIT_BEFORE_SEEK or SEEK_HOLD:  # outside it: Recovery's seek starts late (the fetcher runs
    # before it begins) or the flow stays stopped after it (a fetch under way since before the
    # seek comes back with the flow stopped, what Recovery's own scheduling does, more briefly)
    from faust.transport.consumer import Consumer

    _perform_seek = Consumer.perform_seek

    async def timed_perform_seek(self):
        recovery = self.flow_active  # Consumer.getmany's seek comes with the flow stopped
        if recovery:
            await asyncio.sleep(WAIT_BEFORE_SEEK)
        await _perform_seek(self)
        if recovery:
            await asyncio.sleep(SEEK_HOLD)

    Consumer.perform_seek = timed_perform_seek
app = faust.App(
    os.environ["APP"],
    broker=f"kafka://{os.environ['BOOTSTRAP']}",
    store="memory://",
    topic_partitions=4,
    web_enabled=False,
    broker_session_timeout=3,
    broker_heartbeat_interval=0.5,
    broker_commit_interval=0.5,
    consumer_auto_offset_reset="earliest",
    producer_max_batch_size=int(os.environ.get("DOZOR_PRODUCER_MAX_BATCH_BYTES", "16384")),
    datadir=os.environ["COUNT_FILE"] + ".faust",
)
source = app.topic(f"{os.environ['APP']}-in", partitions=4, key_type=str, value_type=str)
table = app.Table("t", default=None, key_type=str, partitions=4)


@app.agent(source)
async def store(stream):
    async for events in stream.take_events(64, within=0.05):
        for event in events:
            _current_event.set(weakref.ref(event))
            table[event.value] = event.value
        if BATCH_DELAY:
            await asyncio.sleep(BATCH_DELAY)


@app.timer(1.0)
async def report():
    with open(os.environ["COUNT_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{len(list(table.keys()))}\n")


if __name__ == "__main__":
    app.main()
