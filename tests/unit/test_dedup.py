"""Re-reads after a crash and copies of an event: which are applied again, which are dropped."""

from __future__ import annotations

from streams.dedup import COPY, NEW, REPLAY, repeat_kind
from streams.track import PageRecord, TrackingPolicy
from streams.tracking.calendar import WorkingCalendar


def test_a_message_never_seen_is_new():
    assert repeat_kind(2, 40, applied=None, seen=None) == NEW
    assert repeat_kind(2, 40, applied=(2, 39), seen=None) == NEW


def test_a_message_at_or_before_the_pages_applied_offset_is_a_replay():
    # The page state stored with offset 40 already holds this message and every earlier one.
    assert repeat_kind(2, 40, applied=(2, 40), seen=None) == REPLAY
    assert repeat_kind(2, 17, applied=(2, 40), seen=[1.0, 2, 17]) == REPLAY


def test_an_applied_offset_of_another_partition_says_nothing():
    # The page moved partitions (the topic was resized): offsets are not comparable.
    assert repeat_kind(3, 5, applied=(2, 40), seen=None) == NEW


def test_seen_stored_but_page_state_lost_applies_the_message_again():
    """The crash this module exists for: the `seen` write reached its changelog, the page's did
    not. Dropping the re-read message would lose its question for good."""
    assert repeat_kind(2, 41, applied=(2, 40), seen=[1.0, 2, 41]) == NEW
    assert repeat_kind(2, 41, applied=None, seen=[1.0, 2, 41]) == NEW


def test_the_same_event_in_another_message_is_a_copy():
    assert repeat_kind(2, 41, applied=(2, 40), seen=[1.0, 2, 12]) == COPY
    assert repeat_kind(2, 41, applied=None, seen=[1.0, 0, 41]) == COPY
    # a value written before offsets were stored: [time, partition]
    assert repeat_kind(2, 41, applied=None, seen=[1.0, 2]) == COPY


def test_the_applied_offset_travels_with_the_page_state():
    policy = TrackingPolicy(calendar=WorkingCalendar())
    record = PageRecord.new("vk:-1", 2, policy)
    assert PageRecord.from_value(record.to_value(), policy).applied is None
    record.applied = (2, 40)
    value = record.to_value()
    assert PageRecord.from_value(value, policy).applied == (2, 40)
    # a value stored before this field existed still loads
    del value["applied"]
    assert PageRecord.from_value(value, policy).applied is None
