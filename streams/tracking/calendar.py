"""Working-hours arithmetic for answer deadlines.

All times are unix timestamps (UTC seconds); the calendar's time zone only decides where a
working day starts and ends. Nothing here reads the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEADLINE_MODES = ("working", "plain")


@dataclass(frozen=True)
class WorkingCalendar:
    """When a page's staff is at work: local working hours, working weekdays, holidays.

    `working_weekdays` holds ISO weekdays (1 = Monday … 7 = Sunday). A holiday is a
    non-working day even when its weekday is a working one.
    """

    timezone: str = "Europe/Moscow"
    day_start: time = time(9, 0)
    day_end: time = time(18, 0)
    working_weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {self.timezone!r}: expected an IANA name such as "
                "'Europe/Moscow'"
            ) from exc
        if self.day_start >= self.day_end:
            raise ValueError(
                f"working day must start before it ends: {self.day_start:%H:%M} is not "
                f"before {self.day_end:%H:%M}"
            )
        if not self.working_weekdays:
            raise ValueError("at least one working weekday is needed (ISO 1=Mon … 7=Sun)")
        bad = sorted(d for d in self.working_weekdays if not 1 <= d <= 7)
        if bad:
            raise ValueError(f"working weekdays must be ISO weekdays 1..7, got {bad}")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def parse(
        cls,
        timezone: str = "Europe/Moscow",
        working_hours: str = "09:00-18:00",
        working_days: str = "1-5",
        holidays: Iterable[str | date] = (),
    ) -> WorkingCalendar:
        """Build a calendar from setting strings.

        `working_hours` is "HH:MM-HH:MM" (local time), `working_days` a list of ISO
        weekdays and ranges ("1-5", "1,2,3,4,5", "1-3,6"), `holidays` ISO dates.
        """
        day_start, day_end = _parse_working_hours(working_hours)
        return cls(
            timezone=timezone,
            day_start=day_start,
            day_end=day_end,
            working_weekdays=_parse_working_days(working_days),
            holidays=frozenset(_parse_holiday(h) for h in holidays),
        )

    def is_working_day(self, day: date) -> bool:
        """Whether `day` (a local date) has working hours at all."""
        return day.isoweekday() in self.working_weekdays and day not in self.holidays

    def working_periods(self, from_ts: float) -> Iterator[tuple[float, float]]:
        """Endless (start, end) timestamps of working periods, from the local day of `from_ts`.

        The first period may end before `from_ts`; callers clip it.
        """
        zone = self.zone
        day = datetime.fromtimestamp(from_ts, zone).date()
        while True:
            if self.is_working_day(day):
                start = datetime.combine(day, self.day_start, tzinfo=zone).timestamp()
                end = datetime.combine(day, self.day_end, tzinfo=zone).timestamp()
                if end > start:  # a DST jump can swallow a very short working day
                    yield start, end
            day += timedelta(days=1)


def add_working_seconds(calendar: WorkingCalendar, start_ts: float, seconds: float) -> float:
    """The earliest moment at which `seconds` of working time have passed since `start_ts`.

    Counting starts at the next working moment when `start_ts` is outside working hours;
    a deadline that ends exactly at the end of a working day is that end (18:00), not the
    next morning. Zero seconds gives `start_ts` itself.
    """
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"working seconds must be a finite number >= 0, got {seconds}")
    if seconds == 0:
        return start_ts
    remaining = float(seconds)
    for period_start, period_end in calendar.working_periods(start_ts):
        begin = max(period_start, start_ts)
        if begin >= period_end:
            continue
        available = period_end - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
    raise AssertionError("unreachable: working_periods is endless")


def working_seconds_between(calendar: WorkingCalendar, start_ts: float, end_ts: float) -> float:
    """Working seconds in [start_ts, end_ts]; 0 when end_ts <= start_ts."""
    if end_ts <= start_ts:
        return 0.0
    total = 0.0
    for period_start, period_end in calendar.working_periods(start_ts):
        if period_start >= end_ts:
            break
        begin = max(period_start, start_ts)
        finish = min(period_end, end_ts)
        if finish > begin:
            total += finish - begin
    return total


def answer_deadline(calendar: WorkingCalendar, asked_at: float, hours: float, mode: str) -> float:
    """When the answer to a question asked at `asked_at` is due.

    `mode` "working" counts `hours` of working time on `calendar`; "plain" counts wall-clock
    hours.
    """
    if not (math.isfinite(hours) and hours >= 0):
        raise ValueError(f"answer deadline hours must be a finite number >= 0, got {hours}")
    if mode == "working":
        return add_working_seconds(calendar, asked_at, hours * 3600.0)
    if mode == "plain":
        return asked_at + hours * 3600.0
    raise ValueError(f"deadline mode must be one of {DEADLINE_MODES}, got {mode!r}")


def _parse_clock(text: str, whole: str) -> time:
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ValueError(
            f"working hours must look like 'HH:MM-HH:MM' (e.g. '09:00-18:00'), got {whole!r}"
        ) from exc


def _parse_working_hours(text: str) -> tuple[time, time]:
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(
            f"working hours must look like 'HH:MM-HH:MM' (e.g. '09:00-18:00'), got {text!r}"
        )
    return _parse_clock(parts[0], text), _parse_clock(parts[1], text)


def _parse_working_days(text: str) -> frozenset[int]:
    expected = "ISO weekdays 1..7 as a range or list, e.g. '1-5' or '1,2,3,4,5'"
    days: set[int] = set()
    for chunk in text.split(","):
        chunk = chunk.strip()
        try:
            if "-" in chunk:
                first, last = (int(x) for x in chunk.split("-"))
                if first > last:
                    raise ValueError(chunk)
                days.update(range(first, last + 1))
            else:
                days.add(int(chunk))
        except ValueError as exc:
            raise ValueError(f"working days must be {expected}, got {text!r}") from exc
    if not days or any(not 1 <= d <= 7 for d in days):
        raise ValueError(f"working days must be {expected}, got {text!r}")
    return frozenset(days)


def _parse_holiday(value: str | date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"holidays must be ISO dates 'YYYY-MM-DD', got {value!r}") from exc
