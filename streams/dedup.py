"""Is an event new, a re-read of a message already applied, or a second copy of an event?

Two kinds of repeats reach the `process` agent:

* **Re-reads.** After a crash the worker reads again every message after the last committed
  offset. Whether such a message was applied is answered by the page's own table value: it
  stores the input ("raw topic:partition") and offset of the newest message applied to the
  page, in the same changelog record as the state it changed. One record, so the answer is
  never out of step with the state.
* **Copies.** The same event id in another message: VK repeating a callback, a connector
  polling twice or re-sending after its own crash. The page's record also
  remembers the ids of its events (and of the flags sent about it) for `RETENTION_SECONDS` of
  stream time, at most `MAX_IDS_PER_PAGE` of each: again in the same record as the state, so a
  crash can never store the ids without the state they changed, or the other way round.

Plain functions: the step (streams/process.py) looks the values up and acts on the answer.
"""

from __future__ import annotations

NEW = "new"
REPLAY = "replay"
COPY = "copy"

#: How long event ids (and sent flag ids) are remembered, in stream time.
RETENTION_SECONDS = 14 * 86400
#: At most this many event ids (and as many flag ids) per page, the oldest forgotten first: a
#: page's record is re-encoded on every write, so a very busy page must not make it unbounded.
#: 10,000 is two weeks of a page with ~700 comment events a day; copies come minutes apart.
MAX_IDS_PER_PAGE = 10_000


def repeat_kind(
    input_: str,
    offset: int,
    applied: tuple[str, int] | None,
    known: bool,
) -> str:
    """`NEW`, `REPLAY` or `COPY` for the message at `offset` of `input_` ("topic:partition").

    `applied` is the page's newest applied message as (input, offset) (None for a page without
    one); `known` whether the page remembers the event's id.
    """
    if applied is not None and applied[0] == input_ and applied[1] >= offset:
        # A page's events are read in offset order from one partition: everything up to the
        # newest applied message was applied (or recognised as a repeat) already.
        return REPLAY
    return COPY if known else NEW


def remember(ids: dict[str, int], key: str, now: float,
             retention: float = RETENTION_SECONDS, limit: int = MAX_IDS_PER_PAGE) -> None:
    """Add `key` at stream time `now` to `ids` (insertion-ordered: oldest first), then forget
    from the front what is older than `retention` before `now` or beyond `limit` entries.

    The stream clock of a partition only moves forward, so insertion order is time order and
    pruning costs only what it removes.
    """
    ids[key] = int(now)
    cutoff = now - retention
    while ids:
        oldest = next(iter(ids))
        if len(ids) <= limit and ids[oldest] >= cutoff:
            break
        del ids[oldest]
