"""The stream clock of each input partition: the policy, without Faust.

A partition's clock is the newest event time read from it (an event dated more than
MAX_CLOCK_SKEW_SECONDS into the future does not move it). A clock tick from the timer carries
the wall clock; it is trusted — moves the clock — only once the partition has been idle for
`idle_seconds` (or when it is forced, by `dozor replay --advance-clock-to`). Besides, for every
partition the newest event time read from each input (raw topic and partition, the events'
source header) is kept, so that a tick sweeps a page only as far as its own input has got
(`streams.track.sweep_time`).

`StreamClocks` keeps the in-memory part (the clock table is read through a plain mapping; the
caller stores the values a tick returns). The wall clock is injected, so it is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from streams.track import sweep_time

#: An event dated further than this into the future does not move the stream clock.
MAX_CLOCK_SKEW_SECONDS = 300.0


def moved_by_event(current: float, at: float, wall_now: float) -> float:
    """The clock after an event dated `at`: its time if newer and not from the future."""
    if not at or at > wall_now + MAX_CLOCK_SKEW_SECONDS:
        return current
    return max(current, at)


def tick_is_trusted(at: float, force: bool, idle_since: float, idle_seconds: float) -> bool:
    """A tick moves the clock when forced, or when the partition has been idle long enough."""
    return force or at - idle_since >= idle_seconds


class StreamClocks:
    """The clocks of the partitions one worker owns."""

    def __init__(
        self,
        stored: Mapping[str, float | None],
        wall_clock: Callable[[], float],
        idle_seconds: float,
    ) -> None:
        #: The clock table (str(partition) -> time), read when a partition is first seen.
        self.stored = stored
        self.wall_clock = wall_clock
        self.idle_seconds = idle_seconds
        self.clock: dict[int, float] = {}
        #: partition -> input ("raw topic:partition") -> newest event time read from it
        self.inputs: dict[int, dict[str, float]] = {}
        self.last_event_wall: dict[int, float] = {}
        self.started_wall = wall_clock()

    def of(self, partition: int) -> float:
        """The partition's clock (from the stored table on first use)."""
        if partition not in self.clock:
            stored = self.stored.get(str(partition))
            self.clock[partition] = float(stored) if stored is not None else 0.0
        return self.clock[partition]

    def note_input(self, partition: int, source: str | None, at: float) -> None:
        """A message from `source` dated `at` was read: that input has got this far, in order.

        Every message read counts, repeats too.
        """
        if source is not None and at:
            inputs = self.inputs.setdefault(partition, {})
            inputs[source] = max(inputs.get(source, 0.0), at)

    def on_event(self, partition: int, at: float) -> float:
        """An event dated `at` was read (a repeat too: streams/process.py says why); returns the
        partition's clock."""
        wall = self.wall_clock()
        self.last_event_wall[partition] = wall
        self.clock[partition] = moved_by_event(self.of(partition), at, wall)
        return self.clock[partition]

    def on_tick(self, partition: int, at: float, force: bool) -> tuple[float, bool]:
        """A tick arrived: (the partition's clock now, whether the tick was trusted)."""
        idle_since = self.last_event_wall.get(partition, self.started_wall)
        trusted = tick_is_trusted(at, force, idle_since, self.idle_seconds)
        if trusted:
            self.clock[partition] = max(self.of(partition), at)
        return self.of(partition), trusted

    def sweep_time(self, partition: int, now: float, trusted: bool, source: str | None) -> float:
        """How far a tick at clock `now` may sweep a page read from `source`."""
        return sweep_time(now, trusted, source, self.inputs.get(partition, {}))

    def newest(self) -> float:
        """The newest clock of all partitions (the dozor_stream_time_seconds gauge)."""
        return max(self.clock.values(), default=0.0)

    def forget(self, partitions: Iterable[int]) -> None:
        """The partitions went to another worker."""
        for partition in partitions:
            self.clock.pop(partition, None)
            self.inputs.pop(partition, None)
