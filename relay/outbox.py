"""The outbox: delivery rows and the short transactions that move them between states.

A delivery is claimed with a lease before any network call and its outcome recorded in a second
transaction after it; nothing is posted that was not first recorded, and every attempt leaves a trace.
Retry timing lives here too, as data in the row (`next_attempt_at`), never in a sleeping coroutine, so a
restart picks up exactly where the last process stopped.

The dispatcher's writes go through `Store.persist`: an outcome the disk cannot take yet (full) is kept
until it can, so a post that went out is written down once space returns, and never posted again.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from relay import audit, images
from relay.model import Alike, Delivery, DeliveryState
from relay.render import Rendering
from relay.store import Connection, Store
from relay.store.grouped import Grouped

ORPHANED_AFTER = 5.0  # seconds after its claim that a claim this process does not hold is taken back
LEASE_SECONDS = 120.0  # longer than a whole thread of timed-out calls; renewed after every part


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a delivery is retried before the leader is told it failed."""

    max_attempts: int = 8
    give_up_after: float = 3600.0  # a broadcast that cannot go out within an hour is news, not a retry
    backoff_base: float = 1.0
    backoff_cap: float = 300.0

    def delay(self, attempts: int, server_hint: float | None) -> float:
        """The larger of the server's hint and exponential backoff with full jitter (AWS architecture
        blog, "Exponential Backoff And Jitter"): retries from many deliveries spread out, not collide."""
        backoff = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1)))
        return max(server_hint or 0.0, backoff)

    def exhausted(self, attempts: int, first_attempt_at: float, next_attempt_at: float) -> bool:
        return attempts >= self.max_attempts or next_attempt_at - first_attempt_at > self.give_up_after


DEFAULT_RETRY = RetryPolicy()


def insert_deliveries(
    conn: Connection,
    broadcast_id: str,
    renderings: Iterable[tuple[Rendering, str, bool]],
    due: float,
    now: float,
) -> None:
    """Inside the approval transaction: one row per destination, with the exact approved texts, due
    at `now` (or at the scheduled time: the outbox is the schedule, so a restart keeps it)."""
    conn.executemany(
        "INSERT INTO deliveries (broadcast_id, destination, kind, dry_run, parts, posted, state, attempts,"
        " check_first, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, '[]', 'pending', 0, 0, ?, ?)",
        [
            (broadcast_id, r.destination, kind, int(dry), json.dumps(list(r.payloads())), due, now)
            for r, kind, dry in renderings
        ],
    )


def insert_retractions(conn: Connection, broadcast_id: str, now: float) -> None:
    """Inside the retraction's transaction: stop posts that have not gone out, and add one deletion per
    destination where something may have been posted."""
    conn.execute(
        "UPDATE deliveries SET state = 'cancelled', last_error = 'retracted before it was sent',"
        " next_attempt_at = NULL, updated_at = ? WHERE broadcast_id = ? AND action = 'post'"
        " AND state = 'pending' AND check_first = 0 AND posted = '[]'",
        (now, broadcast_id),
    )
    conn.execute(
        "INSERT INTO deliveries (broadcast_id, destination, action, kind, dry_run, parts, posted, state, attempts,"
        " check_first, next_attempt_at, updated_at) SELECT broadcast_id, destination, 'delete', kind, dry_run,"
        " '[]', '[]', 'pending', 0, 0, ?, ? FROM deliveries WHERE broadcast_id = ? AND action = 'post'"
        " AND NOT (state IN ('cancelled', 'failed') AND posted = '[]')",
        (now, now, broadcast_id),
    )


def reschedule(conn: Connection, broadcast_id: str, when: float, now: float) -> int:
    """Move deliveries that have not been tried yet; returns how many were left untried."""
    return conn.execute(
        "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE broadcast_id = ? AND action = 'post'"
        " AND state = 'pending' AND attempts = 0",
        (when, now, broadcast_id),
    ).rowcount


class Started(Exception):
    """A scheduled broadcast began going out before it could be cancelled."""


def unschedule(conn: Connection, broadcast_id: str, now: float) -> None:
    """Inside the cancellation's transaction; raises Started (rolling it back) if anything was tried."""
    tried = conn.execute(
        "SELECT COUNT(*) FROM deliveries WHERE broadcast_id = ? AND NOT (state = 'pending' AND attempts = 0)",
        (broadcast_id,),
    ).fetchone()[0]
    if tried:
        raise Started(broadcast_id)
    conn.execute(
        "UPDATE deliveries SET state = 'cancelled', last_error = 'cancelled before its time',"
        " next_attempt_at = NULL, updated_at = ? WHERE broadcast_id = ? AND state = 'pending' AND attempts = 0",
        (now, broadcast_id),
    )


def insert_edits(conn: Connection, broadcast_id: str, texts: dict[str, str], now: float) -> None:
    """Inside the correction's transaction: a post that has not gone out simply takes the new text; one
    that has (or is going) gets an edit delivery, numbered so a later correction never overwrites one."""
    for destination, text in texts.items():
        parts = json.dumps([text])
        untried = conn.execute(
            "UPDATE deliveries SET parts = ?, updated_at = ? WHERE broadcast_id = ? AND destination = ?"
            " AND action = 'post' AND state = 'pending' AND attempts = 0",
            (parts, now, broadcast_id, destination),
        ).rowcount
        if untried:
            continue
        number = conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE broadcast_id = ? AND destination = ? AND action LIKE 'edit-%'",
            (broadcast_id, destination),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO deliveries (broadcast_id, destination, action, kind, dry_run, parts, posted, state, attempts,"
            " check_first, next_attempt_at, updated_at) SELECT broadcast_id, destination, ?, kind, dry_run, ?, '[]',"
            " 'pending', 0, 0, ?, ? FROM deliveries WHERE broadcast_id = ? AND destination = ? AND action = 'post'"
            " AND state IN ('sent', 'sending', 'pending')",
            (f"edit-{number + 1}", parts, now, now, broadcast_id, destination),
        )


async def twin(store: Store, delivery: Delivery) -> Delivery:
    """The post a deletion takes back."""

    def run(conn: Connection) -> Delivery:
        row = conn.execute(
            "SELECT * FROM deliveries WHERE broadcast_id = ? AND destination = ? AND action = 'post'",
            (delivery.broadcast_id, delivery.destination),
        ).fetchone()
        return Delivery.from_row(row)

    return await store.call(run)


async def recover(store: Store, now: float, held: Collection[str] = ()) -> int:
    """At start-up, and from time to time: deliveries whose process stopped, or whose lease ran out (their
    process stalled past it), go back to the queue. Those whose request had gone out keep the mark
    `going_out` gave them, and are looked for before posting. Also this process's own claims that it does
    not hold (`held`: the tokens of what it works on): a claim committed as the database went away, whose
    answer never came back, would otherwise wait for its lease to run out. Taking one back is safe even if
    it is being started just now: `going_out` then finds another token, and nothing is sent."""
    holders = await store.call(
        lambda conn: [
            row[0] for row in conn.execute("SELECT DISTINCT lease_owner FROM deliveries WHERE state = 'sending'")
        ]
    )
    others = {holder.split("-")[0] for holder in holders if holder} - {store.instance}
    gone = sorted(await store.gone(others))
    unowned = " OR lease_owner IS NULL" if store.sole else ""  # claimed by a release before leases had owners
    of_gone = "".join(" OR lease_owner LIKE ?" for _ in gone)
    mine = [holder for holder in holders if holder and holder.startswith(f"{store.instance}-") and holder not in held]
    orphans = f" OR (lease_owner IN ({', '.join('?' * len(mine))}) AND attempt_started_at < ?)" if mine else ""

    def run(conn: Connection) -> int:
        cursor = conn.execute(
            "UPDATE deliveries SET state = 'pending', lease_until = NULL, lease_owner = NULL, next_attempt_at = ?,"
            f" updated_at = ? WHERE state = 'sending' AND (lease_until < ?{unowned}{of_gone}{orphans})",
            (now, now, now, *(f"{instance}-%" for instance in gone), *((*mine, now - ORPHANED_AFTER) if mine else ())),
        )
        return cursor.rowcount

    return await store.persist(run, leased=True)


async def renew(store: Store, owners: Iterable[str], now: float) -> None:
    """Extend the leases this process holds (`owners`, its claims' tokens): a delivery waiting its turn
    behind a network's pause stays this process's, however long the pause."""
    held = list(owners)
    if not held:
        return
    marks = ", ".join("?" * len(held))
    await store.persist(
        lambda conn: conn.execute(
            f"UPDATE deliveries SET lease_until = ? WHERE state = 'sending' AND lease_owner IN ({marks})",
            (now + LEASE_SECONDS, *held),
        ),
        leased=True,
    )


class LeaseLost(Exception):
    """Another process holds this delivery now (this one's lease ran out): this one must stop, unwritten."""


class Departures:
    """Marks each part just before its request leaves (`going_out`). The posts a fan-out starts at once are
    marked together: one statement for those asking while the last is on its way (`Grouped`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._marked: Grouped[tuple[int, str | None], bool] = Grouped(self._mark, False)

    async def going_out(self, delivery: Delivery) -> bool:
        """From here until its outcome is recorded, the part may have landed. Only this mark makes a restart
        look first. A delivery claimed but still waiting its turn (behind a network's pace or concurrency)
        when the process died never left: it is sent, not called unknown where the network cannot be
        searched (Teams). False, and nothing marked, if the broadcast has been retracted in the meantime: the
        part must not go out at all. Raises LeaseLost, and nothing goes out, if another process has taken the
        delivery over."""
        if await self._marked((delivery.id, delivery.lease_owner)):
            return True
        row = await self.store.call(
            lambda conn: conn.execute("SELECT state FROM broadcasts WHERE id = ?", (delivery.broadcast_id,)).fetchone()
        )
        if row is not None and row["state"] == "retracted":
            return False
        raise LeaseLost(delivery.id)

    async def _mark(self, leaving: list[tuple[int, str | None]]) -> dict[tuple[int, str | None], bool]:
        """One statement, atomic on its own: each delivery still held by its lease, of a broadcast not
        retracted."""
        rows = await self.store.persist_returning(
            "UPDATE deliveries SET check_first = 1 WHERE state = 'sending'"
            f" AND (id, lease_owner) IN (VALUES {', '.join(['(?, ?)'] * len(leaving))})"
            " AND NOT EXISTS (SELECT 1 FROM broadcasts WHERE broadcasts.id = deliveries.broadcast_id"
            " AND broadcasts.state = 'retracted') RETURNING id, lease_owner",
            [value for pair in leaving for value in pair],
        )
        return {(row["id"], row["lease_owner"]): True for row in rows}


async def recently_active(store: Store, since: float) -> list[str]:
    """Broadcasts whose deliveries changed since `since`: their reports are refreshed at start-up, in
    case the last process died between recording an outcome and showing it."""

    def run(conn: Connection) -> list[str]:
        rows = conn.execute("SELECT DISTINCT broadcast_id FROM deliveries WHERE updated_at >= ?", (since,)).fetchall()
        return [str(row[0]) for row in rows]

    return await store.call(run)


# Deliveries that may be worked on now, of the kinds chosen by `{kind}`. A deletion or an edit waits
# while its twin post is in flight, so it acts on everything that went out.
_CLAIMABLE = (
    "FROM deliveries AS d WHERE state = 'pending' AND {kind}"
    " AND NOT (action != 'post' AND EXISTS (SELECT 1 FROM deliveries AS p WHERE"
    " p.broadcast_id = d.broadcast_id AND p.destination = d.destination AND p.action = 'post'"
    " AND p.state = 'sending'))"
)


def _unnamed(room: Mapping[str, int]) -> str:
    return f"kind NOT IN ({', '.join('?' * len(room))})" if room else "1 = 1"  # PostgreSQL refuses `IN ()`


# A lease's owner is the process (`Store.instance`) and which of its claims: a process that outlived its own
# lease and claimed the delivery again must not be mistaken for the first claim.
_claims = itertools.count(1)


async def claim_due(
    store: Store, now: float, room: Mapping[str, int], others: int
) -> tuple[list[Delivery], float | None]:
    """Take due deliveries for this process, each with a fresh lease: up to `room[kind]` of each kind
    of network named, and up to `others` of kinds not named (destinations gone from relay.toml). Also
    when the earliest one the room left over could take falls due (None: none waiting), so that the
    dispatcher sleeps exactly that long (it is woken when room frees up): one trip to the database a turn."""
    due = (
        "SELECT id " + _CLAIMABLE + " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?" + store.skip_locked
    )
    claim = f"{store.instance}-{next(_claims)}"

    def run(conn: Connection) -> tuple[list[Delivery], float | None]:
        taken = {
            kind: [row["id"] for row in conn.execute(due.format(kind="kind = ?"), (kind, now, limit))]
            for kind, limit in room.items()
            if limit > 0
        }
        unnamed = []
        if others > 0:
            unnamed = [row["id"] for row in conn.execute(due.format(kind=_unnamed(room)), (*room, now, others))]
        ids = [i for claimed in taken.values() for i in claimed] + unnamed
        rows = {}
        if ids:
            rows = {
                row["id"]: row
                for row in conn.execute(
                    "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, lease_until = ?,"
                    " lease_owner = ? || CAST(id AS TEXT), attempt_started_at = ?,"
                    " first_attempt_at = COALESCE(first_attempt_at, ?), updated_at = ?"
                    f" WHERE id IN ({', '.join('?' * len(ids))}) AND state = 'pending' RETURNING *",
                    (now + LEASE_SECONDS, f"{claim}-", now, now, now, *ids),
                ).fetchall()
            }
        left = {kind: limit - len(taken.get(kind, ())) for kind, limit in room.items()}
        return [Delivery.from_row(rows[i]) for i in ids if i in rows], _next_due(conn, left, others - len(unnamed))

    return await store.persist(run, leased=True)


def _next_due(conn: Connection, room: Mapping[str, int], others: int) -> float | None:
    open_kinds = [kind for kind, limit in room.items() if limit > 0]
    if not open_kinds and others <= 0:
        return None
    kinds = f"kind IN ({', '.join('?' * len(open_kinds))})" if open_kinds else "1 = 0"
    if others > 0:
        kinds = f"({kinds} OR {_unnamed(room)})"
    query = "SELECT MIN(next_attempt_at) " + _CLAIMABLE.format(kind=kinds)
    row = conn.execute(query, (*open_kinds, *(room if others > 0 else ()))).fetchone()
    return float(row[0]) if row[0] is not None else None


@dataclass(frozen=True)
class Landed:
    """A part that has just landed, as the delivery's lease holder records it: every part posted so far, the
    new one last (only the holder adds to them, so it knows them all without reading them back; and a
    write tried again after its answer was lost records the same list, not the part twice), and its link."""

    posted: tuple[str, ...]
    link: str | None = None


async def record_part(store: Store, delivery: Delivery, landed: Landed, now: float) -> None:
    """A part landed: remember its id at once, so a crash before the next part cannot repost it."""
    await store.persist(lambda conn: _record_part(conn, delivery, landed, now), leased=True)


def _record_part(conn: Connection, delivery: Delivery, landed: Landed, now: float) -> None:
    conn.execute(
        "UPDATE deliveries SET posted = ?, link = COALESCE(link, ?), check_first = 0, lease_until = ?,"
        " updated_at = ? WHERE id = ? AND state = 'sending' AND lease_owner = ?",
        (
            json.dumps(landed.posted),
            landed.link,
            now + LEASE_SECONDS,
            now,
            delivery.id,
            delivery.lease_owner,
        ),
    )


async def finish(
    store: Store,
    delivery: Delivery,
    state: DeliveryState,
    error: str | None,
    now: float,
    last_part: Landed | None = None,
    *,
    with_images: bool = True,
) -> None:
    """Record a final state: sent, failed or unknown (and say so in the audit trail). The part that has
    just landed (`last_part`) is recorded in the same transaction: one write per message, not two. The
    broadcast's images are let go after its last post (`with_images`: unless it is known to have none)."""
    action = state.value if delivery.action == "post" else f"{delivery.action} {state.value}"

    def run(conn: Connection) -> None:
        if last_part is not None:
            _record_part(conn, delivery, last_part, now)
        row = conn.execute(
            "UPDATE deliveries SET state = ?, last_error = ?, lease_until = NULL, lease_owner = NULL,"
            " next_attempt_at = NULL, updated_at = ? WHERE id = ? AND state = 'sending' AND lease_owner = ?"
            " RETURNING link",
            (state.value, error, now, delivery.id, delivery.lease_owner),
        ).fetchone()
        if row is not None:
            link = row["link"] if state is DeliveryState.SENT else None
            trail = f"{delivery.destination}: {error or link or ''}".rstrip(": ")
            audit.record(conn, now, "relay", action, delivery.broadcast_id, audit.RELAY, trail)
            if with_images and delivery.action in ("post", "delete"):
                images.drop_when_final(conn, delivery.broadcast_id)

    await store.persist(run, leased=True)


async def retry_at(store: Store, delivery: Delivery, when: float, reason: str, check_first: bool, now: float) -> None:
    """Put the delivery back in the queue for `when`; `check_first` when the last try may have landed."""
    await _update(
        store,
        "state = 'pending', next_attempt_at = ?, last_error = ?, check_first = ?, lease_until = NULL,"
        " lease_owner = NULL, updated_at = ?",
        (when, reason, int(check_first), now),
        delivery,
        ("retrying", f"{delivery.destination}: {reason} (next try in {when - now:.0f} s)"),
        now,
    )


async def _update(
    store: Store,
    assignments: str,
    values: tuple[object, ...],
    delivery: Delivery,
    trail: tuple[str, str],
    now: float,
) -> None:
    def run(conn: Connection) -> None:
        cursor = conn.execute(
            f"UPDATE deliveries SET {assignments} WHERE id = ? AND state = 'sending' AND lease_owner = ?",
            (*values, delivery.id, delivery.lease_owner),
        )
        if cursor.rowcount:
            audit.record(conn, now, "relay", trail[0], delivery.broadcast_id, audit.RELAY, trail[1])

    await store.persist(run, leased=True)


_SHOWN = (
    "id, broadcast_id, destination, action, kind, dry_run, link, state, attempts, check_first, next_attempt_at,"
    " first_attempt_at, attempt_started_at, last_error, updated_at, lease_owner, '[]' AS parts, '[]' AS posted"
)

# All a report shows of a delivery but its name (see `reports.line`): deliveries equal in these are shown alike.
_LOOK = ("action", "kind", "state", "dry_run", "attempts > 0", "next_attempt_at > updated_at + 1")


async def for_broadcast(store: Store, broadcast_id: str) -> list[Delivery]:
    """A broadcast's deliveries, to show: without the texts they carry (`parts` and `posted` come back
    empty)."""
    return await store.call(lambda conn: _shown(conn, "broadcast_id = ?", (broadcast_id,)))


async def alike(store: Store, broadcast_id: str, listed: int, one_by_one: Callable[[Delivery], bool]) -> list[Alike]:
    """A broadcast's deliveries as its live report needs them, in order: each alone while there are at
    most `listed`. Past that, one of each group that looks alike (`_LOOK`) with how many there are, but
    the groups `one_by_one` picks out, alone. A report of two thousand destinations is redrawn again and
    again as it goes out: the database counts them, instead of each being decoded every time, which cost more
    than the posts themselves."""

    def run(conn: Connection) -> list[Alike]:
        where, values = "broadcast_id = ?", (broadcast_id,)
        (count,) = conn.execute(f"SELECT COUNT(*) FROM deliveries WHERE {where}", values).fetchone()
        if count <= listed:
            return [Alike(d) for d in _shown(conn, where, values)]
        look = ", ".join(_LOOK)
        keys = ", ".join(f"{expression} AS look{n}" for n, expression in enumerate(_LOOK))
        groups = conn.execute(
            f"SELECT {keys}, MIN(id) AS first, COUNT(*) AS alike FROM deliveries WHERE {where} GROUP BY {look}",
            values,
        ).fetchall()
        firsts = [group["first"] for group in groups]
        samples = {d.id: d for d in _shown(conn, f"id IN ({', '.join('?' * len(firsts))})", tuple(firsts))}
        same = " AND ".join(f"{expression} IS NOT DISTINCT FROM ?" for expression in _LOOK)
        found: list[Alike] = []
        for group in groups:
            sample = samples[group["first"]]
            if not one_by_one(sample):
                found.append(Alike(sample, group["alike"]))
                continue
            look_of_group = tuple(group[f"look{n}"] for n in range(len(_LOOK)))
            found += [Alike(d) for d in _shown(conn, f"{where} AND {same}", (*values, *look_of_group))]
        return sorted(found, key=lambda each: each.sample.id)

    return await store.snapshot(run)


def _shown(conn: Connection, where: str, values: tuple[object, ...]) -> list[Delivery]:
    rows = conn.execute(f"SELECT {_SHOWN} FROM deliveries WHERE {where} ORDER BY id", values).fetchall()
    return [Delivery.from_row(row) for row in rows]
