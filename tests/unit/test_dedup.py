"""Re-reads after a crash and copies of an event: which are applied again, which are dropped."""

from __future__ import annotations

import json

from streams.dedup import COPY, NEW, REPLAY, remember, repeat_kind
from streams.track import PageRecord, TrackingPolicy
from streams.tracking.calendar import WorkingCalendar


def test_a_message_never_seen_is_new():
    assert repeat_kind("raw:2", 40, applied=None, known=False) == NEW
    assert repeat_kind("raw:2", 40, applied=("raw:2", 39), known=False) == NEW


def test_a_message_at_or_before_the_pages_applied_offset_is_a_replay():
    # The page state stored with offset 40 already holds this message and every earlier one.
    assert repeat_kind("raw:2", 40, applied=("raw:2", 40), known=False) == REPLAY
    assert repeat_kind("raw:2", 17, applied=("raw:2", 40), known=True) == REPLAY


def test_an_applied_offset_of_another_input_says_nothing():
    # The page moved partitions (the topic was resized): offsets are not comparable.
    assert repeat_kind("raw:3", 5, applied=("raw:2", 40), known=False) == NEW
    # Nor are the offsets of another topic's partition with the same number.
    assert repeat_kind("tg:2", 5, applied=("raw:2", 40), known=False) == NEW


def test_the_same_event_in_another_message_is_a_copy():
    assert repeat_kind("raw:2", 41, applied=("raw:2", 40), known=True) == COPY
    assert repeat_kind("raw:2", 41, applied=None, known=True) == COPY


def test_ids_are_forgotten_after_the_retention_oldest_first():
    ids: dict[str, int] = {}
    remember(ids, "a", 1000, retention=100, limit=10)
    remember(ids, "b", 1050, retention=100, limit=10)
    assert list(ids) == ["a", "b"]
    remember(ids, "c", 1101, retention=100, limit=10)  # "a" is 101 s older: gone
    assert ids == {"b": 1050, "c": 1101}
    remember(ids, "d", 1150, retention=100, limit=10)  # "b" is exactly 100 s older: kept
    assert list(ids) == ["b", "c", "d"]


def test_at_most_limit_ids_are_kept_the_newest():
    ids: dict[str, int] = {}
    for i in range(25):
        remember(ids, f"e{i}", 1000 + i, retention=10**9, limit=10)
    assert list(ids) == [f"e{i}" for i in range(15, 25)]


def test_the_applied_offset_and_the_ids_travel_with_the_page_state():
    policy = TrackingPolicy(calendar=WorkingCalendar())
    record = PageRecord.new("vk:-1", 2, policy)
    loaded = PageRecord.from_json(record.to_json(), policy)
    assert loaded.applied is None and loaded.seen == {} and loaded.sent == {}
    record.applied = ("dozor.raw.vk:2", 40)
    remember(record.seen, "e2", 2000)
    remember(record.seen, "e1", 2001)
    remember(record.sent, "f1", 2001)
    assert json.loads(record.to_json()) == record.to_value()  # orjson's bytes, std JSON
    loaded = PageRecord.from_json(record.to_json(), policy)
    assert loaded.applied == ("dozor.raw.vk:2", 40)
    assert list(loaded.seen.items()) == [("e2", 2000), ("e1", 2001)]  # oldest first, as stored
    assert loaded.sent == {"f1": 2001}
    # a value stored before these fields existed still loads
    value = record.to_value()
    for name in ("applied", "seen", "sent"):
        del value[name]
    loaded = PageRecord.from_value(value, policy)
    assert loaded.applied is None and loaded.seen == {} and loaded.sent == {}
    # an events-topic offset stored before the worker read the raw topics: not comparable
    loaded = PageRecord.from_value({**record.to_value(), "applied": [2, 40]}, policy)
    assert loaded.applied is None and loaded.seen == record.seen
