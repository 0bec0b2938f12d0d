"""The core's data: a broadcast and its deliveries, as read from the database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.store.base import Row


class BroadcastState(Enum):
    DRAFT = "draft"  # previewed by its author, not yet confirmed
    PENDING = "pending"  # confirmed by its author, waiting for an approver
    APPROVED = "approved"  # deliveries recorded; the outbox sends them
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    RETRACT_PENDING = "retract-pending"  # sent, and someone asked to take it back: an approver must agree
    RETRACTED = "retracted"  # its posts are being, or have been, deleted
    EDIT_PENDING = "edit-pending"  # sent, and its author asked to correct the staff posts: an approver must agree


class DeliveryState(Enum):
    PENDING = "pending"  # waiting for its (next) attempt
    SENDING = "sending"  # claimed by the dispatcher
    SENT = "sent"
    FAILED = "failed"  # permanent error, or retries exhausted
    UNKNOWN = "unknown"  # may or may not have landed, and no way to prove it: never posted again
    CANCELLED = "cancelled"  # a post stopped by a retraction before it (all) went out

    @property
    def final(self) -> bool:
        return self not in (DeliveryState.PENDING, DeliveryState.SENDING)


@dataclass(frozen=True)
class Broadcast:
    id: str
    author: str
    text: str
    audience: str
    state: BroadcastState
    created_at: float
    expires_at: float
    decided_by: str | None
    origin: str
    origin_ref: dict[str, Any]
    report_ref: dict[str, Any]
    retract_requested_by: str | None = None
    send_at: float | None = None  # a scheduled broadcast's time; None: at once
    pending_text: str | None = None  # a correction waiting for an approver
    own_confirmed: tuple[str, ...] | None = None  # the author's own accounts they confirmed (relay.own)

    @classmethod
    def from_row(cls, row: Row | Mapping[str, Any]) -> Broadcast:
        return cls(
            id=row["id"],
            author=row["author"],
            text=row["text"],
            audience=row["audience"],
            state=BroadcastState(row["state"]),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            decided_by=row["decided_by"],
            origin=row["origin"],
            origin_ref=json.loads(row["origin_ref"] or "{}"),
            report_ref=json.loads(row["report_ref"] or "{}"),
            retract_requested_by=row["retract_requested_by"],
            send_at=row["send_at"],
            pending_text=row["pending_text"],
            own_confirmed=tuple(json.loads(row["own_confirmed"])) if row["own_confirmed"] is not None else None,
        )


@dataclass(frozen=True)
class Delivery:
    id: int
    broadcast_id: str
    destination: str
    action: str  # "post", or "delete" (a retraction)
    kind: str
    dry_run: bool
    parts: tuple[str, ...]
    posted: tuple[str, ...]  # remote ids of the parts already posted, in order
    link: str | None
    state: DeliveryState
    attempts: int
    check_first: bool
    next_attempt_at: float | None
    first_attempt_at: float | None
    attempt_started_at: float | None
    last_error: str | None
    updated_at: float | None = None
    lease_owner: str | None = None  # the token of the claim that holds it: only that claim writes its outcome

    @classmethod
    def from_row(cls, row: Row) -> Delivery:
        return cls(
            id=row["id"],
            broadcast_id=row["broadcast_id"],
            destination=row["destination"],
            action=row["action"],
            kind=row["kind"],
            dry_run=bool(row["dry_run"]),
            parts=_texts(row["parts"]),
            posted=_texts(row["posted"]),
            link=row["link"],
            state=DeliveryState(row["state"]),
            attempts=row["attempts"],
            check_first=bool(row["check_first"]),
            next_attempt_at=row["next_attempt_at"],
            first_attempt_at=row["first_attempt_at"],
            attempt_started_at=row["attempt_started_at"],
            last_error=row["last_error"],
            updated_at=row["updated_at"],
            lease_owner=row["lease_owner"],
        )


@dataclass(frozen=True)
class Alike:
    """Deliveries a report shows the same way but for their names: one of them, and how many there are.
    A live report of thousands of destinations is loaded as a few of these (see `outbox.alike`)."""

    sample: Delivery
    count: int = 1


def _texts(stored: str) -> tuple[str, ...]:
    """A JSON list of strings; the empty one, most common by far (reports load it for every line), unparsed."""
    return () if stored == "[]" else tuple(json.loads(stored))
