"""Is an event new, a re-read of a message already applied, or a second copy of an event?

Two kinds of repeats reach the `process` agent:

* **Re-reads.** After a crash the worker reads again every message after the last committed
  offset. Whether such a message was applied is answered by the page's own table value: it
  stores the (partition, offset) of the newest message applied to the page, in the same
  changelog record as the state it changed. One record, so the answer is never out of step
  with the state (a separate "seen" write could be stored while the state write was lost).
* **Copies.** The same event id in another message: VK repeating a callback, a connector
  polling twice, or `normalize` re-publishing after its own crash. The `seen` table remembers
  event ids with the message that carried them.

Plain functions: the agent (streams/app.py) looks the values up and acts on the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

NEW = "new"
REPLAY = "replay"
COPY = "copy"


def repeat_kind(
    partition: int,
    offset: int,
    applied: tuple[int, int] | None,
    seen: Sequence | None,
) -> str:
    """`NEW`, `REPLAY` or `COPY` for the message at (`partition`, `offset`).

    `applied` is the page's newest applied message (None for a page without one); `seen` the
    `seen` table's value for the event id: [stream time, partition, offset], or None.
    """
    if applied is not None and applied[0] == partition and applied[1] >= offset:
        # A page's events are read in offset order from one partition: everything up to the
        # newest applied message was applied (or recognised as a repeat) already.
        return REPLAY
    if seen is None:
        return NEW
    if len(seen) >= 3 and (int(seen[1]), int(seen[2])) == (partition, offset):
        # This very message was processed, but the page state it changed was not stored
        # (the worker died between the two writes): apply it again.
        return NEW
    return COPY
