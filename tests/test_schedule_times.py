"""Scheduled times on the leader's clock, right across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relay.schedule import ScheduleError, instant, shown

NOW = datetime(2027, 3, 20, 12, 0, tzinfo=UTC).timestamp()  # a week before Europe's clocks go forward


def utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("date", "time", "zone", "expected"),
    [
        ("2027-03-26", "09:00", "Europe/Paris", "2027-03-26 08:00"),  # winter time, UTC+1
        ("2027-03-29", "09:00", "Europe/Paris", "2027-03-29 07:00"),  # summer time after the change, UTC+2
        ("2027-03-29", "09:00", "America/New_York", "2027-03-29 13:00"),  # already on daylight time
        ("2027-03-21", "09:00", "UTC", "2027-03-21 09:00"),
    ],
)
def test_nine_oclock_is_nine_oclock_on_the_leaders_clock(date: str, time: str, zone: str, expected: str) -> None:
    assert utc(instant(date, time, zone, NOW)) == expected


def test_a_time_the_clocks_skip_is_refused() -> None:
    with pytest.raises(ScheduleError, match="does not exist in Europe/Paris: the clocks skip it"):
        instant("2027-03-28", "02:30", "Europe/Paris", NOW)


def test_a_time_passed_twice_is_the_first() -> None:
    now = datetime(2027, 10, 20, tzinfo=UTC).timestamp()
    assert utc(instant("2027-10-31", "02:30", "Europe/Paris", now)) == "2027-10-31 00:30"


@pytest.mark.parametrize(
    ("date", "time", "zone", "message"),
    [
        ("2027-03-19", "09:00", "Europe/Paris", "is in the past"),
        ("2027-12-01", "09:00", "Europe/Paris", "more than 90 days ahead"),
        ("2027-03-21", "9 o'clock", "Europe/Paris", "is not a date and time like"),
        ("2027-03-21", "09:00", "Mars/Olympus", "is not a time zone the relay knows"),
    ],
)
def test_unusable_times_say_why(date: str, time: str, zone: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        instant(date, time, zone, NOW)


def test_times_are_shown_on_the_leaders_clock() -> None:
    assert shown(instant("2027-03-29", "09:00", "Europe/Paris", NOW), "Europe/Paris") == "Mon 29 Mar 2027 09:00 CEST"
