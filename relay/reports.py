"""Keeping a live report up to date without flooding the chat platform.

Deliveries change in bursts; a report is redrawn at most once per `spacing` seconds per broadcast, and a
change that arrives while it is being drawn makes it draw once more, so it always ends on the latest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from relay.model import Alike, Broadcast, Delivery, DeliveryState

log = logging.getLogger(__name__)


# A report is redrawn at most every `spacing` seconds, and no more often than it takes to redraw this many
# lines a second: a report listing thousands of destinations (thousands failed) is redrawn less often.
REDRAWN_PER_SECOND = 500
FINAL_DRAWS_SECONDS = 5.0  # at shutdown, the reports still owed a redraw get this long in all


class ReportRefresher:
    def __init__(
        self,
        draw: Callable[[str], Awaitable[int]],
        spacing: float,
        exclusive: Callable[[str], AbstractAsyncContextManager[None]],
    ) -> None:
        self.draw = draw  # redraws one broadcast's report from the database; returns how many lines it drew
        self.spacing = spacing
        # Instances that share a database draw one report one at a time (`Store.exclusive`): each draws what
        # the database says once it has the report, so the last drawing is of the last state.
        self.exclusive = exclusive
        self._dirty: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}

    def refresh(self, broadcast_id: str) -> None:
        """Something changed: redraw soon. A loop that has ended is replaced at once, not when its end is
        seen (a callback later): a change arriving in between would otherwise be drawn by nobody."""
        self._dirty.add(broadcast_id)
        running = self._running.get(broadcast_id)
        if running is None or running.done():
            task = asyncio.create_task(self._loop(broadcast_id))
            self._running[broadcast_id] = task
            task.add_done_callback(lambda ended: self._forget(broadcast_id, ended))

    def _forget(self, broadcast_id: str, ended: asyncio.Task[None]) -> None:
        if self._running.get(broadcast_id) is ended:
            del self._running[broadcast_id]

    async def _loop(self, broadcast_id: str) -> None:
        while broadcast_id in self._dirty:
            self._dirty.discard(broadcast_id)
            drawn = 0
            try:
                async with self.exclusive(f"report:{broadcast_id}"):
                    drawn = await self.draw(broadcast_id)
            except Exception:  # a report that fails to draw must not stop the next one
                log.exception("could not redraw the report of broadcast %s", broadcast_id)
            await asyncio.sleep(max(self.spacing, drawn / REDRAWN_PER_SECOND))

    async def close(self) -> None:
        """Stop redrawing, but first draw once more every report that changed since it was last drawn:
        where several instances share the work, the one stopping may have recorded the last outcome, and
        no other would redraw a report whose deliveries it did not touch."""
        owed = set(self._dirty) | set(self._running)
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FINAL_DRAWS_SECONDS):
                for broadcast_id in owed:
                    try:
                        async with self.exclusive(f"report:{broadcast_id}"):
                            await self.draw(broadcast_id)
                    except Exception:
                        log.exception("could not redraw the report of broadcast %s", broadcast_id)


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


LISTED = 25  # destinations a report lists one by one; past this, it condenses (see `Report`)
NEEDS_A_LOOK = (Status.FAILED, Status.UNKNOWN, Status.RETRYING)


def needs_rows(sample: Delivery) -> bool:
    """Whether a report lists each delivery like `sample` by name, rather than counting them."""
    return line(sample).status in NEEDS_A_LOOK


@dataclass(frozen=True)
class Report:
    """What a live report shows: its progress, then every destination's line while there are few. Past
    `LISTED`, a line for each one that needs the reader's eye (failed, unknown, retrying) and, for the
    rest, a count per kind of network and state ("998 slack destinations: posted"): a thousand links help
    nobody in a chat message (the status page lists them all)."""

    progress: str
    lines: list[Line]
    tallies: list[tuple[Status, str]]

    @classmethod
    def of(cls, groups: Sequence[Alike]) -> Report:
        """`groups` as `outbox.alike` loads them: one by one up to `LISTED`, else counted but for those
        `needs_rows` picks out."""
        lines = [(group, line(group.sample)) for group in groups]
        if sum(group.count for group in groups) <= LISTED:
            return cls(progress(groups), [shown for _, shown in lines], [])
        counts: Counter[tuple[str, Status]] = Counter()
        for group, shown in lines:
            counts[(group.sample.kind, shown.status)] += group.count
        tallies = [
            (status, f"{count} {kind} destination{'s' if count > 1 else ''}: {status.value}")
            for (kind, status), count in sorted(counts.items(), key=lambda item: (item[0][0], item[0][1].value))
            if status not in NEEDS_A_LOOK
        ]
        return cls(progress(groups), [shown for _, shown in lines if shown.status in NEEDS_A_LOOK], tallies)


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


def progress(deliveries: Sequence[Delivery] | Sequence[Alike]) -> str:
    """ "2 of 3 delivered, in progress…", with the retraction's progress if there is one, and a full stop
    once every delivery is final."""
    groups = [d if isinstance(d, Alike) else Alike(d) for d in deliveries]

    def done(action: Callable[[str], bool]) -> tuple[int, int]:
        mine = [g for g in groups if action(g.sample.action)]
        return sum(g.count for g in mine if g.sample.state is DeliveryState.SENT), sum(g.count for g in mine)

    sent, posts = done(lambda action: action == "post")
    text = f"{sent} of {posts} delivered"
    corrected, corrections = done(lambda action: action.startswith("edit-"))
    if corrections:
        text += f"; corrected: {corrected} of {corrections}"
    deleted, deletions = done(lambda action: action == "delete")
    if deletions:
        text += f"; retracted: {deleted} of {deletions} deleted"
    return text + ("." if all(g.sample.state.final for g in groups) else ", in progress…")


def excerpt(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(broadcast: Broadcast, deliveries: Sequence[Delivery]) -> str:
    """One broadcast in one line of history: when, what became of it, how far it got."""
    when = datetime.fromtimestamp(broadcast.created_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    state = progress(deliveries) if deliveries else broadcast.state.value
    return f"{broadcast.id} · {when} · {broadcast.audience} · {state} · {excerpt(broadcast.text, 80)}"
