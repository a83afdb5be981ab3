"""The two record formats of the events topic besides canonical events: clock ticks and the
source header. No Faust here: `dozor replay --advance-clock-to` and tests import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: Key of a clock tick in the events topic (a canonical event is keyed by its page id).
TICK_KEY = b"__tick__"
#: Header of every canonical event: the raw topic and partition it was normalised from
#: ("topic:partition"), so ticks sweep a page only as far as its own input has got (sweep_time).
SOURCE_HEADER = "dozor-source"


@dataclass(frozen=True)
class Tick:
    """A clock message in the events topic: the stream time may advance to `at`.

    The timer sends wall-clock ticks (used once the partition is idle); `dozor replay
    --advance-clock-to` sends forced ones, to close a replayed day as if it had been lived.
    """

    at: float
    force: bool = False


def tick_message(at: float, force: bool = False) -> bytes:
    """The value of a tick record (its key is TICK_KEY)."""
    return json.dumps({"tick": at, "force": force}).encode()


def parse_tick(value: bytes | str) -> Tick:
    """A tick record's value back into a Tick."""
    data = json.loads(value)
    return Tick(float(data["tick"]), bool(data.get("force", False)))


def source_value(topic: str, partition: int) -> bytes:
    """The SOURCE_HEADER value for a record normalised from `topic`:`partition`."""
    return f"{topic}:{partition}".encode()


def source_from_headers(headers) -> str | None:
    """The input a canonical event was normalised from (its SOURCE_HEADER), or None.

    `headers`: a mapping (Faust) or a list of (name, value) pairs (aiokafka).
    """
    if not headers:
        return None
    if isinstance(headers, dict):
        value = headers.get(SOURCE_HEADER)
    else:
        value = next((v for k, v in headers if k == SOURCE_HEADER), None)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
