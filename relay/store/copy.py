"""`python -m relay copy-to-postgres`: a SQLite database moved into an empty PostgreSQL one, for a team that
outgrows one process (or a host whose disk is not kept).

Both are brought to this release's schema first, so the tables match column for column; the SQLite file is
opened as the bot opens it, which refuses while a bot is still running on it. Everything is copied in one
PostgreSQL transaction: a copy that fails leaves the target empty, to be tried again. Deliveries that were
in flight are copied as they are: their process is gone, so the first instance on PostgreSQL takes them
back at once and looks for what may have landed before posting again.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from relay import audit
from relay.store.base import Connection, StoreError
from relay.store.postgres import PostgresStore
from relay.store.sqlite import SqliteStore

# In the order foreign keys need. What only paces a running fleet (pace, pauses, instances) is not copied.
# Sign-ins under way (oauth_states) last minutes: not copied. Accounts stay sealed with the same key.
TABLES = (
    "broadcasts",
    "deliveries",
    "broadcast_images",
    "teams_conversations",
    "audit",
    "seen_requests",
    "status_sessions",
    "accounts",
    "mastodon_apps",
)
# Tables whose ids PostgreSQL numbers itself: its counter must go on after the copied ids.
NUMBERED = ("deliveries", "audit")


@dataclass(frozen=True)
class Copied:
    rows: dict[str, int]


async def copy_to_postgres(source: SqliteStore, target: PostgresStore) -> Copied:
    """Copy every row; raises StoreError, having written nothing, if the target already holds broadcasts."""
    await source.open()
    try:
        await target.open()
        try:
            tables = {table: await source.call(functools.partial(_rows, table=table)) for table in TABLES}
            await target.write(lambda conn: _insert(conn, tables, str(source.path)))
        finally:
            await target.close()
    finally:
        await source.close()
    return Copied({table: len(rows) for table, (_, rows) in tables.items()})


def _rows(conn: Connection, *, table: str) -> tuple[list[str], list[Any]]:
    cursor = conn.execute(f"SELECT * FROM {table}")
    rows = cursor.fetchall()
    return (list(rows[0].keys()) if rows else []), rows


def _insert(conn: Connection, tables: dict[str, tuple[list[str], list[Any]]], origin: str) -> None:
    held = [table for table in TABLES if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None]
    if held:
        raise StoreError(
            f"the PostgreSQL database already holds {', '.join(held)}: copy into an empty database (a new one, "
            "with DATABASE_URL pointing at it), so that nothing is mixed or doubled"
        )
    for table in TABLES:
        columns, rows = tables[table]
        if rows:
            marks = ", ".join("?" * len(columns))
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", [tuple(r) for r in rows])
    for table in NUMBERED:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1,"
            " false)"
        )
    counts = ", ".join(f"{len(tables[table][1])} {table}" for table in TABLES)
    audit.record(conn, time.time(), "relay", "copied-from-sqlite", None, audit.TERMINAL, f"{origin}: {counts}")
