"""The stream clock policy (streams/clock.py), with an injected wall clock."""

from __future__ import annotations

from streams.clock import MAX_CLOCK_SKEW_SECONDS, StreamClocks, moved_by_event, tick_is_trusted

WALL = 1_800_000_000.0


def test_an_event_moves_the_clock_forward_only_and_never_from_the_future():
    assert moved_by_event(100.0, 200.0, WALL) == 200.0
    assert moved_by_event(300.0, 200.0, WALL) == 300.0  # an older event: the clock stays
    assert moved_by_event(100.0, 0.0, WALL) == 100.0  # no date (a VK delete)
    assert moved_by_event(100.0, WALL + MAX_CLOCK_SKEW_SECONDS, WALL) == WALL + 300
    assert moved_by_event(100.0, WALL + MAX_CLOCK_SKEW_SECONDS + 1, WALL) == 100.0


def test_a_tick_is_trusted_when_forced_or_once_the_partition_is_idle():
    assert tick_is_trusted(WALL, True, WALL, 30.0)
    assert not tick_is_trusted(WALL + 29, False, WALL, 30.0)
    assert tick_is_trusted(WALL + 30, False, WALL, 30.0)


def test_clocks_start_from_the_stored_table_and_ticks_move_them_when_trusted():
    wall = [WALL]
    clocks = StreamClocks({"1": 500.0}, lambda: wall[0], idle_seconds=30.0)
    assert clocks.of(1) == 500.0 and clocks.of(0) == 0.0
    assert clocks.on_event(1, 600.0) == 600.0
    assert clocks.on_tick(1, wall[0], force=False) == (600.0, False)  # busy: the wall is not used
    wall[0] += 30
    assert clocks.on_tick(1, wall[0], force=False) == (wall[0], True)  # idle: the wall clock
    assert clocks.on_tick(0, 700.0, force=True) == (700.0, True)
    assert clocks.newest() == wall[0]
    clocks.forget({1})
    assert clocks.of(1) == 500.0  # back to the table: another worker may have moved it


def test_a_tick_sweeps_a_page_as_far_as_its_input_has_got():
    clocks = StreamClocks({}, lambda: WALL, idle_seconds=30.0)
    clocks.note_input(0, "raw:0", 900.0)
    clocks.note_input(0, "raw:1", 400.0)
    clocks.note_input(0, "raw:1", 300.0)  # read in order; a repeat does not move it back
    clocks.note_input(0, None, 950.0)  # no header: nothing to note
    now = clocks.on_event(0, 900.0)
    assert clocks.sweep_time(0, now, False, "raw:1") == 400.0
    assert clocks.sweep_time(0, now, False, "raw:0") == 900.0
    assert clocks.sweep_time(0, now, False, "raw:2") == 0.0
    assert clocks.sweep_time(0, now, True, "raw:1") == 900.0
    assert clocks.sweep_time(0, now, False, None) == 900.0
