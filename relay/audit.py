"""The audit trail: every request, decision, delivery outcome and configuration load, append-only.

Written in the same transaction as the change it records, so the trail and the state cannot disagree;
the database refuses any update or deletion of it (see the migration that creates it).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from relay.printable import printable
from relay.store import Connection, Store


@dataclass(frozen=True)
class Where:
    """Where an action came from: the surface, and the channel or conversation on it."""

    surface: str
    place: str = ""


TERMINAL = Where("terminal")
RELAY = Where("relay")


@dataclass(frozen=True)
class Entry:
    at: float
    actor: str
    action: str
    broadcast_id: str | None
    surface: str
    place: str
    detail: str


def record(
    conn: Connection,
    at: float,
    actor: str,
    action: str,
    broadcast_id: str | None,
    where: Where,
    detail: str = "",
) -> None:
    """Inside the caller's transaction."""
    conn.execute(
        "INSERT INTO audit (at, actor, action, broadcast_id, surface, place, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (at, actor, action, broadcast_id, where.surface, where.place, detail),
    )


async def entries(store: Store, since: float = 0.0) -> list[Entry]:
    def run(conn: Connection) -> list[Entry]:
        rows = conn.execute(
            "SELECT at, actor, action, broadcast_id, surface, place, detail FROM audit WHERE at >= ? ORDER BY id",
            (since,),
        ).fetchall()
        return [Entry(*row) for row in rows]

    return await store.call(run)


def export(rows: Sequence[Entry], form: str) -> str:
    """CSV (for a spreadsheet) or JSON lines' worth of objects (for a script)."""
    if form == "json":
        return json.dumps([asdict(row) for row in rows], indent=2)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["at", "actor", "action", "broadcast_id", "surface", "place", "detail"])
    for row in rows:
        cells = [_iso(row.at), row.actor, row.action, row.broadcast_id or "", row.surface, row.place, row.detail]
        writer.writerow([_inert(cell) for cell in cells])
    return out.getvalue()


# A spreadsheet evaluates a cell that starts with one of these as a formula (OWASP, "CSV Injection"), and
# a detail or a place can be anyone's words: such a cell is written after an apostrophe, which spreadsheets
# take as "text, as typed" and do not show.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: str) -> str:
    """Neither a formula for a spreadsheet, nor escape sequences for the terminal it may be printed on."""
    return printable(f"'{cell}" if cell.startswith(_FORMULA_START) else cell)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="seconds")


async def note(store: Store, at: float, actor: str, action: str, where: Where, detail: str) -> None:
    """An entry of its own, outside any other change (a configuration loaded at start-up)."""
    await store.write(lambda conn: record(conn, at, actor, action, None, where, detail))
