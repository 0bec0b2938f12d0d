"""When a scheduled broadcast goes out: a date and a time on the leader's own clock, into an instant.

Read in the leader's time zone (an IANA name, as Slack and Teams give it) with the zone's own rules, so
"Monday 9:00" is 9:00 on that Monday whether or not the clocks changed in between. A time the clocks
skip (a spring-forward gap) does not exist and is refused; a time they pass twice is the first one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_AHEAD = timedelta(days=90)  # past that, a "scheduled" broadcast is more likely a typo in the year


class ScheduleError(ValueError):
    """The time cannot be used; the message says why, for the leader."""


def instant(date: str, time: str, zone: str, now: float) -> float:
    """`date` (YYYY-MM-DD) and `time` (HH:MM) in `zone`, as epoch seconds, checked to be ahead of `now`."""
    try:
        tz = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"'{zone}' is not a time zone the relay knows.") from None
    try:
        local = datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=tz, fold=0)
    except ValueError:
        raise ScheduleError(f"'{date} {time}' is not a date and time like 2026-12-01 09:00.") from None
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ScheduleError(f"{date} {time} does not exist in {zone}: the clocks skip it. Pick another time.")
    moment = local.timestamp()
    if moment <= now:
        raise ScheduleError(f"{date} {time} ({zone}) is in the past.")
    if moment - now > MAX_AHEAD.total_seconds():
        raise ScheduleError(f"{date} {time} is more than {MAX_AHEAD.days} days ahead; schedule it closer to the day.")
    return moment


def shown(moment: float, zone: str) -> str:
    """An instant on the leader's clock, with the zone, for messages."""
    try:
        tz = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return datetime.fromtimestamp(moment, tz=tz).strftime("%a %d %b %Y %H:%M %Z")
