"""The clock topic's records: clock ticks. No Faust here: `dozor replay --advance-clock-to` and
tests import it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: Key of a clock tick (the moderation consumer, which once read ticks from the events topic,
#: still skips records with this key there).
TICK_KEY = b"__tick__"


@dataclass(frozen=True)
class Tick:
    """A clock message: the stream time of its partition may advance to `at`.

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
