"""A bare Faust app with one changelogged table, for tests/streams/test_changelog_recovery.py.

`python -m tests.support.table_app worker` consumes `<APP>-in` in batches and stores each value
as a key of table `t`, filed in the changelog partition of its message as the Dozor worker
does (streams/app.py, `in_event_context`). Once a second it writes the table's size to
COUNT_FILE. Environment: BOOTSTRAP, APP, COUNT_FILE, DOZOR_PRODUCER_MAX_BATCH_BYTES (the
worker's setting; unset = Faust's default 16384).
"""

from __future__ import annotations

import os
import weakref

import faust
from faust.streams import _current_event

from streams.faust_tuning import set_fetch_max_wait

set_fetch_max_wait(0.05)
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


@app.timer(1.0)
async def report():
    with open(os.environ["COUNT_FILE"], "a", encoding="utf-8") as f:
        f.write(f"{len(list(table.keys()))}\n")


if __name__ == "__main__":
    app.main()
