"""Keeping a live report up to date without flooding the chat platform.

Deliveries change in bursts; a report is redrawn at most once per `spacing` seconds per broadcast, and a
change that arrives while it is being drawn makes it draw once more, so it always ends on the latest state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from relay.model import Broadcast, Delivery, DeliveryState

log = logging.getLogger(__name__)


# A report is redrawn at most every `spacing` seconds, and no more often than it takes to redraw this many
# destinations a second: loading and rendering a report of thousands of lines every second would cost more
# than the posts themselves.
REDRAWN_PER_SECOND = 500


class ReportRefresher:
    def __init__(self, draw: Callable[[str], Awaitable[int]], spacing: float) -> None:
        self.draw = draw  # redraws one broadcast's report from the database; returns how many lines it drew
        self.spacing = spacing
        self._dirty: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}

    def refresh(self, broadcast_id: str) -> None:
        """Something changed: redraw soon."""
        self._dirty.add(broadcast_id)
        if broadcast_id not in self._running:
            task = asyncio.create_task(self._loop(broadcast_id))
            self._running[broadcast_id] = task
            task.add_done_callback(lambda _: self._running.pop(broadcast_id, None))

    async def _loop(self, broadcast_id: str) -> None:
        while broadcast_id in self._dirty:
            self._dirty.discard(broadcast_id)
            drawn = 0
            try:
                drawn = await self.draw(broadcast_id)
            except Exception:  # a report that fails to draw must not stop the next one
                log.exception("could not redraw the report of broadcast %s", broadcast_id)
            await asyncio.sleep(max(self.spacing, drawn / REDRAWN_PER_SECOND))

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)


class Status(Enum):
    DELETED = "deleted"
    POSTED = "posted"
    DRY_RUN = "dry run"
    FAILED = "failed"
    UNKNOWN = "unknown"
    RETRYING = "retrying"
    SENDING = "sending"
    WAITING = "waiting"


# Plain marks for surfaces that show text as it is (Teams, the status page); Slack uses its emoji names.
MARKS = {
    Status.DELETED: "🗑",
    Status.POSTED: "✓",
    Status.DRY_RUN: "✓",
    Status.FAILED: "✗",
    Status.UNKNOWN: "?",
    Status.RETRYING: "↻",
    Status.SENDING: "…",
    Status.WAITING: "…",
}


@dataclass(frozen=True)
class Line:
    """One destination's line in a report, in words; each surface adds its own marks and link syntax."""

    destination: str
    status: Status
    words: str  # what a leader reads after the destination's name
    link: str | None = None
    next_try: float | None = None  # epoch seconds, while retrying


def line(delivery: Delivery) -> Line:
    if delivery.action == "delete":
        return _deletion(delivery)
    if delivery.action.startswith("edit-"):
        return _correction(delivery)
    why = delivery.last_error or ""
    state = delivery.state
    if state is DeliveryState.SENT and delivery.dry_run:
        return Line(delivery.destination, Status.DRY_RUN, "dry run, recorded and not posted")
    if state is DeliveryState.SENT:
        return Line(delivery.destination, Status.POSTED, "posted", delivery.link)
    if state is DeliveryState.FAILED:
        return Line(delivery.destination, Status.FAILED, f"failed. {why}".rstrip())
    if state is DeliveryState.UNKNOWN:
        return Line(delivery.destination, Status.UNKNOWN, f"unknown, not posted again. {why}".rstrip())
    if state is DeliveryState.PENDING and delivery.attempts:
        return Line(delivery.destination, Status.RETRYING, f"retrying ({why})", next_try=delivery.next_attempt_at)
    if state is DeliveryState.PENDING and _scheduled(delivery):
        return Line(delivery.destination, Status.WAITING, "scheduled", next_try=delivery.next_attempt_at)
    status = Status.SENDING if state is DeliveryState.SENDING else Status.WAITING
    return Line(delivery.destination, status, status.value)


LISTED = 25  # destinations a report lists one by one; past this, it condenses (see `condensed`)
NEEDS_A_LOOK = (Status.FAILED, Status.UNKNOWN, Status.RETRYING)


def condensed(deliveries: Sequence[Delivery]) -> tuple[list[Line], list[tuple[Status, str]]]:
    """What a report shows: every destination's line while there are few. Past `LISTED`, a line for each
    one that needs the reader's eye (failed, unknown, retrying) and, for the rest, a count per kind of
    network and state ("998 slack destinations: posted"): a thousand links help nobody in a chat message,
    and redrawing them every second would cost more than the posts (the status page lists them all)."""
    lines = [line(d) for d in deliveries]
    if len(lines) <= LISTED:
        return lines, []
    counts = Counter((d.kind, shown.status) for d, shown in zip(deliveries, lines, strict=True))
    tallies = [
        (status, f"{count} {kind} destination{'s' if count > 1 else ''}: {status.value}")
        for (kind, status), count in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1].value))
        if status not in NEEDS_A_LOOK
    ]
    return [shown for shown in lines if shown.status in NEEDS_A_LOOK], tallies


def _scheduled(delivery: Delivery) -> bool:
    """Written to go out later than when it was written: a scheduled post, not one waiting its turn."""
    due, written = delivery.next_attempt_at, delivery.updated_at
    return due is not None and written is not None and due > written + 1


def _correction(delivery: Delivery) -> Line:
    why, state, name = delivery.last_error or "", delivery.state, delivery.destination
    if state is DeliveryState.SENT:
        return Line(name, Status.POSTED, "corrected in place")
    if state is DeliveryState.FAILED:
        return Line(name, Status.FAILED, f"could not be corrected. {why}".rstrip())
    if state is DeliveryState.PENDING and delivery.attempts:
        return Line(name, Status.RETRYING, f"retrying the correction ({why})", next_try=delivery.next_attempt_at)
    return Line(name, Status.SENDING, "correcting")


def _deletion(delivery: Delivery) -> Line:
    why, state, name = delivery.last_error or "", delivery.state, delivery.destination
    if state is DeliveryState.SENT:
        return Line(name, Status.DELETED, "retracted: deleted" if not delivery.dry_run else "retracted (dry run)")
    if state is DeliveryState.FAILED:
        return Line(name, Status.FAILED, f"could not be deleted. {why}".rstrip())
    if state is DeliveryState.UNKNOWN:
        return Line(name, Status.UNKNOWN, f"deleted what was known; {why}")
    if state is DeliveryState.PENDING and delivery.attempts:
        return Line(name, Status.RETRYING, f"retrying the deletion ({why})", next_try=delivery.next_attempt_at)
    return Line(name, Status.SENDING, "deleting")


def progress(deliveries: Sequence[Delivery]) -> str:
    """ "2 of 3 delivered, in progress…", with the retraction's progress if there is one, and a full stop
    once every delivery is final."""
    posts = [d for d in deliveries if d.action == "post"]
    deletions = [d for d in deliveries if d.action == "delete"]
    corrections = [d for d in deliveries if d.action.startswith("edit-")]
    text = f"{sum(d.state is DeliveryState.SENT for d in posts)} of {len(posts)} delivered"
    if corrections:
        text += f"; corrected: {sum(d.state is DeliveryState.SENT for d in corrections)} of {len(corrections)}"
    if deletions:
        text += f"; retracted: {sum(d.state is DeliveryState.SENT for d in deletions)} of {len(deletions)} deleted"
    return text + ("." if all(d.state.final for d in deliveries) else ", in progress…")


def excerpt(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(broadcast: Broadcast, deliveries: Sequence[Delivery]) -> str:
    """One broadcast in one line of history: when, what became of it, how far it got."""
    when = datetime.fromtimestamp(broadcast.created_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    state = progress(deliveries) if deliveries else broadcast.state.value
    return f"{broadcast.id} · {when} · {broadcast.audience} · {state} · {excerpt(broadcast.text, 80)}"
