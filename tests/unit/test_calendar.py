"""Working-hours arithmetic: table tests (hypothesis is not installed in the venv)."""

from __future__ import annotations

import random
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from streams.tracking.calendar import (
    WorkingCalendar,
    add_working_seconds,
    answer_deadline,
    working_seconds_between,
)

MSK = ZoneInfo("Europe/Moscow")
HOUR = 3600.0
CAL = WorkingCalendar.parse()  # 09:00-18:00, Mon-Fri, Europe/Moscow


def msk(text: str) -> float:
    """'2026-03-06 17:55' Moscow time as a unix timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=MSK).timestamp()


def local(ts: float, zone: str = "Europe/Moscow") -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M")


# --- parse ------------------------------------------------------------------------------


def test_parse_defaults_match_settings_defaults():
    assert CAL == WorkingCalendar()
    assert CAL.day_start == time(9) and CAL.day_end == time(18)
    assert CAL.working_weekdays == frozenset({1, 2, 3, 4, 5})


@pytest.mark.parametrize(
    "days, expected",
    [("1-5", {1, 2, 3, 4, 5}), ("1,2,3,4,5", {1, 2, 3, 4, 5}), ("1-3, 6", {1, 2, 3, 6}),
     ("7", {7}), ("1-7", set(range(1, 8)))],
)
def test_parse_working_days(days, expected):
    assert WorkingCalendar.parse(working_days=days).working_weekdays == frozenset(expected)


def test_parse_holidays_accepts_strings_and_dates():
    cal = WorkingCalendar.parse(holidays=["2026-01-01", date(2026, 1, 2)])
    assert cal.holidays == frozenset({date(2026, 1, 1), date(2026, 1, 2)})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"working_hours": "9-18"}, "HH:MM-HH:MM"),
        ({"working_hours": "09:00"}, "HH:MM-HH:MM"),
        ({"working_hours": "18:00-09:00"}, "start before it ends"),
        ({"working_hours": "25:00-26:00"}, "HH:MM-HH:MM"),
        ({"working_days": "Mon-Fri"}, "ISO weekdays"),
        ({"working_days": "0-5"}, "ISO weekdays"),
        ({"working_days": "5-1"}, "ISO weekdays"),
        ({"working_days": ""}, "ISO weekdays"),
        ({"holidays": ["01.01.2026"]}, "YYYY-MM-DD"),
        ({"timezone": "Moscow"}, "IANA"),
    ],
)
def test_parse_rejects_bad_settings_with_the_expected_format(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorkingCalendar.parse(**kwargs)


# --- add_working_seconds ----------------------------------------------------------------


@pytest.mark.parametrize(
    "asked, hours, due",
    [
        # Friday evening rolls over the weekend
        ("2026-03-06 17:55", 8, "Mon 2026-03-09 16:55"),
        # inside one day
        ("2026-03-03 09:40", 8, "Tue 2026-03-03 17:40"),
        ("2026-03-03 10:00", 4, "Tue 2026-03-03 14:00"),
        # ends exactly at the end of the day: that end, not the next morning
        ("2026-03-03 10:00", 8, "Tue 2026-03-03 18:00"),
        # asked exactly at 18:00: counting starts the next morning
        ("2026-03-03 18:00", 1, "Wed 2026-03-04 10:00"),
        # asked at night, before work, on Saturday and Sunday
        ("2026-03-03 02:30", 2, "Tue 2026-03-03 11:00"),
        ("2026-03-03 08:59", 1, "Tue 2026-03-03 10:00"),
        ("2026-03-07 12:00", 8, "Mon 2026-03-09 17:00"),
        ("2026-03-08 23:59", 9, "Mon 2026-03-09 18:00"),
        # multi-day deadlines
        ("2026-03-03 14:20", 8, "Wed 2026-03-04 13:20"),
        ("2026-03-03 12:00", 27, "Fri 2026-03-06 12:00"),
        ("2026-03-05 16:30", 24, "Tue 2026-03-10 13:30"),
        # 7 working days = 63 working hours
        ("2026-03-02 09:00", 63, "Tue 2026-03-10 18:00"),
    ],
)
def test_add_working_hours(asked, hours, due):
    assert local(add_working_seconds(CAL, msk(asked), hours * HOUR)) == due


def test_asked_on_a_holiday_counts_from_the_next_working_morning():
    cal = WorkingCalendar.parse(holidays=["2026-03-09"])  # Monday off (8 March moved)
    due = add_working_seconds(cal, msk("2026-03-09 11:00"), 2 * HOUR)
    assert local(due) == "Tue 2026-03-10 11:00"
    # and a holiday in the middle of a deadline is skipped
    due = add_working_seconds(cal, msk("2026-03-06 17:00"), 2 * HOUR)
    assert local(due) == "Tue 2026-03-10 10:00"


def test_new_year_holidays_are_skipped():
    cal = WorkingCalendar.parse(holidays=[f"2026-01-{d:02d}" for d in range(1, 9)])
    due = add_working_seconds(cal, msk("2025-12-31 17:00"), 2 * HOUR)
    assert local(due) == "Fri 2026-01-09 10:00"


def test_zero_seconds_is_the_start_itself_even_outside_working_hours():
    for asked in ("2026-03-03 10:00", "2026-03-07 03:00"):
        assert add_working_seconds(CAL, msk(asked), 0) == msk(asked)


@pytest.mark.parametrize("seconds", [-1, float("inf"), float("nan")])
def test_negative_or_infinite_seconds_are_rejected(seconds):
    with pytest.raises(ValueError, match="finite number >= 0"):
        add_working_seconds(CAL, msk("2026-03-03 10:00"), seconds)


def test_fractional_seconds_are_kept():
    start = msk("2026-03-03 10:00")
    assert add_working_seconds(CAL, start + 0.25, 1.5) == start + 1.75


def test_weekend_working_calendar():
    cal = WorkingCalendar.parse(working_hours="10:00-14:00", working_days="6,7")
    due = add_working_seconds(cal, msk("2026-03-06 12:00"), 6 * HOUR)
    assert local(due) == "Sun 2026-03-08 12:00"


# --- DST --------------------------------------------------------------------------------


def test_dst_zone_deadline_over_the_spring_forward_weekend_keeps_local_hours():
    berlin = WorkingCalendar.parse(timezone="Europe/Berlin")
    friday = datetime(2026, 3, 27, 17, 55, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    due = add_working_seconds(berlin, friday, 8 * HOUR)
    assert local(due, "Europe/Berlin") == "Mon 2026-03-30 16:55"
    # 70 wall-clock hours, not 71: the clock jumped forward on Sunday
    assert due - friday == 70 * HOUR


def test_dst_zone_autumn_back_weekend():
    berlin = WorkingCalendar.parse(timezone="Europe/Berlin")
    friday = datetime(2026, 10, 23, 17, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    due = add_working_seconds(berlin, friday, 2 * HOUR)
    assert local(due, "Europe/Berlin") == "Mon 2026-10-26 10:00"
    assert due - friday == 66 * HOUR  # 65 h of local time + the repeated hour


def test_dst_jump_inside_working_hours_shortens_that_day():
    # Night shift 01:00-04:00 every day; on 2026-03-29 Berlin skips 02:00-03:00.
    cal = WorkingCalendar.parse(
        timezone="Europe/Berlin", working_hours="01:00-04:00", working_days="1-7"
    )
    zone = ZoneInfo("Europe/Berlin")
    day = datetime(2026, 3, 29, 0, 0, tzinfo=zone).timestamp()
    next_day = datetime(2026, 3, 30, 0, 0, tzinfo=zone).timestamp()
    assert working_seconds_between(cal, day, next_day) == 2 * HOUR
    due = add_working_seconds(cal, day, 2.5 * HOUR)
    assert local(due, "Europe/Berlin") == "Mon 2026-03-30 01:30"


def test_moscow_has_no_dst():
    ts = msk("2026-03-27 17:55")
    assert add_working_seconds(CAL, ts, 8 * HOUR) - ts == 71 * HOUR  # no jump over the weekend


# --- working_seconds_between ------------------------------------------------------------


@pytest.mark.parametrize(
    "start, end, hours",
    [
        ("2026-03-03 10:00", "2026-03-03 12:30", 2.5),
        ("2026-03-03 20:00", "2026-03-04 08:00", 0),
        ("2026-03-06 17:55", "2026-03-09 16:55", 8),
        ("2026-03-07 00:00", "2026-03-09 00:00", 0),
        ("2026-03-02 00:00", "2026-03-09 00:00", 45),
        ("2026-03-03 12:00", "2026-03-03 11:00", 0),
    ],
)
def test_working_seconds_between(start, end, hours):
    assert working_seconds_between(CAL, msk(start), msk(end)) == hours * HOUR


@pytest.mark.parametrize(
    "zone", ["Europe/Moscow", "Europe/Berlin", "America/New_York", "Asia/Kamchatka"]
)
def test_between_is_the_inverse_of_add(zone):
    """Property test as a seeded table: between(s, add(s, x)) == x for random s and x."""
    cal = WorkingCalendar.parse(timezone=zone, holidays=["2026-03-09", "2026-11-04"])
    rng = random.Random(zone)
    base = datetime(2026, 1, 1, tzinfo=ZoneInfo(zone)).timestamp()
    for _ in range(150):
        start = base + rng.uniform(0, 365 * 86400)
        seconds = rng.choice([0.0, 1.0, 60.0, 9 * HOUR, rng.uniform(0, 200 * HOUR)])
        due = add_working_seconds(cal, start, seconds)
        assert due >= start
        assert working_seconds_between(cal, start, due) == pytest.approx(seconds, abs=1e-6)


def test_add_returns_the_earliest_moment():
    start = msk("2026-03-03 16:00")
    due = add_working_seconds(CAL, start, 3 * HOUR)
    assert local(due) == "Wed 2026-03-04 10:00"
    assert working_seconds_between(CAL, start, due - 1) < 3 * HOUR


# --- answer_deadline --------------------------------------------------------------------


def test_answer_deadline_modes():
    asked = msk("2026-03-06 17:55")
    assert local(answer_deadline(CAL, asked, 8, "working")) == "Mon 2026-03-09 16:55"
    assert local(answer_deadline(CAL, asked, 24, "plain")) == "Sat 2026-03-07 17:55"
    assert answer_deadline(CAL, asked, 0, "plain") == asked
    assert answer_deadline(CAL, asked, 0, "working") == asked


@pytest.mark.parametrize("mode, hours", [("calendar", 8), ("working", -1), ("plain", float("inf"))])
def test_answer_deadline_rejects_bad_input(mode, hours):
    with pytest.raises(ValueError):
        answer_deadline(CAL, msk("2026-03-03 10:00"), hours, mode)
